// What limited a scenario, from the per-role CPU over its measured window. A Node process runs its
// JavaScript on one thread, so a role near 1 core is saturated; the machine near all its cores means
// the processes (ours and other people's) were competing for the CPUs.
import type { RoleCpu } from './roles.js';

const SATURATED = 0.85; // cores: a single-threaded process at this is at its ceiling
const MOSTLY_SATURATED = 0.75; // cores: the consumer is CPU-bound but also waits on fetches
const MACHINE_FULL = 0.9; // fraction of all cores busy
const MOSTLY_FULL = 0.8;

const ours = (c: RoleCpu) => Math.round((c.cores.front + c.cores.shards + c.cores.broker + c.cores.bench + c.cores.generator) * 100) / 100;
const fmt = (c: RoleCpu) =>
  `this run's processes ${ours(c)} cores; cores over ${c.window_s} s: front ${c.cores.front}, shards ${c.cores.shards}, broker ${c.cores.broker}, bench process ${c.cores.bench}, generator ${c.cores.generator}, other processes ${c.other_processes_cores}, irq/softirq ${c.irq_softirq_cores}, steal ${c.steal_cores}; machine ${c.machine_busy_cores} busy`;

export interface ProfileSummary {
  by_category_pct?: Record<string, number>;
}

export function verdictK1(server: RoleCpu | null, baseline: RoleCpu | null, cores: number, profile: ProfileSummary | null) {
  if (!server) return { limited_by: 'unknown', detail: 'the consume window was shorter than one CPU sample' };
  const parts: string[] = [];
  const full = server.machine_busy_cores >= MACHINE_FULL * cores;
  const busy = server.machine_busy_cores >= MOSTLY_FULL * cores;
  let limited_by: string;
  if (server.cores.front >= MOSTLY_SATURATED) {
    // Between fetch responses the consumer waits on the socket, so a CPU-bound front shows a bit
    // under 1 core; with the machine busy the rest is time spent waiting for a core.
    limited_by = busy ? 'front_cpu+cores_shared' : 'front_cpu';
    parts.push(`the front process was at ${server.cores.front} cores: its one JS thread runs the kafkajs fetch decode, the record mapping (JSON.parse per record) and the bus serialisation`);
    if (busy) parts.push(`the machine was ${server.machine_busy_cores} of ${cores} cores busy (${server.other_processes_cores} cores of other processes), so the front also waited for a core`);
  } else if (full) {
    limited_by = 'cores_shared';
    parts.push(`the ${cores} cores were full (${server.machine_busy_cores} busy) and shared by the broker, the server and ${server.other_processes_cores} cores of other processes`);
  } else if (server.cores.broker >= SATURATED) {
    limited_by = 'broker_cpu';
    parts.push(`the broker JVM was at ${server.cores.broker} cores`);
  } else {
    limited_by = 'fetch_round_trips';
    parts.push('no process and not the machine was saturated: the consumer waited on fetch round trips');
  }
  if (profile?.by_category_pct) {
    const top = Object.entries(profile.by_category_pct).slice(0, 6).map(([k, v]) => `${k} ${v}%`);
    parts.push(`front CPU profile: ${top.join(', ')}`);
  }
  parts.push(`server window ${fmt(server)}`);
  if (baseline) parts.push(`baseline window ${fmt(baseline)}`);
  return { limited_by, detail: parts.join('; ') };
}

export interface K2Input {
  cpu: RoleCpu | null;
  cores: number;
  producer: { target_rate: number; achieved_rate: number; sent: number; skipped_behind: number; errors: number };
  p99: number | null;
  p99Max: number;
  missing: number;
  kafkaLost: number;
  generator: { cpu_cores: number; worker_cpu_max: number };
  loadtest: { limited_by: string; detail: string };
}

export function verdictK2(x: K2Input) {
  const parts: string[] = [];
  const saturated: string[] = [];
  const c = x.cpu;
  if (x.producer.achieved_rate < 0.95 * x.producer.target_rate || x.producer.skipped_behind > 0.01 * x.producer.sent) {
    saturated.push('producer');
    parts.push(`the kafkajs producer reached ${x.producer.achieved_rate} of ${x.producer.target_rate} records/s (${x.producer.skipped_behind} records skipped behind schedule, ${x.producer.errors} send errors)`);
  }
  if (c) {
    for (const role of ['front', 'shards', 'broker', 'bench'] as const) {
      if (c.cores[role] >= SATURATED) saturated.push(role === 'bench' ? 'producer_process_cpu' : `${role}_cpu`);
    }
    if (x.generator.worker_cpu_max >= SATURATED) saturated.push('generator');
    if (c.machine_busy_cores >= MACHINE_FULL * x.cores) saturated.push('cores_shared');
  }
  const ok = x.p99 !== null && x.p99 <= x.p99Max && x.missing === 0 && x.kafkaLost <= 0;
  let limited_by: string;
  if (saturated.length) limited_by = [...new Set(saturated)].join('+');
  else limited_by = ok ? 'none_at_this_rate' : 'latency_without_saturation';
  if (ok && saturated.length) parts.push(`target met although ${limited_by} was at its ceiling`);
  if (!ok) parts.push(`p99 ${x.p99} ms (max ${x.p99Max}), ${x.missing} missing by seq, ${Math.max(0, x.kafkaLost)} acked records not consumed`);
  if (c) parts.push(fmt(c));
  parts.push(`generator ${x.generator.cpu_cores} cores (busiest worker ${x.generator.worker_cpu_max}); its own verdict: ${x.loadtest.limited_by}: ${x.loadtest.detail}`);
  return { limited_by, detail: parts.join('; ') };
}
