// The signed-in session: tokens and the user, kept in sessionStorage so
// they last for the tab and no longer.
import type { components } from '../api/schema';

type Me = components['schemas']['Me'];
type Tokens = components['schemas']['Tokens'];

const TOKENS_KEY = 'classroom.tokens';
const USER_KEY = 'classroom.user';

function read<T>(key: string): T | null {
  try {
    const raw = sessionStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

export const session = $state<{ user: Me | null; notice: string }>({
  user: read<Me>(USER_KEY),
  notice: '',
});

export function getTokens(): Pick<Tokens, 'access_token' | 'refresh_token'> | null {
  return read<Tokens>(TOKENS_KEY);
}

export function setTokens(tokens: Pick<Tokens, 'access_token' | 'refresh_token' | 'expires_in'>): void {
  const { access_token, refresh_token, expires_in } = tokens;
  sessionStorage.setItem(TOKENS_KEY, JSON.stringify({ access_token, refresh_token, expires_in }));
}

export function startSession(tokens: Tokens, user: Me): void {
  setTokens(tokens);
  sessionStorage.setItem(USER_KEY, JSON.stringify(user));
  session.user = user;
  session.notice = '';
}

export function setUser(user: Me): void {
  sessionStorage.setItem(USER_KEY, JSON.stringify(user));
  session.user = user;
}

/** Forgets the session; `notice` is shown on the sign-in page. */
export function clearSession(notice = ''): void {
  sessionStorage.removeItem(TOKENS_KEY);
  sessionStorage.removeItem(USER_KEY);
  session.user = null;
  session.notice = notice;
}
