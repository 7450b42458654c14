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
  /**
   * Bus time the shard got through per unit of real time over the interval (the flush stamps of
   * what it delivered advanced this much): under 1 it falls behind, over 1 it drains a backlog;
   * NaN when it delivered nothing.
   */
  readonly pace: number;
  /** Share of the interval's real time the shard spent writing bus batches to its clients. */
  readonly fanoutShare: number;
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
  private worstFanout = 0;
  private newest = -Infinity;
  private newestBefore = -Infinity;
  private fanoutMs = 0;
  private sampledAt = busClockMs();
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
    if (flushedAtMs > this.newest) this.newest = flushedAtMs;
    const ageMs = Math.max(0, nowMs - flushedAtMs);
    this.delivery.record(Math.max(1, Math.round(ageMs * 1000)));
    return ageMs;
  }

  /** Real time spent writing one read's bus batches to the clients. */
  fanout(ms: number): void {
    this.fanoutMs += ms;
  }

  /**
   * Reads and resets both signals and judges them; `lateMs` is how late this sample's own timer
   * fired (a stall longer than the interval lands in the histogram only after the read).
   */
  sample(lateMs: number, nowMs = busClockMs()): SaturationSample {
    const loopLagMs = Math.max(0, this.loopDelay.percentile(99) / 1e6 - LOOP_RESOLUTION_MS, lateMs);
    const deliveryLagMs = this.delivery.count ? this.delivery.percentile(99) / 1000 : 0;
    const intervalMs = Math.max(1, nowMs - this.sampledAt);
    const pace = this.delivery.count && this.newestBefore > -Infinity ? (this.newest - this.newestBefore) / intervalMs : NaN;
    const fanoutShare = Math.min(1, this.fanoutMs / intervalMs);
    this.worstFanout = Math.max(this.worstFanout, fanoutShare);
    this.sampledAt = nowMs;
    this.newestBefore = this.newest;
    this.fanoutMs = 0;
    this.loopDelay.reset();
    this.delivery.reset();
    this.worstLoop = Math.max(this.worstLoop, loopLagMs);
    this.worstDelivery = Math.max(this.worstDelivery, deliveryLagMs);
    const was = this.saturated;
    if (this.samples++ >= this.timing.warmupSamples) this.judge(Math.max(loopLagMs, deliveryLagMs));
    return { loopLagMs, deliveryLagMs, saturated: this.saturated, changed: this.saturated !== was, pace, fanoutShare };
  }

  /** The worst sample of each signal since the last call (for /health and /metrics); resets. */
  report(): { loopLagMs: number; deliveryLagMs: number; fanoutShare: number } {
    const r = { loopLagMs: this.worstLoop, deliveryLagMs: this.worstDelivery, fanoutShare: this.worstFanout };
    this.worstLoop = this.worstDelivery = this.worstFanout = 0;
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
