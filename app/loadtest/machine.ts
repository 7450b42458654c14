// The generator's machine: what it is, and how busy it is (CPU from /proc/stat, memory from
// /proc/meminfo). On a loopback run this is also the server's machine.
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  hostname: string;
  cpu_model: string;
  cores: number;
  memory_mb: number;
  kernel: string;
  node: string;
}

export function machineInfo(): MachineInfo {
  return {
    hostname: os.hostname(),
    cpu_model: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism(),
    memory_mb: Math.round(os.totalmem() / 1048576),
    kernel: os.release(),
    node: process.version,
  };
}

/** Busy fraction of all cores between calls (null on the first call or without /proc). */
export class MachineCpu {
  private prev: { busy: number; total: number } | null = read();

  sample(): number | null {
    const cur = read();
    const prev = this.prev;
    this.prev = cur;
    if (!cur || !prev || cur.total <= prev.total) return null;
    return (cur.busy - prev.busy) / (cur.total - prev.total);
  }
}

function read(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0); // idle + iowait
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // guest time is already in user
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** MemAvailable / MemTotal, or null without /proc. */
export function memAvailableFraction(): number | null {
  try {
    const text = readFileSync('/proc/meminfo', 'utf8');
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(text)?.[1]);
    const total = get('MemTotal');
    const avail = get('MemAvailable');
    return total && Number.isFinite(avail) ? avail / total : null;
  } catch {
    return null;
  }
}
