// The class's live feed: a WebSocket to the edge. First a snapshot of the
// state, then events in seq order; when the socket drops it reconnects with
// `after=<last seq>` so nothing is missed or repeated.
//
// A seat on another campus's edge (one that relays the class's media but
// does not host it) has no live feed there: its state comes from core
// instead, a snapshot and then the log read every second (`CoreFeed`).
import { api } from '../../api/client';
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

export interface Feed {
  start(): void;
  stop(): void;
}

/** The feed for a seat: the edge's WebSocket on the class's home edge, else core's log. */
export function openFeed(join: Joined, on: FeedHandlers): Feed {
  return join.edge.id === join.home_edge_id ? new LiveFeed(join, on) : new CoreFeed(join.session_id, on);
}

export class LiveFeed implements Feed {
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

const POLL_MS = 1000;

/** The class's state from core: a snapshot, then the log after it, read every second. */
export class CoreFeed implements Feed {
  private last: number | null = null;
  private stopped = false;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private session: string,
    private on: FeedHandlers,
  ) {}

  start(): void {
    this.on.status('connecting');
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const path = { params: { path: { id: this.session } } };
    try {
      if (this.last === null) {
        const { data } = await api.GET('/sessions/{id}/state', path);
        if (!data) throw new Error('no state');
        if (this.stopped) return;
        this.last = data.seq;
        this.on.snapshot(data, data.seq);
        this.on.status('live');
        if (data.status === 'ended') return this.close();
      } else {
        const { data } = await api.GET('/sessions/{id}/events', {
          params: { path: { id: this.session }, query: { after: this.last } },
        });
        if (!data) throw new Error('no events');
        if (this.stopped) return;
        if (this.failures > 0) this.on.status('live');
        for (const e of data.events) {
          if (e.seq <= this.last) continue;
          this.on.event({ seq: e.seq, occurred_at: e.occurred_at, type: e.type, payload: e.payload } as ClassEvent);
        }
        this.last = Math.max(this.last, data.next_after);
        if (data.status === 'ended') return this.close();
      }
      this.failures = 0;
    } catch {
      this.failures += 1;
      this.on.status('reconnecting');
    }
    const wait = this.failures === 0 ? POLL_MS : RETRY_MS[Math.min(this.failures - 1, RETRY_MS.length - 1)];
    this.timer = setTimeout(() => void this.tick(), wait);
  }

  private close(): void {
    this.stop();
    this.on.status('closed');
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
