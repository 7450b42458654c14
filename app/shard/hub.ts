// Per-shard subscription index and fan-out. For each bus batch it works out which messages each
// client is due, then writes ONE frame per client: the message's pre-framed bytes when it is due
// one, else a JSON array frame shared by every client due the same set.
import type { BusMessage } from '../common/ipc.js';
import { arrayFrame, textFrame } from './frame.js';

/** The part of a client the hub needs. */
export interface Subscriber {
  /** Scratch state owned by the hub: which batch the client was last touched in. */
  hubEpoch: number;
  hubLast: number;
  hubDue: number[];
  /** Writes a frame; returns false when the client is gone or was dropped as slow. */
  deliver(frame: Buffer): boolean;
  /**
   * True while the client holds back some channels (a recovery in flight, or live messages at or
   * before its recovered position still to drop): the hub then hands it the messages themselves.
   */
  readonly filtered: boolean;
  /** Delivers what the client is due of `msgs` (in order); returns how many went out. */
  deliverSome(msgs: readonly BusMessage[]): number;
}

export interface ChannelEvents {
  first(channel: string): void; // local subscriber count 0 -> 1
  last(channel: string): void; // 1 -> 0
}

export class Hub {
  private readonly subs = new Map<string, Set<Subscriber>>();
  private epoch = 0;
  deliveries = 0;

  constructor(private readonly events: ChannelEvents) {}

  get channels(): number {
    return this.subs.size;
  }

  subscribe(s: Subscriber, channel: string): void {
    let set = this.subs.get(channel);
    if (!set) {
      set = new Set();
      this.subs.set(channel, set);
      this.events.first(channel);
    }
    set.add(s);
  }

  unsubscribe(s: Subscriber, channel: string): void {
    const set = this.subs.get(channel);
    if (!set || !set.delete(s)) return;
    if (set.size === 0) {
      this.subs.delete(channel);
      this.events.last(channel);
    }
  }

  has(channel: string): boolean {
    return this.subs.has(channel);
  }

  publish(batch: readonly BusMessage[]): void {
    if (batch.length === 1) return this.publishOne(batch[0]);
    const epoch = ++this.epoch;
    const touched: Subscriber[] = [];
    const mark = (set: Set<Subscriber> | undefined, i: number) => {
      if (!set) return;
      for (const s of set) {
        if (s.hubEpoch !== epoch) {
          s.hubEpoch = epoch;
          s.hubLast = -1;
          s.hubDue.length = 0;
          touched.push(s);
        }
        // A client on both `trades:X` and `trades:*` is due the message once.
        if (s.hubLast !== i) {
          s.hubLast = i;
          s.hubDue.push(i);
        }
      }
    };
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i];
      mark(this.subs.get(m.channel), i);
      mark(this.subs.get(m.wildcard), i);
    }
    if (!touched.length) return;

    const singles: (Buffer | undefined)[] = new Array(batch.length);
    const arrays = new Map<string, Buffer>();
    let delivered = 0;
    for (const s of touched) {
      const due = s.hubDue;
      if (s.filtered) {
        delivered += s.deliverSome(due.map((i) => batch[i]));
        continue;
      }
      let frame: Buffer;
      if (due.length === 1) {
        frame = singles[due[0]] ??= textFrame(batch[due[0]].payload);
      } else {
        const key = due.join(',');
        let f = arrays.get(key);
        if (!f) {
          f = arrayFrame(due.map((i) => batch[i].payload));
          arrays.set(key, f);
        }
        frame = f;
      }
      if (s.deliver(frame)) delivered += due.length;
    }
    this.deliveries += delivered;
  }

  /** The common case at low rates (one message per batch): no per-client bookkeeping at all. */
  private publishOne(m: BusMessage): void {
    const exact = this.subs.get(m.channel);
    const wild = this.subs.get(m.wildcard);
    if (!exact && !wild) return;
    const frame = textFrame(m.payload);
    let delivered = 0;
    const one = [m];
    const give = (s: Subscriber) => (s.filtered ? s.deliverSome(one) : s.deliver(frame) ? 1 : 0);
    if (exact && wild) {
      // Clients on both get the message once: mark the exact ones, skip them in the wildcard set.
      const epoch = ++this.epoch;
      for (const s of exact) s.hubEpoch = epoch;
      for (const s of exact) delivered += give(s);
      for (const s of wild) if (s.hubEpoch !== epoch) delivered += give(s);
    } else {
      for (const s of (exact ?? wild)!) delivered += give(s);
    }
    this.deliveries += delivered;
  }
}
