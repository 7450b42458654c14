// The front process: supervises the shards (which own the public port), runs the guard's view of
// the whole server's load, answers the /health and /metrics requests the shards pass up, and
// orders the shutdown. It accepts no client connection itself.
import { AggregatorRegistry, Counter, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import type { BroadcastBus } from '../bus/broadcast-bus.js';
import type { ServerConfig } from '../config/config.js';
import type { MessageSource } from '../common/contracts.js';
import type { Logger } from '../common/logger.js';
import { ResourceGuard } from './guard.js';
import { buildHealth, publicHealth } from './health.js';
import type { HttpAnswer, ShardPool } from './shard-pool.js';
import type { RecoveryWindow } from '../bus/recovery-window.js';
import { RecoveryDesk } from './recovery-desk.js';

const SAMPLE_MS = 1000;
const JSON_TYPE = 'application/json';

export class Front {
  private readonly guard: ResourceGuard;
  private readonly desk: RecoveryDesk;
  private readonly startedAt = Date.now();
  private draining = false;
  private stopPromise: Promise<void> | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private lastCpu = process.cpuUsage();
  private lastSampleAt = Date.now();
  private load = { cpu: 0, memoryMb: 0 };
  port = 0;

  constructor(
    private readonly config: ServerConfig,
    private readonly log: Logger,
    private readonly registry: Registry,
    private readonly pool: ShardPool,
    private readonly bus: BroadcastBus,
    private readonly source: MessageSource,
    private readonly window: RecoveryWindow,
    private readonly version: string,
  ) {
    this.guard = new ResourceGuard(config);
    this.desk = new RecoveryDesk(window, { waitMs: config.recoveryWaitMs, maxReplayBytes: config.recoveryMaxReplayBytes });
    pool.handleRecover((shard, rid, items) => this.desk.handle(shard, rid, items));
    this.recoveryMetrics(registry);
    collectDefaultMetrics({ register: registry, prefix: 'odin_ws_', labels: { shard: 'front' } });
    new Gauge({
      name: 'odin_ws_connections',
      help: 'Client connections per shard',
      labelNames: ['shard'],
      registers: [registry],
      collect() {
        for (const s of pool.shards) this.set({ shard: String(s.id) }, s.connections);
      },
    });
    this.supervisionMetrics(registry, pool, version);
    pool.handleHttp((kind, detail) => (kind === 'health' ? this.healthAnswer(detail) : this.metricsAnswer()));
  }

  /** What the dashboard shows about the shards' health; the values live in the pool. */
  private supervisionMetrics(registry: Registry, pool: ShardPool, version: string): void {
    const perShard = (name: string, help: string, value: (s: ShardPool['shards'][number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['shard'],
        registers: [registry],
        collect() {
          for (const s of pool.shards) this.set({ shard: String(s.id) }, value(s));
        },
      });
    perShard('odin_ws_shard_up', '1 while the shard is listening and answering heartbeats', (s) => (s.ready ? 1 : 0));
    perShard('odin_ws_shard_heartbeat_rtt_seconds', 'Round trip of the last heartbeat the shard answered', (s) => s.beatRttMs / 1000);
    perShard('odin_ws_shard_event_loop_lag_seconds', 'worst quarter-second p99 event-loop delay of the shard over its last stats interval', (s) => (s.stats?.loopLagMs ?? 0) / 1000);
    perShard('odin_ws_shard_delivery_lag_seconds', 'worst quarter-second p99 age of bus batches when the shard delivered them, over its last stats interval', (s) => (s.stats?.deliveryLagMs ?? 0) / 1000);
    perShard('odin_ws_shard_fanout_share', 'worst quarter-second share of real time the shard spent writing bus batches to its clients, over its last stats interval', (s) => s.stats?.fanoutShare ?? 0);
    perShard('odin_ws_shard_ceiling', 'clients past which the shard refuses upgrades after a probation cut (+Inf: none)', (s) => s.stats?.ceiling ?? Infinity);
    perShard('odin_ws_shard_saturated', '1 while the shard refuses upgrades because its loop delay or delivery lag passed WS_SATURATION_LAG_MS', (s) => (s.stats?.saturated ? 1 : 0));
    perShard('odin_ws_shard_crash_looping', '1 while the shard exited 3 times within a minute and has not been stable since', (s) => (s.crashLooping ? 1 : 0));
    perShard('odin_ws_relays_in_flight', 'Relayed connections sent to the shard and not yet confirmed', (s) => s.relaysInFlight.length);
    const restarts = new Counter({ name: 'odin_ws_shard_restarts_total', help: 'Shard restarts by cause (crash: it exited; hang: declared hung and killed)', labelNames: ['shard', 'cause'], registers: [registry] });
    for (const s of pool.shards) for (const cause of ['crash', 'hang']) restarts.inc({ shard: String(s.id), cause }, 0);
    pool.onRestart = (s, cause) => restarts.inc({ shard: String(s.id), cause });
    new Gauge({ name: 'odin_ws_build_info', help: 'The release serving (always 1)', labelNames: ['version'], registers: [registry] }).set({ version }, 1);
  }

  /** The recovery window's size and the answers given from it. */
  private recoveryMetrics(registry: Registry): void {
    const window = this.window;
    const desk = this.desk;
    new Gauge({ name: 'odin_ws_recovery_window_messages', help: 'Messages kept in the recovery window', registers: [registry], collect() { this.set(window.stats().messages); } });
    new Gauge({ name: 'odin_ws_recovery_window_bytes', help: 'Bytes the recovery window holds (text plus a per-entry estimate), against WS_RECOVERY_MAX_BYTES', registers: [registry], collect() { this.set(window.stats().bytes); } });
    // Counters whose values live in the window and the desk: each scrape adds what was added since.
    const mirror = (name: string, help: string, label: string, read: () => Record<string, number>) => {
      const seen: Record<string, number> = {};
      new Counter({
        name,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          for (const [k, n] of Object.entries(read())) {
            this.inc({ [label]: k }, n - (seen[k] ?? 0));
            seen[k] = n;
          }
        },
      });
    };
    mirror('odin_ws_recovery_evictions_total', 'Messages evicted from the recovery window, by cause (time, bytes, count)', 'cause', () => window.stats().evicted);
    mirror('odin_ws_recovery_unrecoverable_total', 'Channel recoveries refused, by reason', 'reason', () => desk.unrecoverable);
    let replayed = 0;
    new Counter({
      name: 'odin_ws_recovery_replayed_total',
      help: 'Messages replayed to recovering clients (after their since, or the last value)',
      registers: [registry],
      collect() {
        this.inc(desk.replayed - replayed);
        replayed = desk.replayed;
      },
    });
  }

  /** Forks the shards (they listen), then logs the addresses once every shard is listening. */
  async start(): Promise<void> {
    this.log.info(
      { max_connections: this.config.maxConnections, cpu_limit: this.config.cpuLimit, memory_limit_mb: this.config.memoryLimitMb },
      'resource guard enabled',
    );
    this.port = await this.pool.start();
    this.sampleLoad();
    this.sampler = setInterval(() => this.sampleLoad(), SAMPLE_MS);
    this.sampler.unref();
    const { host } = this.config.addr;
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    this.log.info(
      { port: this.port, ws_url: `ws://${shown}:${this.port}/ws`, health_url: `http://${shown}:${this.port}/health`, metrics_url: `http://${shown}:${this.port}/metrics` },
      'listening',
    );
  }

  /** Health 503, the drain notice, clients 1001, shards exit (closing the port): notice + drain deadline. */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  private async shutdown(): Promise<void> {
    const { drainNoticeMs, drainTimeoutMs } = this.config;
    this.draining = true;
    this.log.info({ notice_ms: drainNoticeMs, deadline_ms: drainTimeoutMs, connections: this.pool.totalConnections }, 'draining');
    // Shards keep their listeners while they drain, answering 503 to /health and upgrades, so
    // load balancers and reconnecting clients learn this instance is going away.
    this.pool.setFlags({ refuse: 'draining', draining: true });
    // The notice: clients are still served (source and bus run) while a balancer's health check
    // sees the 503 and stops sending new connections here, so the 1001s below reconnect elsewhere.
    if (drainNoticeMs > 0) await new Promise((r) => setTimeout(r, drainNoticeMs));
    const deadline = Date.now() + drainTimeoutMs;
    await this.source.stop();
    this.bus.stop();
    await this.pool.drain(deadline);
    this.desk.stop();
    if (this.sampler) clearInterval(this.sampler);
    this.log.info('stopped');
  }

  private sampleLoad(): void {
    const now = Date.now();
    const d = process.cpuUsage(this.lastCpu);
    let cpu = (d.user + d.system) / 1000 / Math.max(1, now - this.lastSampleAt);
    this.lastCpu = process.cpuUsage();
    this.lastSampleAt = now;
    let mem = process.memoryUsage.rss() / 1048576;
    for (const s of this.pool.shards) {
      if (!s.stats) continue;
      cpu += s.stats.cpu;
      mem += s.stats.rssMb;
    }
    this.load = { cpu, memoryMb: mem };
    if (!this.draining) this.pool.setFlags({ refuse: this.guard.check(this.load), draining: false });
  }

  private async healthAnswer(detail: boolean): Promise<HttpAnswer> {
    const status = this.draining ? 503 : 200;
    if (detail) await this.pool.refreshStats();
    const body = detail
      ? buildHealth({ config: this.config, version: this.version, draining: this.draining, startedAt: this.startedAt, load: this.load, pool: this.pool, bus: this.bus, source: this.source, window: this.window, desk: this.desk })
      : publicHealth(this.draining);
    return { status, type: JSON_TYPE, body: JSON.stringify(body) };
  }

  private async metricsAnswer(): Promise<HttpAnswer> {
    const mine = await this.registry.getMetricsAsJSON();
    const theirs = await this.pool.collectMetrics();
    const merged = AggregatorRegistry.aggregate([mine, ...theirs] as never);
    return { status: 200, type: merged.contentType, body: await merged.metrics() };
  }
}
