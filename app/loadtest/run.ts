// The coordinator: forks the workers, walks the steps (ramp, wait for subscriptions, hold),
// samples /health and its own machine every second into a timeline, and always ends the
// workers, by the plan, at the deadline or on a signal.
import type { ChannelPlan } from './channels.js';
import { planSteps, rampBudgetMs, type LoadtestConfig } from './cli.js';
import { CounterHub, type Counters } from './counters.js';
import { discoverChannels } from './discover.js';
import { HealthSampler } from './health-sampler.js';
import { summarize } from './histogram.js';
import { MachineCpu, machineInfo, memAvailableFraction } from './machine.js';
import { assembleResult, type LoadtestResult, type Progress, type TimelineRow } from './result.js';
import { evaluateStep, type StepResult } from './step.js';
import { WorkerPool } from './worker-pool.js';

export type { LoadtestResult, Progress, TimelineRow };

export class RunError extends Error {}

/** The largest reported value, or null when no shard reports it. */
const worst = (xs: ReadonlyArray<number | null> | undefined): number | null => {
  const vs = (xs ?? []).filter((x): x is number => x !== null);
  return vs.length ? Math.max(...vs) : null;
};

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export async function runLoadtest(cfg: LoadtestConfig, deps: { bundlePath: string; signal?: AbortSignal; onProgress?: (p: Progress) => void }): Promise<LoadtestResult> {
  const startedAt = Date.now();
  const abort = new AbortController();
  const deadline = setTimeout(() => abort.abort('deadline'), cfg.deadlineS * 1000);
  const onExternal = () => abort.abort('interrupted');
  deps.signal?.addEventListener('abort', onExternal, { once: true });
  const stopReason = () => (abort.signal.aborted ? String(abort.signal.reason) : null);

  const machine = machineInfo();
  const machineCpu = new MachineCpu();
  const warnings: string[] = [];
  const sampler = new HealthSampler(cfg.healthUrl);
  const before = await sampler.sample();
  if (cfg.healthUrl && !before) warnings.push(`/health unreachable at start (${sampler.lastError}); server figures are missing`);
  const plan = await resolvePlan(cfg, warnings);

  const hub = new CounterHub();
  const total = hub.window();
  let tickWin = hub.window();
  const pool = new WorkerPool(deps.bundlePath, (i, d) => hub.add(i, d));
  const timeline: TimelineRow[] = [];
  const steps: StepResult[] = [];
  const targets = planSteps(cfg);
  let step = { index: 0, target: 0, phase: 'idle' as TimelineRow['phase'] };
  let lateReports = 0;
  let coordCpu = process.cpuUsage();
  let peakOpen = 0;
  const gauges = () => {
    let open = 0, inFlight = 0, attempted = 0, unsubscribed = 0, rss = 0;
    for (const w of pool.info) {
      open += w?.gauges?.open ?? 0;
      inFlight += w?.gauges?.inFlight ?? 0;
      attempted += w?.gauges?.attemptedTotal ?? 0;
      unsubscribed += w?.gauges?.unsubscribed ?? 0;
      rss = Math.max(rss, w?.gauges?.rssMb ?? 0);
    }
    peakOpen = Math.max(peakOpen, open);
    return { open, inFlight, attempted, unsubscribed, rss };
  };
  let rssMax = 0;

  let ticking = false;
  const onTick = async () => {
    if (ticking) return;
    ticking = true;
    try {
      lateReports += (await pool.flush(800)).late;
      const w = hub.close(tickWin);
      tickWin = hub.window();
      const s = w.seconds();
      const g = gauges();
      rssMax = Math.max(rssMax, g.rss);
      const cpu = process.cpuUsage(coordCpu);
      coordCpu = process.cpuUsage();
      const h = sampler.latest && sampler.latest.at > Date.now() - 2500 ? sampler.latest : null;
      const lat = summarize(w.latency);
      const row: TimelineRow = {
        t: Math.round((Date.now() - startedAt) / 100) / 10,
        step: step.target,
        phase: step.phase,
        open: g.open,
        attempted: g.attempted,
        in_flight: g.inFlight,
        deliveries_per_s: Math.round(w.messages / s),
        frames_per_s: Math.round(w.frames / s),
        p50: lat.p50,
        p90: lat.p90,
        p99: lat.p99,
        max: lat.max,
        refused_total: total.refused,
        connect_errors_total: total.connectErrorTotal,
        closed_total: total.closedTotal,
        missing_total: total.missing,
        server_connections: h?.total_connections ?? null,
        shards: h?.shards.map((x) => ({ id: x.id, connections: x.connections })) ?? [],
        server_rejected: h?.rejected != null ? h.rejected - (before?.rejected ?? 0) : null,
        server_cpu: h?.cpu ?? null,
        server_memory_mb: h?.memory_mb ?? null,
        server_loop_lag_ms: worst(h?.shards.map((x) => x.loop_lag_ms)),
        server_delivery_lag_ms: worst(h?.shards.map((x) => x.delivery_lag_ms)),
        saturated_shards: h?.shards.some((x) => x.saturated !== null) ? h.shards.filter((x) => x.saturated).length : null,
        generator_cpu: Math.round(((w.cpuUs.reduce((a, x) => a + (x ?? 0), 0) + cpu.user + cpu.system) / 1e6 / s) * 100) / 100,
        generator_lag_ms: w.loopDelayMaxMs,
        machine_busy: machineCpu.sample(),
      };
      timeline.push(row);
      deps.onProgress?.({ step: step.index + 1, steps: targets.length, target: step.target, phase: step.phase, row });
    } finally {
      ticking = false;
    }
  };

  let status: LoadtestResult['status'] = 'completed';
  let ticker: NodeJS.Timeout | null = null;
  try {
    await pool.start(cfg.workers, (index) => ({
      index,
      workers: cfg.workers,
      url: cfg.url,
      sourceIps: cfg.sourceIps,
      plan,
      client: cfg.client,
      handshakeTimeoutMs: cfg.handshakeTimeoutMs,
      maxInFlight: cfg.maxInFlight,
      retryRefused: cfg.retryRefused,
      maxSockets: cfg.perWorkerMax,
      hardDeadlineMs: startedAt + cfg.deadlineS * 1000 + 30_000,
    }));
    sampler.start();
    ticker = setInterval(() => void onTick(), 1000);

    for (let i = 0; i < targets.length && !abort.signal.aborted; i++) {
      const target = targets[i];
      const prev = i ? targets[i - 1] : 0;
      step = { index: i, target, phase: 'ramp' };
      const ramp = hub.window();
      pool.ramp(target, cfg.rampPerS);
      const rampDone = await waitFor(async () => {
        lateReports += (await pool.flush(1000)).late;
        const g = gauges();
        return g.attempted >= target && g.inFlight === 0;
      }, rampBudgetMs(target - prev, cfg.rampPerS, cfg.handshakeTimeoutMs), abort.signal);
      if (plan.kind !== 'none') await waitFor(async () => (await pool.flush(1000), gauges().unsubscribed === 0), 10_000, abort.signal);
      lateReports += (await pool.flush(5000)).late;
      hub.close(ramp);

      step.phase = 'hold';
      const lateBefore = lateReports;
      const cpuBefore = process.cpuUsage();
      const hold = hub.window();
      await sleep(cfg.holdS * 1000, abort.signal);
      lateReports += (await pool.flush(5000)).late;
      hub.close(hold);
      await sampler.sample(); // a sample at the very end of the hold: the spread is read from it
      const cpu = process.cpuUsage(cpuBefore);
      const res = evaluateStep({
        target,
        subscribing: plan.kind !== 'none',
        ramp,
        hold,
        rampTimedOut: !rampDone,
        openAtEnd: gauges().open,
        samples: sampler.samples,
        before,
        sloP99Ms: cfg.sloP99Ms,
        lateReports: lateReports - lateBefore,
        coordinatorCpu: (cpu.user + cpu.system) / 1e6 / hold.seconds(),
        machineBusy: meanBusy(timeline, startedAt, hold),
        memAvailable: memAvailableFraction(),
        local: cfg.local,
        cores: machine.cores,
        generatorFdSoft: pool.info[0]?.fd.soft ?? null,
        interrupted: stopReason(),
        crashes: pool.crashes,
      });
      steps.push(res);
      if (!res.slo.met) break;
    }
  } finally {
    if (ticker) clearInterval(ticker);
    for (let i = 0; ticking && i < 40; i++) await new Promise((r) => setTimeout(r, 50));
    clearTimeout(deadline);
    deps.signal?.removeEventListener('abort', onExternal);
    if (abort.signal.aborted) status = abort.signal.reason === 'deadline' ? 'deadline' : 'interrupted';
    await pool.flush(2000).catch(() => undefined);
    hub.close(total);
    await pool.stop();
    sampler.stop();
  }

  return assembleResult({
    cfg, status, startedAt, steps, timeline, warnings, before, sampler, total, peakOpen, rssMax, machine,
    workers: pool.info, crashes: pool.crashes, stopReason: stopReason(),
  });
}

async function resolvePlan(cfg: LoadtestConfig, warnings: string[]): Promise<ChannelPlan> {
  if (cfg.channels.kind !== 'random') return cfg.channels;
  let pool: string[];
  try {
    pool = await discoverChannels(cfg.url, cfg.streams, cfg.discoverS);
  } catch (err) {
    throw new RunError(`random:${cfg.channels.k}: channel discovery failed: ${(err as Error).message}`);
  }
  if (!pool.length) throw new RunError(`random:${cfg.channels.k}: no messages seen on ${cfg.streams.map((s) => `${s}:*`).join(', ')} within ${cfg.discoverS} s`);
  if (pool.length < cfg.channels.k) warnings.push(`random:${cfg.channels.k}: only ${pool.length} channels discovered; each client takes all of them`);
  return { kind: 'random', k: cfg.channels.k, pool };
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (!signal.aborted && Date.now() < until) {
    if (await cond()) return true;
    await sleep(250, signal);
  }
  return false;
}

/** Mean machine busy fraction over the timeline rows inside window `w`. */
function meanBusy(timeline: readonly TimelineRow[], startedAt: number, w: Counters): number | null {
  const end = w.endedAt ?? Date.now();
  const xs = timeline
    .filter((r) => r.machine_busy !== null && startedAt + r.t * 1000 > w.startedAt && startedAt + r.t * 1000 <= end + 500)
    .map((r) => r.machine_busy as number);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

