// The typed API client. Same origin as core: core serves this app at `/`.
import createClient from 'openapi-fetch';
import type { components, paths } from './schema';
import { clearSession, getTokens, setTokens } from '../lib/session.svelte';

export type Me = components['schemas']['Me'];
export type User = components['schemas']['User'];
export type ImportReport = components['schemas']['ImportReport'];
export type MyClasses = components['schemas']['MyClasses'];
export type ApiErrorBody = components['schemas']['ApiErrorBody'];
export type CourseListItem = components['schemas']['CourseListItem'];
export type CourseDetail = components['schemas']['CourseDetail'];
export type Member = components['schemas']['Member'];
export type RosterReport = components['schemas']['RosterReport'];
export type TenantSettings = components['schemas']['TenantSettings'];
export type AuditEntry = components['schemas']['AuditEntry'];
export type ReplaySummary = components['schemas']['ReplaySummary'];
export type Replay = components['schemas']['Replay'];
export type SearchHit = components['schemas']['SearchHit'];
export type SessionAnalytics = components['schemas']['SessionAnalytics'];
export type CourseAnalytics = components['schemas']['CourseAnalytics'];
export type StudentAnalytics = components['schemas']['StudentAnalytics'];

export const ROLES = ['admin', 'teacher', 'assistant', 'student'] as const;
export type ConsoleRole = (typeof ROLES)[number];

/** The roles a member can have in one course. */
export const COURSE_ROLES = ['student', 'assistant', 'teacher'] as const;

/** Without the bearer token: login, refresh and logout. */
export const authApi = createClient<paths>({ baseUrl: '' });

let refreshing: Promise<boolean> | null = null;

/** Trades the refresh token for new tokens; concurrent callers share one refresh. */
function refreshTokens(): Promise<boolean> {
  if (!refreshing) {
    refreshing = (async () => {
      const tokens = getTokens();
      if (!tokens) return false;
      try {
        const { data } = await authApi.POST('/auth/refresh', {
          body: { refresh_token: tokens.refresh_token },
        });
        if (!data) return false;
        setTokens(data);
        return true;
      } catch {
        return false;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

function withToken(request: Request): Request {
  const tokens = getTokens();
  if (!tokens) return request;
  const headers = new Headers(request.headers);
  headers.set('Authorization', `Bearer ${tokens.access_token}`);
  return new Request(request, { headers });
}

/** Adds the access token; on a 401, refreshes once and retries the call. */
async function authFetch(request: Request): Promise<Response> {
  const retry = request.clone();
  const response = await fetch(withToken(request));
  if (response.status !== 401 || !getTokens()) return response;
  if (await refreshTokens()) return fetch(withToken(retry));
  clearSession('Your session has ended. Please sign in again.');
  return response;
}

/** The client for every call made while signed in. */
export const api = createClient<paths>({ baseUrl: '', fetch: authFetch });

/** The human message of an API error, whatever went wrong. */
export function errorMessage(error: unknown, response?: Response): string {
  const body = error as Partial<ApiErrorBody> | undefined;
  if (body && typeof body === 'object' && body.error && typeof body.error.message === 'string') {
    return body.error.message;
  }
  if (typeof error === 'string' && error.trim()) return error.trim().slice(0, 300);
  if (error instanceof Error) return `Cannot reach the server (${error.message}).`;
  return response ? `The request failed (HTTP ${response.status}).` : 'The request failed.';
}
