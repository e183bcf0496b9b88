// What the class page and the studio share to act on a class: running one
// of core's class commands with a busy marker and a plain-words outcome, and
// showing one's own camera muted.
import { errorMessage } from '../../api/client';

export type CommandRun = () => Promise<{ error?: unknown; response: Response }>;

/**
 * A command runner for a page: marks `what` busy while `run` goes, then
 * reports `ok` or the API's error in plain words. Answers whether it worked.
 */
export function commandRunner(page: {
  busy(what: string): void;
  done(message: string): void;
  failed(message: string): void;
}): (what: string, run: CommandRun, ok: string) => Promise<boolean> {
  return async (what, run, ok) => {
    page.busy(what);
    try {
      const { error, response } = await run();
      if (response.ok) {
        page.done(ok);
        return true;
      }
      page.failed(errorMessage(error, response));
    } catch (e) {
      page.failed(errorMessage(e));
    } finally {
      page.busy('');
    }
    return false;
  };
}

/** A Svelte action: the element plays one's own stream, muted (no echo). */
export function preview(el: HTMLVideoElement, stream: MediaStream) {
  const show = (s: MediaStream) => {
    el.srcObject = s;
    el.muted = true;
    el.play().catch(() => {});
  };
  show(stream);
  return {
    update(s: MediaStream) {
      if (el.srcObject !== s) show(s);
    },
    destroy() {
      el.srcObject = null;
    },
  };
}
