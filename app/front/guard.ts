// The resource guard's view of the whole server: total CPU and memory of every process against
// the limits. The front computes the verdict once a second and sends it to the shards with their
// grants; a shard refuses new upgrades with 503 + Retry-After while it says so. Capacity in
// connections is exact and lives in the admission ledger (front/admission.ts).

export type RefusalReason = 'max_connections' | 'cpu' | 'memory' | 'draining';

export interface GuardLimits {
  readonly cpuLimit: number;
  readonly memoryLimitMb: number;
}

export interface Load {
  cpu: number; // cores in use, all processes
  memoryMb: number; // RSS, all processes
}

export class ResourceGuard {
  constructor(readonly limits: GuardLimits) {}

  /** Null when new connections may be admitted, else why not. */
  check(load: Load): RefusalReason | null {
    if (load.memoryMb >= this.limits.memoryLimitMb) return 'memory';
    if (load.cpu >= this.limits.cpuLimit) return 'cpu';
    return null;
  }
}
