// Where the class's edge answers: the live feed (WebSocket) and WHEP.
import type { Joined } from './types';

/** What reaching the edge takes: a seat, or a public viewer's admission. */
export type EdgeSeat = Pick<Joined, 'edge' | 'session_id' | 'join_token'>;

/** The edge's base URL; same origin when core does not know the edge's URL. */
export function edgeBase(join: EdgeSeat): string {
  return (join.edge.url || window.location.origin).replace(/\/$/, '');
}

/** The live feed's WebSocket URL, resuming after `after` when given. */
export function liveUrl(join: EdgeSeat, after: number | null): string {
  const base = edgeBase(join).replace(/^http/, 'ws');
  const resume = after === null ? '' : `&after=${after}`;
  return `${base}/sessions/${join.session_id}/live?token=${encodeURIComponent(join.join_token)}${resume}`;
}

/** The WHEP endpoint of the class on its edge. */
export function whepUrl(join: EdgeSeat): string {
  return `${edgeBase(join)}/whep/${join.session_id}`;
}

/** A QR code of `url`, drawn by core. */
export function qrUrl(url: string): string {
  return `/qr.svg?data=${encodeURIComponent(url)}`;
}
