// When a shard that stopped answering heartbeats is declared hung. A shard that is not running at
// all (SIGSTOP, blocked in the kernel, deadlocked) is hung at the liveness bound. One that keeps
// using CPU while silent is either a runaway task or a shard working through a backlog on a
// starved machine (a reconnect storm): killing the second drops all its clients into the storm
// that starved it, so a running shard gets BUSY_FACTOR times the bound before it is killed.
import { readFileSync } from 'node:fs';

export const BUSY_FACTOR = 4;
/** CPU below this share of the silent window counts as not running (accounting is in 10 ms ticks). */
const RUNNING_SHARE = 0.02;
/** Linux reports process CPU in clock ticks; USER_HZ is 100 on every architecture Node runs on. */
const TICK_MS = 10;

/** A process's CPU time (user + system) in ms, or null where /proc cannot tell (not Linux, gone). */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
    return Number.isFinite(ticks) ? ticks * TICK_MS : null;
  } catch {
    return null;
  }
}

export interface Silence {
  /** ms since the shard's last heartbeat answer. */
  readonly silentMs: number;
  /** CPU the shard used over the last observed window while silent, and that window; null: unknown. */
  readonly cpuMs: number | null;
  readonly windowMs: number;
}

/** Why a silent shard is hung: not running, running past BUSY_FACTOR x the bound, or no CPU reading. */
export type HungCause = 'not_running' | 'running_too_long' | 'cpu_unknown';

/** null: keep waiting; else why it is hung. */
export function hungVerdict(s: Silence, boundMs: number): HungCause | null {
  if (s.silentMs <= boundMs) return null;
  if (s.cpuMs === null || s.windowMs <= 0) return 'cpu_unknown';
  if (s.cpuMs < s.windowMs * RUNNING_SHARE) return 'not_running';
  return s.silentMs > boundMs * BUSY_FACTOR ? 'running_too_long' : null;
}
