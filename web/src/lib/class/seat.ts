// Taking a seat in a class through core (`POST /sessions/{id}/join`), with
// the refusals a page shows in plain words. Shared by the class page and
// the studio.
import { api, errorMessage } from '../../api/client';
import type { Joined } from './types';

export type SeatResult =
  | { seat: Joined }
  /** `refused` and `ended` end the page's attempt; `retry` may be tried again. */
  | { refusal: 'refused' | 'ended' | 'retry'; message: string };

/** Where to sit: through a given edge, or the nearest of a region (core picks otherwise). */
export type Via = { edge_id?: string; region?: string };

export async function takeSeat(id: string, via: Via = {}): Promise<SeatResult> {
  try {
    const { data, error: failure, response } = await api.POST('/sessions/{id}/join', {
      params: { path: { id } },
      body: via,
    });
    if (data) return { seat: data };
    const code = (failure as { error?: { code?: string } } | undefined)?.error?.code;
    if (response.status === 403 && code === 'not_enrolled') {
      return {
        refusal: 'refused',
        message: 'You are not enrolled in this course, so you cannot join this class. Ask your teacher to add you.',
      };
    }
    if (response.status === 409 && code === 'session_ended') {
      return { refusal: 'ended', message: 'This class has ended.' };
    }
    if (response.status === 404) return { refusal: 'refused', message: 'There is no such class.' };
    return { refusal: 'retry', message: errorMessage(failure, response) };
  } catch (e) {
    return { refusal: 'retry', message: errorMessage(e) };
  }
}
