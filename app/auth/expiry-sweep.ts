// Token expiry while connected: one shared, lazily started timer per shard instead of one timer
// per client. Each tick compares every tracked client's deadline with the clock (a number
// compare each, bounded by the shard's connections), so a client is closed at most one period
// after its token's `exp` + clock tolerance.

export interface Expiring {
  /** Wall-clock ms after which the client's token no longer holds. */
  readonly expiresAtMs: number;
  /** Called once, after which the sweep forgets the client. */
  expire(): void;
}

export const SWEEP_MS = 1000;

export class ExpirySweep {
  private readonly tracked = new Set<Expiring>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly periodMs = SWEEP_MS) {}

  get size(): number {
    return this.tracked.size;
  }

  add(c: Expiring): void {
    this.tracked.add(c);
    this.start();
  }

  delete(c: Expiring): void {
    this.tracked.delete(c);
    if (this.tracked.size === 0) this.stop();
  }

  /** Starts the timer (done by add); idempotent. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(Date.now()), this.periodMs);
    this.timer.unref();
  }

  /** Idempotent; add() starts it again. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  sweep(nowMs: number): void {
    for (const c of this.tracked) {
      if (nowMs < c.expiresAtMs) continue;
      this.tracked.delete(c);
      try {
        c.expire();
      } catch {
        // One client's close must not stop the sweep for the others.
      }
    }
    if (this.tracked.size === 0) this.stop();
  }
}
