// A tiny hash router: `#/signin`, `#/classes`, `#/console/users`.
function current(): string {
  const hash = window.location.hash;
  return hash.startsWith('#/') ? hash.slice(1).split('?')[0] || '/' : '/';
}

export const route = $state({ path: current() });

window.addEventListener('hashchange', () => {
  // in-page anchors such as `#main` are not routes
  if (window.location.hash.startsWith('#/') || window.location.hash === '') route.path = current();
});

export function navigate(path: string, replace = false): void {
  if (replace) {
    history.replaceState(history.state, '', `#${path}`);
    route.path = path;
  } else if (current() !== path) {
    window.location.hash = path;
  } else {
    route.path = path;
  }
}

/** The query of the current route (`#/class/<id>?edge=campus-b`). */
export function routeParams(): URLSearchParams {
  const hash = window.location.hash;
  const at = hash.indexOf('?');
  return new URLSearchParams(at < 0 ? '' : hash.slice(at + 1));
}
