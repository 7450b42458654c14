// CPU-seconds per role, from /proc, sampled while a scenario runs: the broker JVM, the server's
// front process, its shard processes, this benchmark process (producer or baseline consumer), the
// load generator (every other descendant of this process), and the rest of the shared machine.
import { readFileSync } from 'node:fs';
import { processTree } from '../lib/proc-tree.js';
import { machineTicks } from '../lib/machine.js';

export const ROLES = ['broker', 'front', 'shards', 'bench', 'generator'] as const;
export type Role = (typeof ROLES)[number];

const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat counts in it on every mainstream kernel

function cpuTicks(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime, stime
  } catch {
    return 0;
  }
}

interface Sample {
  at: number;
  cpu: Record<Role, number>; // seconds, cumulative
  machineBusy: number; // jiffies, all cores
  machineTotal: number;
  irq: number; // irq + softirq jiffies
  steal: number;
}

export class RoleSampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Cumulative CPU of processes of a role that exited: keeps the sums monotonic. */
  private readonly gone: Record<Role, number> = { broker: 0, front: 0, shards: 0, bench: 0, generator: 0 };
  private readonly lastSeen = new Map<number, { role: Role; s: number }>();

  constructor(
    private readonly pids: { broker: () => number | null; server: () => number | null },
    private readonly everyMs = 250,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }

  sample(): void {
    const broker = this.pids.broker();
    const server = this.pids.server();
    const serverTree = server ? processTree(server) : [];
    const roleOf = new Map<number, Role>();
    for (const pid of processTree(process.pid)) roleOf.set(pid, 'generator');
    roleOf.set(process.pid, 'bench');
    if (broker) roleOf.set(broker, 'broker');
    serverTree.forEach((pid, i) => roleOf.set(pid, i === 0 ? 'front' : 'shards'));
    const cpu: Record<Role, number> = { ...this.gone };
    const seen = new Set<number>();
    for (const [pid, role] of roleOf) {
      const s = cpuTicks(pid) / CLK_TCK;
      cpu[role] += s;
      this.lastSeen.set(pid, { role, s });
      seen.add(pid);
    }
    for (const [pid, v] of this.lastSeen) {
      if (seen.has(pid)) continue;
      this.gone[v.role] += v.s;
      cpu[v.role] += v.s;
      this.lastSeen.delete(pid);
    }
    const m = machineTicks();
    this.samples.push({ at: Date.now(), cpu, machineBusy: m.busy, machineTotal: m.total, irq: m.softirq, steal: m.steal });
  }

  /**
   * Per-role CPU seconds and cores, and the whole machine's busy cores, between two instants: from
   * the last sample at or before `from` to the first at or after `to` (slightly wider, never empty).
   */
  between(from: number, to: number, cores: number) {
    const s = this.samples;
    const a = [...s].reverse().find((x) => x.at <= from) ?? s[0];
    const b = s.find((x) => x.at >= to) ?? s[s.length - 1];
    if (!a || !b || b.at <= a.at) return null;
    const seconds = (b.at - a.at) / 1000;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    const cpu_s = Object.fromEntries(ROLES.map((r) => [r, r2(b.cpu[r] - a.cpu[r])])) as Record<Role, number>;
    const cores_used = Object.fromEntries(ROLES.map((r) => [r, r2((b.cpu[r] - a.cpu[r]) / seconds)])) as Record<Role, number>;
    const share = (x: number) => (x / Math.max(1, b.machineTotal - a.machineTotal)) * cores;
    const machineCores = share(b.machineBusy - a.machineBusy);
    const irq = share(b.irq - a.irq);
    const steal = share(b.steal - a.steal);
    const ours = ROLES.reduce((acc, r) => acc + cores_used[r], 0);
    return {
      window_s: r2(seconds),
      cpu_s,
      cores: cores_used,
      machine_busy_cores: r2(machineCores),
      irq_softirq_cores: r2(irq),
      steal_cores: r2(steal),
      // Busy time not charged to our processes, nor to interrupts or the host: other people's work.
      other_processes_cores: r2(Math.max(0, machineCores - ours - irq - steal)),
    };
  }
}

export type RoleCpu = NonNullable<ReturnType<RoleSampler['between']>>;
