// Answers the shards' recovery requests from the recovery window. The answer goes back as a replay
// frame on the shard's bus pipe, so every batch the bus writes after it reaches the shard after it:
// the shard then has no gap and, dropping what is at or before `after`, no duplicate between the
// replay and live messages. A request about a Kafka position this (starting) server cannot judge
// yet waits, bounded in time and in number.
import { parsePosition, formatPosition, type RecoveryResult, type RecoveryWindow, type Unrecoverable } from '../bus/recovery-window.js';
import { encodeReplay, type RecoverItem, type RecoverOutcome } from '../common/ipc.js';

/** What the desk needs of a shard. */
export interface ReplayTarget {
  readonly id: number;
  /** Changes when the shard is restarted: a request of an older incarnation is void. */
  readonly incarnation: number;
  write(frame: Buffer): void;
}

interface Waiting {
  target: ReplayTarget;
  incarnation: number;
  rid: number;
  items: RecoverItem[];
  until: number;
}

const RETRY_MS = 100;
/** Requests waiting at once, at most (one per client at a time; more are refused as not_ready). */
export const MAX_WAITING = 10_000;

export class RecoveryDesk {
  private waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | null = null;
  requests = 0;
  replayed = 0;
  readonly unrecoverable: Record<Unrecoverable, number> = { out_of_window: 0, unknown_origin: 0, not_ready: 0, too_large: 0 };

  constructor(
    private readonly window: RecoveryWindow,
    private readonly opts: { readonly waitMs: number; readonly maxReplayBytes: number },
  ) {}

  handle(target: ReplayTarget, rid: number, items: RecoverItem[]): void {
    const w: Waiting = { target, incarnation: target.incarnation, rid, items, until: Date.now() + this.opts.waitMs };
    if (this.tryAnswer(w, false)) return;
    if (this.waiting.length >= MAX_WAITING) {
      this.tryAnswer(w, true);
      return;
    }
    this.waiting.push(w);
    this.timer ??= setInterval(() => this.retry(), RETRY_MS);
  }

  /** Idempotent. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.waiting = [];
  }

  private retry(): void {
    const now = Date.now();
    this.waiting = this.waiting.filter((w) => w.target.incarnation === w.incarnation && !this.tryAnswer(w, now >= w.until));
    if (!this.waiting.length && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Answers `w` unless a channel's answer is still pending (and `force` is false). */
  private tryAnswer(w: Waiting, force: boolean): boolean {
    const results: Array<[RecoverItem, RecoveryResult]> = [];
    for (const item of w.items) {
      const r = this.lookup(item);
      if (r.kind === 'pending' && !force) return false;
      results.push([item, r]);
    }
    const outcomes: Record<string, RecoverOutcome> = {};
    const messages: Array<{ channel: string; json: string }> = [];
    // The whole answer is written to the client at once: it must fit the same bound.
    let budget = this.opts.maxReplayBytes;
    for (const [item, r0] of results) {
      let r = r0;
      if (r.kind === 'replay' || r.kind === 'last') {
        const size = r.messages.reduce((n, m) => n + m.length, 0);
        if (size > budget) r = { kind: 'unrecoverable', reason: 'too_large' };
        else budget -= size;
      }
      this.requests++;
      outcomes[item.channel] = this.outcome(item, r, messages);
    }
    w.target.write(encodeReplay(w.rid, outcomes, messages));
    return true;
  }

  private lookup(item: RecoverItem): RecoveryResult {
    const stream = item.channel.slice(0, item.channel.indexOf(':'));
    if (item.since !== undefined) {
      const since = parsePosition(item.since);
      return since ? this.window.recover(item.channel, stream, since) : { kind: 'unrecoverable', reason: 'unknown_origin' };
    }
    return this.window.last(item.channel);
  }

  private outcome(item: RecoverItem, r: RecoveryResult, messages: Array<{ channel: string; json: string }>): RecoverOutcome {
    if (r.kind === 'pending' || r.kind === 'unrecoverable') {
      const reason: Unrecoverable = r.kind === 'pending' ? 'not_ready' : r.reason;
      this.unrecoverable[reason]++;
      return { unrecoverable: reason };
    }
    for (const json of r.messages) messages.push({ channel: item.channel, json });
    this.replayed += r.messages.length;
    const after = r.after ? formatPosition(r.after) : undefined;
    return r.kind === 'replay' ? { replayed: r.messages.length, after } : { last: r.messages.length, after };
  }

  stats() {
    return { requests: this.requests, replayed: this.replayed, waiting: this.waiting.length, unrecoverable: { ...this.unrecoverable } };
  }
}
