// The result JSON: its shape (the contract for the report, the bench and any CI reading
// `--json`) and how the coordinator's state becomes it.
import type { LoadtestConfig } from './cli.js';
import type { Counters } from './counters.js';
import { readFdLimit, type FdLimit } from './fd-limit.js';
import type { HealthSample, HealthSampler } from './health-sampler.js';
import { summarize, type LatencySummary } from './histogram.js';
import type { MachineInfo } from './machine.js';
import type { StepResult } from './step.js';
import type { LimitedBy } from './verdict.js';
import type { WorkerInfo } from './worker-pool.js';

export interface TimelineRow {
  t: number;
  step: number;
  phase: 'ramp' | 'hold' | 'idle';
  open: number;
  attempted: number;
  in_flight: number;
  deliveries_per_s: number;
  frames_per_s: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
  refused_total: number;
  connect_errors_total: number;
  closed_total: number;
  missing_total: number;
  server_connections: number | null;
  shards: Array<{ id: number; connections: number }>;
  server_rejected: number | null;
  server_cpu: number | null;
  server_memory_mb: number | null;
  /** Worst shard's loop delay and delivery lag (ms) and how many shards refuse as saturated. */
  server_loop_lag_ms: number | null;
  server_delivery_lag_ms: number | null;
  saturated_shards: number | null;
  generator_cpu: number;
  /** Worst worker event-loop delay p99 in the row (ms): generator-side share of latency. */
  generator_lag_ms: number;
  machine_busy: number | null;
}

export interface Progress {
  step: number;
  steps: number;
  target: number;
  phase: TimelineRow['phase'];
  row: TimelineRow;
}

export interface LoadtestResult {
  schema: 'odin-ws.loadtest.result/v1';
  status: 'completed' | 'deadline' | 'interrupted';
  mode: LoadtestConfig['mode'];
  url: string;
  health_url: string | null;
  started_at: string;
  finished_at: string;
  duration_s: number;
  config: Record<string, unknown>;
  machine: MachineInfo;
  generator: {
    workers: number;
    pids: number[];
    per_worker_max: number;
    fd_limit: FdLimit | null;
    coordinator_fd: { soft: number | null; hard: number | null };
    source_ips: { count: number; first: string | null; last: string | null };
    cpu_s: number;
    rss_mb_max: number;
    crashes: string[];
  };
  server_info: { max_connections: number | null; cpu_limit: number | null; memory_limit_mb: number | null; shards: number | null; health_errors: number; health_last_error: string | null };
  target: number;
  capacity: number | null;
  reached: boolean;
  slo: { p99_ms: number; met: boolean; violations: string[] };
  limited_by: LimitedBy;
  limited_by_detail: string;
  connections: { attempted: number; opened: number; peak_open: number; refused: number; connect_errors: Record<string, number>; closed_by_server: Record<string, number> };
  refusals: { count: number; retry_after: string | null; server_rejected: number | null };
  /** total: the whole run; hold and per_s: the reported step's hold. */
  deliveries: { total: number; hold: number; per_s: number };
  /** epoch_changes: numbering restarts under a new epoch (README "Channel state and epochs"), not faults. */
  seq: { gaps: number; missing: number; duplicates: number; reordered: number; epoch_changes: number };
  /** The reported step's hold (what the SLO judges); latency_ms_run covers ramps too. */
  latency_ms: LatencySummary;
  latency_ms_run: LatencySummary;
  /** Max minus min connections per shard at the end of the reported step. */
  shard_spread: number | null;
  /** The same spread as the largest deviation from the mean, in % of the mean. */
  shard_spread_pct: number | null;
  shard_spread_max_hold: number | null;
  shards_end: Array<{ id: number; connections: number }>;
  /** Index into steps of the step the top-level figures describe: the target's, or the last good search step. */
  reported_step: number | null;
  steps: StepResult[];
  timeline: TimelineRow[];
  warnings: string[];
}

export interface RunState {
  cfg: LoadtestConfig;
  status: LoadtestResult['status'];
  startedAt: number;
  steps: StepResult[];
  timeline: TimelineRow[];
  warnings: string[];
  before: HealthSample | null;
  sampler: HealthSampler;
  total: Counters;
  peakOpen: number;
  rssMax: number;
  machine: MachineInfo;
  workers: ReadonlyArray<WorkerInfo | undefined>;
  crashes: readonly string[];
  stopReason: string | null;
}

/**
 * Top-level figures describe one step: the only one for --target, the last good one for
 * --search; limited_by comes from the first step that broke the SLO.
 */
export function assembleResult({ cfg, status, startedAt, steps, timeline, warnings, before, sampler, total, peakOpen, rssMax, machine, workers, crashes, stopReason }: RunState): LoadtestResult {
  const good = steps.filter((s) => s.slo.met);
  const firstBad = steps.find((s) => !s.slo.met) ?? null;
  const reportedIdx = cfg.mode === 'target' ? (steps.length ? 0 : null) : good.length ? steps.indexOf(good[good.length - 1]) : steps.length ? 0 : null;
  const rep = reportedIdx === null ? null : steps[reportedIdx];
  const first = before ?? sampler.samples[0] ?? null;
  const lastSample = sampler.latest;
  const finished = Date.now();
  const ips = cfg.sourceIps;
  const ownCpu = process.cpuUsage();
  let limitedBy: LimitedBy;
  let detail: string;
  if (firstBad) ({ limited_by: limitedBy, limited_by_detail: detail } = firstBad);
  else if (steps.length) {
    limitedBy = 'none';
    detail = cfg.mode === 'search' ? `--search-max ${cfg.search.max} reached within the SLO` : steps[0].limited_by_detail;
  } else {
    limitedBy = 'unknown';
    detail = `no step completed (${stopReason ?? 'stopped'})`;
  }
  const violations = firstBad?.slo.violations ?? (steps.length ? [] : [`no step completed (${stopReason ?? 'stopped'})`]);
  return {
    schema: 'odin-ws.loadtest.result/v1',
    status,
    mode: cfg.mode,
    url: cfg.url,
    health_url: cfg.healthUrl,
    started_at: new Date(startedAt).toISOString(),
    finished_at: new Date(finished).toISOString(),
    duration_s: Math.round((finished - startedAt) / 100) / 10,
    config: { ...cfg, channels: cfg.channels, sourceIps: undefined },
    machine,
    generator: {
      workers: cfg.workers,
      pids: workers.map((w) => w?.pid ?? 0),
      per_worker_max: cfg.perWorkerMax,
      fd_limit: workers[0]?.fd ?? null,
      coordinator_fd: readFdLimit(),
      source_ips: { count: ips.length, first: ips[0] ?? null, last: ips[ips.length - 1] ?? null },
      cpu_s: Math.round((total.cpuUs.reduce((a, b) => a + (b ?? 0), 0) + ownCpu.user + ownCpu.system) / 1e4) / 100,
      rss_mb_max: rssMax,
      crashes: [...crashes],
    },
    server_info: {
      max_connections: first?.max_connections ?? null,
      cpu_limit: first?.cpu_limit ?? null,
      memory_limit_mb: first?.memory_limit_mb ?? null,
      shards: first ? first.shards.length : null,
      health_errors: sampler.errors,
      health_last_error: sampler.lastError,
    },
    target: cfg.mode === 'target' ? cfg.target : cfg.search.max,
    capacity: cfg.mode === 'search' ? (good.length ? good[good.length - 1].target : null) : rep?.slo.met ? rep.target : null,
    reached: rep?.reached ?? false,
    slo: { p99_ms: cfg.sloP99Ms, met: !!steps.length && !firstBad, violations },
    limited_by: limitedBy,
    limited_by_detail: detail,
    connections: { attempted: total.attempted, opened: total.opened, peak_open: peakOpen, refused: total.refused, connect_errors: total.connectErrors, closed_by_server: total.closedByServer },
    refusals: { count: total.refused, retry_after: total.retryAfter, server_rejected: lastSample?.rejected != null ? lastSample.rejected - (before?.rejected ?? 0) : null },
    deliveries: { total: total.messages, hold: rep?.hold.deliveries ?? 0, per_s: rep?.hold.deliveries_per_s ?? 0 },
    seq: { gaps: total.gaps, missing: total.missing, duplicates: total.duplicates, reordered: total.reordered, epoch_changes: total.epochChanges },
    latency_ms: rep?.latency_ms ?? summarize(total.latency),
    latency_ms_run: summarize(total.latency),
    shard_spread: rep?.server.shard_spread ?? null,
    shard_spread_pct: rep?.server.shard_spread_pct ?? null,
    shard_spread_max_hold: rep?.server.shard_spread_max_hold ?? null,
    shards_end: rep?.server.shards_end ?? [],
    reported_step: reportedIdx,
    steps,
    timeline,
    warnings,
  };
}
