// Saturation probation: the shard's answer to overload that arrives after admission (see
// saturation.ts for the verdict that drives it). Newest clients first, never one past its window.

/** What probation needs of a client: whether it is gone, and how to shed it. */
export interface Sheddable {
  readonly gone: boolean;
  shedForOverload(retryAfterMs: number): void;
}

/** What the shard measured over the last verdict (see SaturationSample). */
export interface FanoutLoad {
  readonly pace: number;
  readonly fanoutShare: number;
  readonly deliveryLagMs: number;
  readonly limitMs: number;
}

/** The share of the loop's time the fan-out may take at the ceiling: the rest is handshakes, pings, reports. */
const FANOUT_BUDGET = 0.9;
/** A cut aims to drain the backlog over the limit within about this long. */
const DRAIN_MS = 1000;
/** One cut keeps at least this share of the clients held (a noisy quarter must not empty a shard). */
const MIN_KEEP = 0.5;
/** Closes per verdict, so shedding a large shard does not stall it (~20 ms of closes). */
const MAX_SHED = 500;
/**
 * The lags trail the load (a backlog queued behind the shard takes time to drain after a cut):
 * cutting again before they show the last cut's effect shed a shard down to 26 clients of 900.
 */
const CUT_HOLD_MS = 1000;

/**
 * The share of its clients a shard can carry within its fan-out budget, from what it measured:
 * the fan-out time it would need per second to keep pace with every arrival (its share of the
 * loop over its pace), plus draining the backlog within DRAIN_MS. A shard that is slow for another
 * reason (a handshake storm, a stall) spends little of its time fanning out and
 * keeps everyone: refusing new upgrades is the answer there, and shedding would not help.
 */
export function fanoutKeep(load: FanoutLoad): number {
  if (!(load.pace > 0) || !(load.fanoutShare > 0)) return 1;
  const drain = 1 + Math.max(0, load.deliveryLagMs - load.limitMs / 2) / DRAIN_MS;
  const demand = (load.fanoutShare / load.pace) * drain;
  return Math.max(MIN_KEEP, Math.min(1, FANOUT_BUDGET / demand));
}

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
  /** Clients held at the previous verdict. */
  private lastClients = 0;

  constructor(
    private readonly probationMs: number,
    private readonly retryAfterMs: number,
  ) {}

  admitted(c: Sheddable, now = Date.now()): void {
    if (this.probationMs > 0) this.queue.push({ c, at: now });
  }

  /**
   * A verdict over the limit with `clients` held: lowers the ceiling to what the fan-out can carry
   * (fanoutKeep; at most once a second), then sheds the newest clients on probation toward it (up
   * to MAX_SHED per call); returns how many.
   */
  shed(clients: number, load: FanoutLoad, now = Date.now()): number {
    if (this.probationMs <= 0) return 0;
    this.prune(now);
    // Clients leaving on their own (a close storm, a load test ending) take their load with them:
    // a cut taken from what is left while the lags still show what was there shed a shard's
    // ceiling to 28 clients of 1,125 (measured).
    const leaving = clients < this.lastClients * 0.95;
    this.lastClients = clients;
    const keep = fanoutKeep(load);
    if (keep < 1 && !leaving && now - this.lastCutAt >= CUT_HOLD_MS) {
      this.ceiling = Math.min(this.ceiling, Math.floor(clients * keep));
      this.lastCutAt = now;
    }
    let n = Math.min(clients - this.ceiling, MAX_SHED);
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
    this.lastClients = clients;
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
