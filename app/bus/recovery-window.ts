// The recovery window: the last messages of every channel, as the bus serialised them, so a client
// that reconnects (to this server or, with Kafka, to another one) can ask for everything after the
// last position it has. Bounded three ways: per channel (count), in time, and in total bytes; the
// oldest message of the whole window goes first (time and bytes), then a channel's own oldest
// (count). What was evicted raises a floor below which a position is no longer recoverable, so an
// answer is exact or an explicit refusal, never a silent gap.

/** Where a position comes from (a Kafka partition, an embedded feed's run) and its offset in it. */
export interface Position {
  readonly origin: string;
  readonly offset: number;
}

/** What the window needs from the source: how far back this process has every record. */
export interface Coverage {
  /**
   * The offset after which this process has seen every record of `origin` for `stream`, a number;
   * 'pending' while it cannot tell yet (starting up); null when it has no such origin.
   */
  floor(stream: string, origin: string): number | 'pending' | null;
}

export interface WindowOptions {
  readonly windowMs: number;
  /** Per channel. */
  readonly maxMessages: number;
  /** All channels together (message text plus a fixed per-entry estimate). */
  readonly maxBytes: number;
  /** One answer's replayed text, at most. */
  readonly maxReplayBytes: number;
}

export type Unrecoverable = 'out_of_window' | 'unknown_origin' | 'not_ready' | 'too_large';

export type RecoveryResult =
  | { kind: 'replay'; messages: string[]; after: Position }
  | { kind: 'last'; messages: string[]; after: Position | null }
  | { kind: 'unrecoverable'; reason: Unrecoverable }
  | { kind: 'pending' };

interface Entry {
  readonly log: ChannelLog;
  readonly origin: string;
  readonly offset: number;
  readonly at: number;
  readonly json: string;
  gone: boolean;
}

interface ChannelLog {
  readonly channel: string;
  readonly stream: string;
  entries: Entry[];
  head: number;
  /** Per origin, the highest offset this channel lost to its own count cap. */
  floors: Map<string, number> | null;
}

/** What an entry costs besides its text (object, array slot, queue slot), as an estimate. */
export const ENTRY_OVERHEAD_BYTES = 96;
const COMPACT_AT = 1024;

export function parsePosition(pos: string): Position | null {
  const i = pos.lastIndexOf(':');
  if (i <= 0 || i === pos.length - 1) return null;
  const digits = pos.slice(i + 1);
  if (!/^\d{1,16}$/.test(digits)) return null;
  const offset = Number(digits);
  return Number.isSafeInteger(offset) ? { origin: pos.slice(0, i), offset } : null;
}

export const formatPosition = (p: Position): string => `${p.origin}:${p.offset}`;

export class RecoveryWindow {
  private readonly logs = new Map<string, ChannelLog>();
  /** Every live entry in arrival order (= time order): the global eviction order. */
  private queue: Entry[] = [];
  private qhead = 0;
  /** Per stream + origin, the highest offset evicted by time or bytes. */
  private readonly floors = new Map<string, number>();
  private bytes = 0;
  private messages = 0;
  readonly evicted = { time: 0, bytes: 0, count: 0 };

  constructor(
    private readonly opts: WindowOptions,
    private readonly coverage: Coverage,
  ) {}

  /** Keeps one message (its full serialised envelope) of `channel`. */
  store(channel: string, stream: string, pos: Position, json: string, now: number): void {
    if (this.opts.windowMs === 0) return;
    let log = this.logs.get(channel);
    if (!log) {
      log = { channel, stream, entries: [], head: 0, floors: null };
      this.logs.set(channel, log);
    }
    const e: Entry = { log, origin: pos.origin, offset: pos.offset, at: now, json, gone: false };
    log.entries.push(e);
    this.queue.push(e);
    this.bytes += json.length + ENTRY_OVERHEAD_BYTES;
    this.messages++;
    if (log.entries.length - log.head > this.opts.maxMessages) this.evictFromChannel(log);
    while (this.bytes > this.opts.maxBytes && this.evictOldest('bytes'));
    this.expire(now);
  }

  /** Forgets what is older than the window (also run on every store). */
  expire(now: number): void {
    const cutoff = now - this.opts.windowMs;
    for (;;) {
      const e = this.peek();
      if (!e || e.at >= cutoff) return;
      this.evictOldest('time');
    }
  }

  /** Everything of `channel` after `since`, or why not. */
  recover(channel: string, stream: string, since: Position): RecoveryResult {
    if (this.opts.windowMs === 0) return this.refuse('out_of_window');
    const f = this.coverage.floor(stream, since.origin);
    if (f === 'pending') return { kind: 'pending' };
    if (f === null) return this.refuse('unknown_origin');
    const log = this.logs.get(channel);
    const floor = Math.max(f, this.floors.get(`${stream}\0${since.origin}`) ?? -1, log?.floors?.get(since.origin) ?? -1);
    if (since.offset < floor) return this.refuse('out_of_window');
    const messages: string[] = [];
    let size = 0;
    let after = since;
    if (log) {
      for (let i = this.firstAfter(log, since); i < log.entries.length; i++) {
        const e = log.entries[i];
        if (e.origin !== since.origin) continue;
        size += e.json.length;
        if (size > this.opts.maxReplayBytes) return this.refuse('too_large');
        messages.push(e.json);
        after = e;
      }
    }
    return { kind: 'replay', messages, after: { origin: after.origin, offset: after.offset } };
  }

  /** The latest message of `channel`, if the window has one. */
  last(channel: string): RecoveryResult {
    const log = this.logs.get(channel);
    const e = log && log.entries.length > log.head ? log.entries[log.entries.length - 1] : null;
    if (!e) return { kind: 'last', messages: [], after: null };
    return { kind: 'last', messages: [e.json], after: { origin: e.origin, offset: e.offset } };
  }

  private refuse(reason: Unrecoverable): RecoveryResult {
    return { kind: 'unrecoverable', reason };
  }

  stats() {
    return {
      channels: this.logs.size,
      messages: this.messages,
      bytes: this.bytes,
      max_bytes: this.opts.maxBytes,
      window_ms: this.opts.windowMs,
      max_messages_per_channel: this.opts.maxMessages,
      evicted: { ...this.evicted },
    };
  }

  /** Binary search: the index of the first entry after `since` (entries rise within an origin). */
  private firstAfter(log: ChannelLog, since: Position): number {
    let lo = log.head;
    let hi = log.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = log.entries[mid];
      // Entries of another origin (a repartitioned topic) are skipped by the caller.
      if (e.origin === since.origin && e.offset <= since.offset) lo = mid + 1;
      else if (e.origin !== since.origin) return log.head;
      else hi = mid;
    }
    return lo;
  }

  private peek(): Entry | undefined {
    while (this.qhead < this.queue.length && this.queue[this.qhead].gone) this.qhead++;
    return this.queue[this.qhead];
  }

  private evictOldest(why: 'time' | 'bytes'): boolean {
    const e = this.peek();
    if (!e) return false;
    this.qhead++;
    const key = `${e.log.stream}\0${e.origin}`;
    this.floors.set(key, Math.max(this.floors.get(key) ?? -1, e.offset));
    this.evicted[why]++;
    this.drop(e);
    // Arrival order is per-channel order, so the oldest entry overall is its channel's head.
    const log = e.log;
    log.head++;
    this.tidy(log);
    if (this.qhead > COMPACT_AT && this.qhead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qhead);
      this.qhead = 0;
    }
    return true;
  }

  private evictFromChannel(log: ChannelLog): void {
    const e = log.entries[log.head++];
    (log.floors ??= new Map()).set(e.origin, Math.max(log.floors.get(e.origin) ?? -1, e.offset));
    this.evicted.count++;
    this.drop(e);
    this.tidy(log);
  }

  private drop(e: Entry): void {
    e.gone = true;
    this.bytes -= e.json.length + ENTRY_OVERHEAD_BYTES;
    this.messages--;
  }

  private tidy(log: ChannelLog): void {
    if (log.head === log.entries.length) {
      // Emptied by time or bytes (the count cap never empties a channel): the stream floor just
      // raised by its last entry is above its own floors (offsets rise within an origin).
      if (this.logs.get(log.channel) === log) this.logs.delete(log.channel);
      return;
    }
    if (log.head > COMPACT_AT && log.head * 2 > log.entries.length) {
      log.entries = log.entries.slice(log.head);
      log.head = 0;
    }
  }
}
