// The class's live feed: a WebSocket to the edge. First a snapshot of the
// state, then events in seq order; when the socket drops it reconnects with
// `after=<last seq>` so nothing is missed or repeated.
import { liveUrl } from './edge';
import type { ClassEvent, ClassView, Joined, LiveMessage } from './types';

export type FeedStatus = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface FeedHandlers {
  snapshot(state: ClassView, seq: number): void;
  event(event: ClassEvent): void;
  status(status: FeedStatus): void;
  /** Called before a reconnect: a fresh seat when the join token is about to expire. */
  renew?(): Promise<Joined | null>;
}

const RETRY_MS = [500, 1000, 2000, 4000, 8000];

export class LiveFeed {
  private ws: WebSocket | null = null;
  private last: number | null = null;
  private stopped = false;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private join: Joined,
    private on: FeedHandlers,
  ) {}

  start(): void {
    this.on.status('connecting');
    this.open();
  }

  /** The last seq applied; `null` before the snapshot. */
  get seq(): number | null {
    return this.last;
  }

  private expiresSoon(): boolean {
    if (!this.join.expires_at) return false;
    return new Date(this.join.expires_at).getTime() - Date.now() < 30_000;
  }

  private open(): void {
    if (this.stopped) return;
    const ws = new WebSocket(liveUrl(this.join, this.last));
    this.ws = ws;
    ws.onmessage = (m) => {
      let msg: LiveMessage;
      try {
        msg = JSON.parse(String(m.data)) as LiveMessage;
      } catch {
        return;
      }
      this.failures = 0;
      if (msg.kind === 'snapshot') {
        this.last = msg.seq;
        this.on.snapshot(msg.state, msg.seq);
        this.on.status('live');
      } else if (msg.kind === 'event') {
        // a replay after a reconnect never repeats, but be safe
        if (this.last !== null && msg.event.seq <= this.last) return;
        this.last = msg.event.seq;
        this.on.event(msg.event);
      } else if (msg.kind === 'lagged') {
        this.last = msg.resume_after;
        ws.close();
      } else if (msg.kind === 'closed') {
        this.stop();
        this.on.status('closed');
      }
    };
    ws.onopen = () => {
      // with `after` no snapshot comes: the feed is live once open
      if (this.last !== null) this.on.status('live');
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      this.on.status('reconnecting');
      const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
      this.failures += 1;
      this.timer = setTimeout(() => void this.reopen(), wait);
    };
  }

  private async reopen(): Promise<void> {
    if (this.stopped) return;
    // a token near its end, or a few refusals in a row: ask core for a fresh seat
    if (this.on.renew && (this.expiresSoon() || this.failures >= 3)) {
      try {
        const fresh = await this.on.renew();
        if (fresh) this.join = fresh;
      } catch {
        // try again with what we have
      }
    }
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    ws?.close();
  }
}
