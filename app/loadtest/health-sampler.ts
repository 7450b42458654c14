// Samples the server's GET /health once a second. The body is validated loosely: a field the
// server does not send is null in the sample, never a crash, so the generator also works against
// servers (the bench baseline, older builds) that report less.

export interface ShardSample {
  id: number;
  connections: number;
  cpu: number | null;
  rss_mb: number | null;
  up: boolean | null;
  /** The shard's saturation inputs and verdict (null from servers that report none). */
  loop_lag_ms: number | null;
  delivery_lag_ms: number | null;
  saturated: boolean | null;
}

export interface HealthSample {
  at: number;
  status: number;
  total_connections: number | null;
  max_connections: number | null;
  rejected: number | null;
  rejected_by_reason: Record<string, number>;
  cpu: number | null;
  cpu_limit: number | null;
  memory_mb: number | null;
  memory_limit_mb: number | null;
  shards: ShardSample[];
}

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

export function parseHealth(body: unknown, status: number, at: number): HealthSample | null {
  if (!body || typeof body !== 'object') return null;
  const b = body as { system?: Record<string, unknown>; shards?: unknown };
  const sys = b.system && typeof b.system === 'object' ? b.system : {};
  const reasons: Record<string, number> = {};
  if (sys.rejected_by_reason && typeof sys.rejected_by_reason === 'object') {
    for (const [k, v] of Object.entries(sys.rejected_by_reason)) if (num(v) !== null) reasons[k] = v as number;
  }
  const shards: ShardSample[] = [];
  if (Array.isArray(b.shards)) {
    for (const s of b.shards as Array<Record<string, unknown>>) {
      if (!s || typeof s !== 'object' || num(s.id) === null || num(s.connections) === null) continue;
      shards.push({ id: s.id as number, connections: s.connections as number, cpu: num(s.cpu), rss_mb: num(s.rss_mb), up: typeof s.up === 'boolean' ? s.up : null, loop_lag_ms: num(s.loop_lag_ms), delivery_lag_ms: num(s.delivery_lag_ms), saturated: typeof s.saturated === 'boolean' ? s.saturated : null });
    }
  }
  return {
    at,
    status,
    total_connections: num(sys.total_connections),
    max_connections: num(sys.max_connections),
    rejected: num(sys.rejected),
    rejected_by_reason: reasons,
    cpu: num(sys.cpu),
    cpu_limit: num(sys.cpu_limit),
    memory_mb: num(sys.memory_mb),
    memory_limit_mb: num(sys.memory_limit_mb),
    shards,
  };
}

export class HealthSampler {
  readonly samples: HealthSample[] = [];
  errors = 0;
  lastError: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;

  constructor(
    private readonly url: string | null,
    private readonly intervalMs = 1000,
  ) {}

  get latest(): HealthSample | null {
    return this.samples[this.samples.length - 1] ?? null;
  }

  /** One sample now (also used before the run to learn max_connections). */
  async sample(): Promise<HealthSample | null> {
    if (!this.url) return null;
    const at = Date.now();
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(Math.max(500, this.intervalMs * 2)) });
      const s = parseHealth(await res.json(), res.status, at);
      if (!s) throw new Error(`unexpected /health body (HTTP ${res.status})`);
      this.samples.push(s);
      return s;
    } catch (err) {
      this.errors++;
      this.lastError = (err as Error).message;
      return null;
    }
  }

  start(): void {
    if (this.timer || !this.url) return;
    this.timer = setInterval(() => {
      if (this.inFlight) return; // a slow server must not pile up requests
      this.inFlight = true;
      void this.sample().finally(() => (this.inFlight = false));
    }, this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
