// Admission by measured saturation: two signals, one verdict. The event-loop delay is how long a
// new handshake waits. The delivery lag is how old a bus batch is once this shard has written it
// to its clients. A shard that has more fan-out than CPU keeps its loop turning (each turn is one
// batch) while batches queue in the pipe behind it: its loop delay stays under a limit while its
// clients' latency climbs by seconds (measured at 1.5x the knee), and only the delivery lag shows
// that. Either one past the limit refuses new upgrades; both under half of it admit again.
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

export class SaturationMeter {
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  private readonly delivery = createHistogram();
  private samples = 0;
  saturated = false;

  /** `limitMs` 0 = never saturated (the signals are still measured). */
  constructor(readonly limitMs: number) {}

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
   * Reads and resets both signals; `lateMs` is how late this sample's own timer fired (a stall
   * longer than the interval lands in the histogram only after the read). The first sample holds
   * the shard's own start-up (loading, JIT, the first listen) and is not judged.
   */
  sample(lateMs: number): SaturationSample {
    const loopLagMs = Math.max(0, this.loopDelay.percentile(99) / 1e6 - LOOP_RESOLUTION_MS, lateMs);
    const deliveryLagMs = this.delivery.count ? this.delivery.percentile(99) / 1000 : 0;
    this.loopDelay.reset();
    this.delivery.reset();
    const was = this.saturated;
    if (this.samples++ > 0) this.saturated = this.judge(Math.max(loopLagMs, deliveryLagMs), was);
    return { loopLagMs, deliveryLagMs, saturated: this.saturated, changed: this.saturated !== was };
  }

  /** Tripped past the limit, cleared under half of it, so the verdict does not flap at the edge. */
  private judge(lagMs: number, was: boolean): boolean {
    const limit = this.limitMs;
    return limit > 0 && (was ? lagMs >= limit / 2 : lagMs > limit);
  }
}
