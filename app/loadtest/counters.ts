// Sums of worker deltas over a window (one timeline second, a ramp, a hold, the whole run).
import { decodeHistogram, newHistogram, type Histogram } from './histogram.js';
import type { WorkerDelta } from './ipc.js';

const addRec = (into: Record<string, number>, from: Record<string, number>) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

export class Counters {
  attempted = 0;
  retries = 0;
  opened = 0;
  refused = 0;
  connectErrors: Record<string, number> = {};
  closedByServer: Record<string, number> = {};
  frames = 0;
  messages = 0;
  badFrames = 0;
  subscribeAcks = 0;
  subscribeErrors: Record<string, number> = {};
  gaps = 0;
  missing = 0;
  duplicates = 0;
  reordered = 0;
  epochChanges = 0;
  retryAfter: string | null = null;
  /** Per-interval event-loop delay p99 of the workers (ms): worst, and the mean of all reports. */
  loopDelayMaxMs = 0;
  private loopDelaySum = 0;
  private loopDelayN = 0;
  /** CPU microseconds per worker index. */
  readonly cpuUs: number[] = [];
  readonly latency: Histogram = newHistogram();
  readonly handshake: Histogram = newHistogram();
  readonly startedAt = Date.now();
  endedAt: number | null = null;

  add(worker: number, d: WorkerDelta, decoded: Histogram | null, handshakes: Histogram | null = null): void {
    this.attempted += d.attempted;
    this.retries += d.retries ?? 0;
    this.opened += d.opened;
    this.refused += d.refused;
    addRec(this.connectErrors, d.connectErrors);
    addRec(this.closedByServer, d.closedByServer);
    this.frames += d.frames;
    this.messages += d.messages;
    this.badFrames += d.badFrames;
    this.subscribeAcks += d.subscribeAcks;
    addRec(this.subscribeErrors, d.subscribeErrors);
    this.gaps += d.gaps;
    this.missing += d.missing;
    this.duplicates += d.duplicates;
    this.reordered += d.reordered;
    this.epochChanges += d.epochChanges;
    if (d.retryAfter !== null) this.retryAfter = d.retryAfter;
    this.loopDelayMaxMs = Math.max(this.loopDelayMaxMs, d.loopDelayP99Ms);
    this.loopDelaySum += d.loopDelayP99Ms;
    this.loopDelayN++;
    this.cpuUs[worker] = (this.cpuUs[worker] ?? 0) + d.cpuUserUs + d.cpuSystemUs;
    if (decoded) this.latency.add(decoded);
    if (handshakes) this.handshake.add(handshakes);
  }

  get loopDelayMeanMs(): number {
    return this.loopDelayN ? Math.round((this.loopDelaySum / this.loopDelayN) * 10) / 10 : 0;
  }

  get connectErrorTotal(): number {
    return Object.values(this.connectErrors).reduce((a, b) => a + b, 0);
  }

  get closedTotal(): number {
    return Object.values(this.closedByServer).reduce((a, b) => a + b, 0);
  }

  seconds(now = Date.now()): number {
    return Math.max(0.001, ((this.endedAt ?? now) - this.startedAt) / 1000);
  }

  /** Mean cores per worker over the window. */
  workerCores(now = Date.now()): number[] {
    const s = this.seconds(now);
    return Array.from(this.cpuUs, (us) => (us ?? 0) / 1e6 / s);
  }
}

/** Fans each worker delta out to every open window, decoding its histogram once. */
export class CounterHub {
  private readonly open = new Set<Counters>();

  window(): Counters {
    const c = new Counters();
    this.open.add(c);
    return c;
  }

  close(c: Counters): Counters {
    this.open.delete(c);
    c.endedAt = Date.now();
    return c;
  }

  add(worker: number, d: WorkerDelta): void {
    const h = d.latency ? decodeHistogram(d.latency) : null;
    const hs = d.handshake ? decodeHistogram(d.handshake) : null;
    for (const c of this.open) c.add(worker, d, h, hs);
    h?.destroy();
    hs?.destroy();
  }
}
