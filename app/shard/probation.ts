// Saturation probation: the shard's answer to overload that arrives after admission (see
// saturation.ts for the verdict that drives it). Newest clients first, never one past its window.

/** What probation needs of a client: whether it is gone, and how to shed it. */
export interface Sheddable {
  readonly gone: boolean;
  shedForOverload(retryAfterMs: number): void;
}

/** At most this share of a shard's clients is shed per verdict (5% a quarter). */
const SHED_FRACTION = 0.05;
/** Each cut keeps this share of the clients held, at most once per CUT_HOLD_MS. */
const CUT_KEEP = 0.85;
/**
 * The lags trail the load (a backlog queued behind the shard takes time to drain after a cut):
 * cutting again before they show the last cut's effect shed a shard down to 26 clients of 900.
 */
const CUT_HOLD_MS = 1000;

/**
 * Load that arrives after admission (clients subscribe after the handshake) cannot be refused at
 * the handshake: a ramp admitted 1.5x the knee while the lags were still low, then every client
 * lagged. Clients admitted within `probationMs` are not yet promised anything: while the shard is
 * over its limit it closes the newest of them (1013 with a reconnect hint), and those it has
 * served longer keep their latency. Bounded by the admissions of one probation window.
 */
export class Probation {
  private queue: Array<{ c: Sheddable; at: number }> = [];
  private head = 0;
  /**
   * Admissions stop at this many clients: cut by each shedding, raised ~1% a second while calm at
   * it. Without it the shed clients' retries, admitted while the lags were low again, brought the
   * same overload back every Retry-After (measured: 659 -> 1,114 -> shed).
   */
  ceiling = Infinity;
  private lastCutAt = -Infinity;

  constructor(
    private readonly probationMs: number,
    private readonly retryAfterMs: number,
  ) {}

  admitted(c: Sheddable, now = Date.now()): void {
    if (this.probationMs > 0) this.queue.push({ c, at: now });
  }

  /**
   * A verdict over the limit with `clients` held: lowers the ceiling to 85% of them (at most once a
   * second), then sheds the newest clients on probation toward it (up to 5% of `clients` per call,
   * at least one); returns how many.
   */
  shed(clients: number, now = Date.now()): number {
    if (this.probationMs <= 0) return 0;
    this.prune(now);
    if (now - this.lastCutAt >= CUT_HOLD_MS) {
      this.ceiling = Math.min(this.ceiling, Math.floor(clients * CUT_KEEP));
      this.lastCutAt = now;
    }
    let n = Math.min(clients - this.ceiling, Math.max(1, Math.floor(clients * SHED_FRACTION)));
    let shed = 0;
    while (n > 0 && this.queue.length > this.head) {
      const { c } = this.queue.pop()!;
      if (c.gone) continue;
      c.shedForOverload(this.retryAfterMs);
      shed++;
      n--;
    }
    return shed;
  }

  /** A verdict under the limit: at the ceiling and `calm` (under half the limit), probe upward. */
  calm(calm: boolean, clients: number): void {
    if (calm && this.ceiling !== Infinity && clients >= this.ceiling - 1) this.ceiling += Math.max(1, Math.floor(this.ceiling * 0.0025));
  }

  /** Clients on probation now (for tests: a full scan). */
  size(now = Date.now()): number {
    this.prune(now);
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) if (!this.queue[i].c.gone && now - this.queue[i].at < this.probationMs) n++;
    return n;
  }

  private prune(now: number): void {
    const q = this.queue;
    while (this.head < q.length && (q[this.head].c.gone || now - q[this.head].at >= this.probationMs)) this.head++;
    if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}
