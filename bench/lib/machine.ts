// What the benchmark ran on and how busy the (shared) machine was: figures on a 2-core box that
// other people also use mean little without the load next to them.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { machineInfo } from '../../app/loadtest/machine.js';

/** The machine fields every benchmark line carries (the load generator's own description). */
export function machine() {
  const { cpu_model, cores, memory_mb, node, kernel } = machineInfo();
  return { cpu_model, cores, memory_mb, node, kernel };
}

export const loadAverage = () => os.loadavg().map((x) => Math.round(x * 100) / 100) as [number, number, number];

/**
 * Jiffies of all cores: busy (idle and iowait count as not busy), total, and two parts of busy no
 * process is charged for: softirq (loopback TCP is largely processed there) and steal (the VM host).
 */
export function machineTicks(): { busy: number; total: number; softirq: number; steal: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total, softirq: f[6] + f[5], steal: f[7] };
}

/** Busy fraction of the whole machine over `ms`. */
export async function machineBusy(ms: number): Promise<number> {
  const a = machineTicks();
  await new Promise((r) => setTimeout(r, ms));
  const b = machineTicks();
  return Math.round(((b.busy - a.busy) / Math.max(1, b.total - a.total)) * 100) / 100;
}
