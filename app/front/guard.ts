// The resource guard: decides before the handoff whether a new client may connect. At capacity
// the upgrade is refused with 503 + Retry-After; the server itself never falls over.
import fs from 'node:fs';
import { Counter, type Registry } from 'prom-client';

export type RefusalReason = 'max_connections' | 'cpu' | 'memory' | 'shard_full' | 'no_shard' | 'draining';

export interface GuardLimits {
  readonly maxConnections: number;
  readonly cpuLimit: number;
  readonly memoryLimitMb: number;
}

export interface Load {
  connections: number;
  cpu: number; // cores in use, all processes
  memoryMb: number; // RSS, all processes
}

export class ResourceGuard {
  readonly rejected: Record<RefusalReason, number> = { max_connections: 0, cpu: 0, memory: 0, shard_full: 0, no_shard: 0, draining: 0 };
  private readonly counter: Counter<'reason'>;

  constructor(
    readonly limits: GuardLimits,
    registry: Registry,
  ) {
    this.counter = new Counter({ name: 'odin_ws_rejected_total', help: 'Upgrades refused with 503, by reason', labelNames: ['reason'], registers: [registry] });
    for (const r of Object.keys(this.rejected)) this.counter.inc({ reason: r }, 0);
  }

  /** Null when a new connection may be admitted, else why not. */
  check(load: Load): RefusalReason | null {
    if (load.connections >= this.limits.maxConnections) return 'max_connections';
    if (load.memoryMb >= this.limits.memoryLimitMb) return 'memory';
    if (load.cpu >= this.limits.cpuLimit) return 'cpu';
    return null;
  }

  count(reason: RefusalReason): void {
    this.rejected[reason]++;
    this.counter.inc({ reason });
  }

  get totalRejected(): number {
    return Object.values(this.rejected).reduce((a, b) => a + b, 0);
  }
}

/**
 * Sockets one shard can hold: its open-file soft limit less headroom for its own pipes and
 * files. A shard past it would fail accept-side with EMFILE, so the guard refuses first.
 */
export function perShardSocketLimit(): number {
  try {
    const limits = fs.readFileSync('/proc/self/limits', 'utf8');
    const m = /Max open files\s+(\d+|unlimited)/.exec(limits);
    if (m && m[1] !== 'unlimited') return Math.max(1, Number(m[1]) - 64);
  } catch {
    // not Linux: no limit known
  }
  return Number.MAX_SAFE_INTEGER;
}
