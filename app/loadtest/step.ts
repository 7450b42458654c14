// Evaluating one step (the only one for --target, one per search level): its figures from the
// worker counters and the /health samples of its window, the SLO check, and the verdict.
import type { Counters } from './counters.js';
import type { HealthSample } from './health-sampler.js';
import { newHistogram, summarize, type Histogram, type LatencySummary } from './histogram.js';

function handshakeSummary(...parts: Histogram[]): LatencySummary {
  const all = newHistogram();
  for (const p of parts) all.add(p);
  const s = summarize(all);
  all.destroy();
  return s;
}
import { decideLimit, type LimitedBy } from './verdict.js';

export interface StepResult {
  target: number;
  reached: boolean;
  open_at_end: number;
  ramp: { seconds: number; opened: number; connections_per_s: number; timed_out: boolean };
  hold: { start_ms: number; end_ms: number; seconds: number; deliveries: number; deliveries_per_s: number; frames: number };
  latency_ms: LatencySummary;
  /** Connect start -> open, refusal or failure, for every handshake of the step (ramp and hold). */
  handshake_ms: LatencySummary;
  seq: { gaps: number; missing: number; duplicates: number; reordered: number; epoch_changes: number };
  refused: number;
  /** Handshakes that were a refused client trying again (--retry-refused); each is also timed. */
  retries: number;
  retry_after: string | null;
  connect_errors: Record<string, number>;
  closed_by_server: Record<string, number>;
  subscribe_errors: Record<string, number>;
  bad_frames: number;
  server: {
    samples: number;
    connections_end: number | null;
    shards_end: Array<{ id: number; connections: number }>;
    shard_spread: number | null;
    /** Largest deviation of one shard's connections from the mean, in % of the mean. */
    shard_spread_pct: number | null;
    shard_spread_max_hold: number | null;
    cpu_mean: number | null;
    cpu_max: number | null;
    shard_cpu_max: number | null;
    front_cpu: number | null;
    memory_mb_max: number | null;
    rejected: number | null;
    rejected_by_reason: Record<string, number>;
  };
  generator: { cpu_cores: number; worker_cpu_max: number; loop_delay_p99_ms_mean: number; loop_delay_p99_ms_max: number; late_reports: number; machine_busy: number | null };
  slo: { met: boolean; violations: string[] };
  limited_by: LimitedBy;
  limited_by_detail: string;
}

export interface StepInput {
  target: number;
  subscribing: boolean;
  ramp: Counters;
  hold: Counters;
  rampTimedOut: boolean;
  openAtEnd: number;
  samples: readonly HealthSample[];
  before: HealthSample | null;
  sloP99Ms: number;
  lateReports: number;
  coordinatorCpu: number;
  machineBusy: number | null;
  memAvailable: number | null;
  local: boolean;
  cores: number;
  generatorFdSoft: number | null;
  interrupted: string | null;
  crashes: readonly string[];
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : null);
const r2 = (x: number | null) => (x === null ? null : Math.round(x * 100) / 100);
const sumRec = (a: Record<string, number>, b: Record<string, number>) => {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
};
const nonNull = <T>(xs: Array<T | null>): T[] => xs.filter((x): x is T => x !== null);

export function evaluateStep(x: StepInput): StepResult {
  const { ramp, hold } = x;
  const holdStart = hold.startedAt;
  const holdEnd = hold.endedAt ?? Date.now();
  const stepSamples = x.samples.filter((s) => s.at >= ramp.startedAt && s.at <= holdEnd + 500);
  const holdSamples = stepSamples.filter((s) => s.at >= holdStart);
  const last = holdSamples[holdSamples.length - 1] ?? stepSamples[stepSamples.length - 1] ?? null;
  const spread = (s: HealthSample) => (s.shards.length ? Math.max(...s.shards.map((h) => h.connections)) - Math.min(...s.shards.map((h) => h.connections)) : 0);
  const spreadPct = (s: HealthSample) => {
    if (!s.shards.length) return 0;
    const m = s.shards.reduce((a, h) => a + h.connections, 0) / s.shards.length;
    return m ? (Math.max(...s.shards.map((h) => Math.abs(h.connections - m))) / m) * 100 : 0;
  };
  const cpuSamples = holdSamples.length ? holdSamples : stepSamples;
  const shardIds = [...new Set(cpuSamples.flatMap((s) => s.shards.map((h) => h.id)))];
  const shardCpuMeans = shardIds.map((id) => mean(nonNull(cpuSamples.map((s) => s.shards.find((h) => h.id === id)?.cpu ?? null))) ?? 0);
  const frontCpus = nonNull(
    cpuSamples.map((s) => (s.cpu === null || s.shards.some((h) => h.cpu === null) ? null : Math.max(0, s.cpu - s.shards.reduce((a, h) => a + (h.cpu ?? 0), 0)))),
  );
  const rejected = last?.rejected != null && x.before?.rejected != null ? last.rejected - x.before.rejected : (last?.rejected ?? null);
  const rejectedByReason: Record<string, number> = {};
  for (const [k, v] of Object.entries(last?.rejected_by_reason ?? {})) rejectedByReason[k] = v - (x.before?.rejected_by_reason[k] ?? 0);

  const seq = { gaps: ramp.gaps + hold.gaps, missing: ramp.missing + hold.missing, duplicates: ramp.duplicates + hold.duplicates, reordered: ramp.reordered + hold.reordered, epoch_changes: ramp.epochChanges + hold.epochChanges };
  const connectErrors = sumRec(ramp.connectErrors, hold.connectErrors);
  const closed = sumRec(ramp.closedByServer, hold.closedByServer);
  const subErrors = sumRec(ramp.subscribeErrors, hold.subscribeErrors);
  const refused = ramp.refused + hold.refused;
  const latency = summarize(hold.latency);
  const badFrames = ramp.badFrames + hold.badFrames;
  const maxConnections = last?.max_connections ?? x.before?.max_connections ?? null;

  const violations: string[] = [];
  if (x.openAtEnd < x.target) violations.push(`not reached: ${x.openAtEnd} of ${x.target} connections open at the end of the hold`);
  if (latency.p99 !== null && latency.p99 > x.sloP99Ms) violations.push(`latency p99 ${latency.p99} ms > ${x.sloP99Ms} ms`);
  if (seq.missing) violations.push(`loss: ${seq.missing} messages missing in ${seq.gaps} gaps`);
  if (seq.duplicates) violations.push(`${seq.duplicates} duplicate messages`);
  if (seq.reordered) violations.push(`${seq.reordered} reordered messages`);
  if (refused) {
    const below = maxConnections === null || x.target <= maxConnections;
    violations.push(`${refused} refusals (HTTP 503) ${below ? `below the guard's max_connections ${maxConnections ?? '(unknown)'}` : `above the guard's max_connections ${maxConnections}`}`);
  }
  const errTotal = Object.values(connectErrors).reduce((a, b) => a + b, 0);
  if (errTotal) violations.push(`${errTotal} connect errors`);
  const closedTotal = Object.values(closed).reduce((a, b) => a + b, 0);
  if (closedTotal) violations.push(`${closedTotal} connections closed by the server (${Object.entries(closed).map(([k, v]) => `${k}=${v}`).join(', ')})`);
  if (Object.keys(subErrors).length) violations.push(`subscribe errors: ${Object.entries(subErrors).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  if (badFrames) violations.push(`${badFrames} frames not protocol v1`);
  if (x.subscribing && x.openAtEnd > 0 && hold.messages === 0) violations.push('no deliveries during the hold although clients subscribed');
  if (x.interrupted) violations.push(`run stopped early: ${x.interrupted}`);
  for (const c of x.crashes) violations.push(c);
  const passed = violations.length === 0;

  const workerCores = [...ramp.workerCores(), ...hold.workerCores()];
  const holdCores = hold.workerCores();
  const generatorCpu = holdCores.reduce((a, b) => a + b, 0) + x.coordinatorCpu;
  const cpuMean = mean(nonNull(cpuSamples.map((s) => s.cpu)));
  const verdict = decideLimit({
    passed,
    target: x.target,
    refused,
    connectErrors,
    closedByServer: closed,
    rejectedByReason,
    maxConnections,
    serverCpu: cpuMean,
    shardCpuMax: shardCpuMeans.length && cpuSamples.some((s) => s.shards.some((h) => h.cpu !== null)) ? Math.max(...shardCpuMeans) : null,
    frontCpu: mean(frontCpus),
    cpuLimit: last?.cpu_limit ?? null,
    serverMemoryMb: max(nonNull(stepSamples.map((s) => s.memory_mb))),
    memoryLimitMb: last?.memory_limit_mb ?? null,
    workerCpuMax: Math.max(0, ...workerCores),
    generatorCpu,
    lateReports: x.lateReports,
    generatorLagMs: hold.loopDelayMeanMs,
    sloP99Ms: x.sloP99Ms,
    generatorFdSoft: x.generatorFdSoft,
    local: x.local,
    cores: x.cores,
    machineBusy: x.machineBusy,
    memAvailable: x.memAvailable,
  });

  const rampS = ramp.seconds();
  const holdS = hold.seconds();
  return {
    target: x.target,
    reached: x.openAtEnd >= x.target,
    open_at_end: x.openAtEnd,
    ramp: { seconds: r2(rampS)!, opened: ramp.opened, connections_per_s: Math.round(ramp.opened / rampS), timed_out: x.rampTimedOut },
    hold: { start_ms: holdStart, end_ms: holdEnd, seconds: r2(holdS)!, deliveries: hold.messages, deliveries_per_s: Math.round(hold.messages / holdS), frames: hold.frames },
    latency_ms: latency,
    handshake_ms: handshakeSummary(ramp.handshake, hold.handshake),
    seq,
    refused,
    retries: ramp.retries + hold.retries,
    retry_after: hold.retryAfter ?? ramp.retryAfter,
    connect_errors: connectErrors,
    closed_by_server: closed,
    subscribe_errors: subErrors,
    bad_frames: badFrames,
    server: {
      samples: stepSamples.length,
      connections_end: last?.total_connections ?? null,
      shards_end: last?.shards.map((h) => ({ id: h.id, connections: h.connections })) ?? [],
      shard_spread: last ? spread(last) : null,
      shard_spread_pct: last ? r2(spreadPct(last)) : null,
      shard_spread_max_hold: max(holdSamples.map(spread)),
      cpu_mean: r2(cpuMean),
      cpu_max: r2(max(nonNull(cpuSamples.map((s) => s.cpu)))),
      shard_cpu_max: r2(shardCpuMeans.length ? Math.max(...shardCpuMeans) : null),
      front_cpu: r2(mean(frontCpus)),
      memory_mb_max: max(nonNull(stepSamples.map((s) => s.memory_mb))),
      rejected,
      rejected_by_reason: rejectedByReason,
    },
    generator: { cpu_cores: r2(generatorCpu)!, worker_cpu_max: r2(Math.max(0, ...workerCores))!, loop_delay_p99_ms_mean: hold.loopDelayMeanMs, loop_delay_p99_ms_max: hold.loopDelayMaxMs, late_reports: x.lateReports, machine_busy: r2(x.machineBusy) },
    slo: { met: passed, violations },
    limited_by: verdict.limited_by,
    limited_by_detail: verdict.detail,
  };
}
