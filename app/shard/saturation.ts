// Admission by measured saturation: two signals, one verdict. The event-loop delay is how long a
// new handshake waits. The delivery lag is how old a bus batch is once this shard has written it
// to its clients. A shard that has more fan-out than CPU keeps its loop turning (each turn is one
// batch) while batches queue in the pipe behind it: its loop delay stays under a limit while its
// clients' latency climbs by seconds (measured at 1.5x the knee), and only the delivery lag shows
// that. Either one past the limit refuses new upgrades; both under half of it for a second admit again.
import { createHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { busClockMs } from '../common/ipc.js';

const LOOP_RESOLUTION_MS = 10;

export interface SaturationSample {
  /** p99 event-loop delay over the interval (beyond the sampling period), or the interval's own lateness. */
  readonly loopLagMs: number;
  /** p99 age of the bus batches delivered in the interval (0 when none was). */
  readonly deliveryLagMs: number;
  readonly saturated: boolean;
  /** The verdict changed with this sample. */
  readonly changed: boolean;
}

export interface SaturationTiming {
  /** Samples at start-up that are not judged (the shard's own loading, JIT and first listen). */
  readonly warmupSamples: number;
  /** Consecutive samples under half the limit that clear the verdict. */
  readonly clearSamples: number;
}

/**
 * Judged every quarter second (the shard's verdict timer): a ramp at 1,000 new connections a
 * second admitted hundreds past the knee within the one-second samples this replaced, before the
 * verdict could turn. Clearing takes a full second under half the limit, so it does not flap.
 */
export const VERDICT_MS = 250;
const DEFAULT_TIMING: SaturationTiming = { warmupSamples: 4, clearSamples: 4 };

export class SaturationMeter {
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private readonly delivery = createHistogram();
  private samples = 0;
  private calm = 0;
  private worstLoop = 0;
  private worstDelivery = 0;
  saturated = false;

  /** `limitMs` 0 = never saturated (the signals are still measured). */
  constructor(
    readonly limitMs: number,
    private readonly timing: SaturationTiming = DEFAULT_TIMING,
  ) {}

  start(): void {
    this.loopDelay.enable();
  }

  /** Idempotent. */
  stop(): void {
    this.loopDelay.disable();
  }

  /** A batch the bus flushed at `flushedAtMs` (busClockMs) is written to this shard's clients. */
  delivered(flushedAtMs: number, nowMs = busClockMs()): number {
    const ageMs = Math.max(0, nowMs - flushedAtMs);
    this.delivery.record(Math.max(1, Math.round(ageMs * 1000)));
    return ageMs;
  }

  /**
   * Reads and resets both signals and judges them; `lateMs` is how late this sample's own timer
   * fired (a stall longer than the interval lands in the histogram only after the read).
   */
  sample(lateMs: number): SaturationSample {
    const loopLagMs = Math.max(0, this.loopDelay.percentile(99) / 1e6 - LOOP_RESOLUTION_MS, lateMs);
    const deliveryLagMs = this.delivery.count ? this.delivery.percentile(99) / 1000 : 0;
    this.loopDelay.reset();
    this.delivery.reset();
    this.worstLoop = Math.max(this.worstLoop, loopLagMs);
    this.worstDelivery = Math.max(this.worstDelivery, deliveryLagMs);
    const was = this.saturated;
    if (this.samples++ >= this.timing.warmupSamples) this.judge(Math.max(loopLagMs, deliveryLagMs));
    return { loopLagMs, deliveryLagMs, saturated: this.saturated, changed: this.saturated !== was };
  }

  /** The worst sample of each signal since the last call (for /health and /metrics); resets. */
  report(): { loopLagMs: number; deliveryLagMs: number } {
    const r = { loopLagMs: this.worstLoop, deliveryLagMs: this.worstDelivery };
    this.worstLoop = this.worstDelivery = 0;
    return r;
  }

  private judge(lagMs: number): void {
    const limit = this.limitMs;
    if (limit <= 0) return;
    if (lagMs > limit) {
      this.saturated = true;
      this.calm = 0;
    } else if (this.saturated) {
      this.calm = lagMs < limit / 2 ? this.calm + 1 : 0;
      if (this.calm >= this.timing.clearSamples) this.saturated = false;
    }
  }
}

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
   * Admissions stop at this many clients: set to what is left after each shedding, raised ~1% a
   * second while calm at it. Without it the shed clients' retries, admitted while the lags were
   * low again, brought the same overload back every Retry-After (measured: 659 -> 1,114 -> shed).
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

  /** Clients on probation now (for tests and /health; a full scan). */
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
