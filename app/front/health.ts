// The /health bodies. The detailed one (pids, memory, CPU against limits, connections against
// capacity, restarts, Kafka group and lag, version) goes only to WS_METRICS_ALLOW; anyone else
// gets what a load balancer and a client need.
import type { BroadcastBus } from '../bus/broadcast-bus.js';
import type { HealthBody, MessageSource } from '../common/contracts.js';
import type { ServerConfig } from '../config/config.js';
import type { ShardPool } from './shard-pool.js';
import type { RecoveryWindow } from '../bus/recovery-window.js';
import type { RecoveryDesk } from './recovery-desk.js';

export interface HealthInputs {
  readonly config: ServerConfig;
  readonly version: string;
  readonly draining: boolean;
  readonly startedAt: number;
  readonly load: { cpu: number; memoryMb: number };
  readonly pool: ShardPool;
  readonly bus: BroadcastBus;
  readonly source: MessageSource;
  readonly window: RecoveryWindow;
  readonly desk: RecoveryDesk;
}

export function publicHealth(draining: boolean): { status: 'ok' | 'draining' } {
  return { status: draining ? 'draining' : 'ok' };
}

export function buildHealth(h: HealthInputs): HealthBody {
  const rejected: Record<string, number> = { max_connections: 0, cpu: 0, memory: 0, draining: 0, saturated: 0 };
  let relayed = 0;
  const relayedBy: Record<string, number> = { balance: 0, no_credit: 0, fd_limit: 0 };
  for (const s of h.pool.shards) {
    for (const [reason, n] of Object.entries(s.stats?.refused ?? {})) rejected[reason] = (rejected[reason] ?? 0) + n;
    for (const [cause, n] of Object.entries(s.stats?.relayedBy ?? {})) relayedBy[cause] = (relayedBy[cause] ?? 0) + n;
    relayed += s.stats?.relayed ?? 0;
  }
  const body: HealthBody = {
    status: h.draining ? 'draining' : 'ok',
    version: h.version,
    mode: h.config.mode,
    system: {
      total_connections: h.pool.totalConnections,
      max_connections: h.config.maxConnections,
      rejected: Object.values(rejected).reduce((a, b) => a + b, 0),
      rejected_by_reason: rejected,
      relayed,
      relayed_by_cause: relayedBy,
      relays_failed: h.pool.relayFailed,
      cpu: round(h.load.cpu),
      cpu_limit: h.config.cpuLimit,
      memory_mb: round(h.load.memoryMb),
      memory_limit_mb: h.config.memoryLimitMb,
      uptime_s: Math.round((Date.now() - h.startedAt) / 1000),
      source: h.source.kind,
      // The guard's inputs and verdicts: total CPU and memory (above), and each shard's loop.
      saturation_lag_ms: h.config.saturationLagMs,
      saturated_shards: h.pool.shards.filter((s) => s.ready && s.stats?.saturated).length,
    },
    shards: h.pool.shards.map((s) => ({
      id: s.id,
      pid: s.proc?.pid ?? null,
      up: s.ready,
      connections: s.connections,
      channels: s.stats?.channels ?? 0,
      restarts: s.restarts,
      crashes: s.restartsBy.crash,
      hangs: s.restartsBy.hang,
      crash_looping: s.crashLooping,
      heartbeat_rtt_ms: s.beatRttMs,
      loop_lag_ms: round(s.stats?.loopLagMs ?? 0),
      delivery_lag_ms: round(s.stats?.deliveryLagMs ?? 0),
      saturated: s.stats?.saturated ?? false,
      fanout_share: round(s.stats?.fanoutShare ?? 0),
      ceiling: s.stats?.ceiling ?? null,
      bus_batches: s.stats?.busBatches ?? 0,
      bus_messages: s.stats?.busMessages ?? 0,
      deliveries: s.stats?.deliveries ?? 0,
      slow_consumers: s.stats?.slowConsumers ?? 0,
      relayed: s.stats?.relayed ?? 0,
      rss_mb: round(s.stats?.rssMb ?? 0),
      cpu: round(s.stats?.cpu ?? 0),
    })),
    bus: h.bus.health(),
    recovery: { ...h.window.stats(), ...h.desk.stats() },
  };
  if (h.source.kind === 'kafka') body.kafka = h.source.health();
  else body.feed = h.source.health();
  return body;
}

const round = (n: number) => Math.round(n * 100) / 100;
