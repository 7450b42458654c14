// Coordinator <-> worker messages (Node IPC, JSON). Workers only report when asked (`flush`), so
// every timeline row covers the same wall-clock second for all workers.
import type { ChannelPlan } from './channels.js';
import type { FdLimit } from './fd-limit.js';

export interface WorkerInit {
  readonly index: number;
  readonly workers: number;
  readonly url: string;
  readonly sourceIps: readonly string[];
  readonly plan: ChannelPlan;
  /** `ws`: the ws library (protocol v1); `lite`: handshake-only, for idle clients. */
  readonly client: 'ws' | 'lite';
  readonly handshakeTimeoutMs: number;
  readonly maxInFlight: number;
  /** A client refused with 503 tries again after its Retry-After (see cli --retry-refused). */
  readonly retryRefused: boolean;
  readonly maxSockets: number;
  /** Epoch ms after which the worker exits on its own even if the coordinator is stuck. */
  readonly hardDeadlineMs: number;
}

export type ToWorker =
  | { t: 'init'; init: WorkerInit }
  /** Make `total` connection attempts in all (cumulative), at `rate` new attempts per second. */
  | { t: 'ramp'; total: number; rate: number }
  | { t: 'flush'; id: number }
  | { t: 'stop' };

/** Counters are deltas since the worker's previous report. */
export interface WorkerDelta {
  attempted: number;
  /** Handshakes retried after a 503 (not counted in attempted: the same client again). */
  retries: number;
  opened: number;
  refused: number;
  connectErrors: Record<string, number>;
  closedByServer: Record<string, number>;
  frames: number;
  messages: number;
  badFrames: number;
  subscribeAcks: number;
  subscribeErrors: Record<string, number>;
  gaps: number;
  missing: number;
  duplicates: number;
  reordered: number;
  /** Channels whose numbering restarted under a new epoch (not a fault by itself). */
  epochChanges: number;
  cpuUserUs: number;
  cpuSystemUs: number;
  /** hdr-histogram (compressed base64) of latencies in ms recorded since the previous report. */
  latency: string | null;
  /** The same for handshakes settled since then (opened, refused or failed), ms from the connect. */
  handshake: string | null;
  retryAfter: string | null;
  /** Event-loop delay p99 (ms) over the interval: how late this worker ran behind bursts. */
  loopDelayP99Ms: number;
}

export interface WorkerGauges {
  open: number;
  inFlight: number;
  attemptedTotal: number;
  targetTotal: number;
  /** Open clients whose subscription is not acknowledged yet. */
  unsubscribed: number;
  rssMb: number;
}

export type FromWorker =
  | { t: 'ready'; pid: number; fd: FdLimit }
  | { t: 'stats'; id: number; at: number; d: WorkerDelta; g: WorkerGauges }
  | { t: 'stopped' };
