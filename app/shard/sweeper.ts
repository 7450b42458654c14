// The shard's one periodic timer (not one per client): every tick it holds all client output
// buffers to the shard's budget, and every few ticks it runs each client's liveness checks
// (ping reaping, idle timeout). The budget looks only at clients that had bytes left queued after
// a write (watch()): a shard of idle connections costs nothing per tick, however many it holds.

/** The part of a client the sweeper needs. */
export interface Swept {
  /** Bytes queued for the client right now. */
  readonly buffered: number;
  /** Close it as the largest holder while the shard is over budget (4008). */
  shed(): void;
  sweep(now: number, pingMs: number, idleMs: number): void;
}

export interface SweepOptions {
  readonly pingMs: number; // 0 = no server pings
  readonly idleMs: number; // 0 = no idle timeout
  readonly budgetBytes: number;
}

/** How often the budget is checked: the bound on how far past it the buffers can run. */
const BUDGET_TICK_MS = 100;
/** Closing the largest holders stops this far under the budget, so one burst does not re-trigger. */
const BUDGET_HEADROOM = 0.9;

export class Sweeper {
  private timer: NodeJS.Timeout | null = null;
  private lastLiveness = Date.now();
  private readonly livenessEveryMs: number;
  /** Sum of client buffers at the last tick. */
  buffered = 0;
  /** Clients that may hold queued bytes; each leaves the set once seen empty (or closed). */
  private readonly backlogged = new Set<Swept>();
  shed = 0;

  constructor(
    private readonly clients: () => Iterable<Swept>,
    private readonly opts: SweepOptions,
  ) {
    const enabled = [opts.pingMs, opts.idleMs].filter((ms) => ms > 0);
    // A quarter of the shortest period: a dead peer is reaped within 2.25 ping intervals.
    this.livenessEveryMs = enabled.length ? Math.max(BUDGET_TICK_MS, Math.min(...enabled) / 4) : Infinity;
  }

  start(): void {
    this.timer ??= setInterval(() => this.tick(), BUDGET_TICK_MS);
    this.timer.unref();
  }

  /** Idempotent. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** A write left bytes queued for `c`: the budget counts it until its buffer is seen empty. */
  watch(c: Swept): void {
    this.backlogged.add(c);
  }

  tick(now = Date.now()): void {
    this.enforceBudget();
    if (now - this.lastLiveness < this.livenessEveryMs) return;
    this.lastLiveness = now;
    for (const c of this.clients()) c.sweep(now, this.opts.pingMs, this.opts.idleMs);
  }

  /** Over budget: the clients holding the most are closed first, until the rest fit. */
  enforceBudget(): number {
    let total = 0;
    const holders: Swept[] = [];
    for (const c of this.backlogged) {
      const b = c.buffered;
      if (b > 0) {
        total += b;
        holders.push(c);
      } else this.backlogged.delete(c);
    }
    this.buffered = total;
    if (total <= this.opts.budgetBytes) return 0;
    const sized = holders.map((c) => ({ c, b: c.buffered })).sort((x, y) => y.b - x.b);
    let shed = 0;
    for (const { c, b } of sized) {
      if (total <= this.opts.budgetBytes * BUDGET_HEADROOM) break;
      c.shed();
      total -= b;
      shed++;
    }
    this.shed += shed;
    return shed;
  }
}
