// The front process: one HTTP listener for /ws (upgrade -> guard -> handoff), /health and
// /metrics; it owns the shard pool, the bus and the source, and the shutdown order.
import http from 'node:http';
import net from 'node:net';
import { AggregatorRegistry, Gauge, collectDefaultMetrics, type Registry } from 'prom-client';
import type { BroadcastBus } from '../bus/broadcast-bus.js';
import type { ServerConfig } from '../config/config.js';
import type { HealthBody, MessageSource } from '../common/contracts.js';
import type { Logger } from '../common/logger.js';
import { ResourceGuard, perShardSocketLimit, type RefusalReason } from './guard.js';
import type { ShardPool } from './shard-pool.js';
import type { Authenticator } from './auth.js';
import type { ChannelClaims } from '../common/ipc.js';

const SAMPLE_MS = 1000;

export class Front {
  private readonly server: http.Server;
  private readonly guard: ResourceGuard;
  private readonly perShardMax = perShardSocketLimit();
  private readonly startedAt = Date.now();
  private draining = false;
  private stopPromise: Promise<void> | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private frontCpu = 0;
  port = 0;
  private readonly metricsAllow = new net.BlockList();

  constructor(
    private readonly config: ServerConfig,
    private readonly log: Logger,
    private readonly registry: Registry,
    private readonly pool: ShardPool,
    private readonly bus: BroadcastBus,
    private readonly source: MessageSource,
    private readonly auth: Authenticator | null,
    private readonly version: string,
  ) {
    for (const cidr of config.metricsAllow) {
      const [ip, bits] = cidr.split('/');
      this.metricsAllow.addSubnet(ip, Number(bits), net.isIPv6(ip) ? 'ipv6' : 'ipv4');
    }
    this.guard = new ResourceGuard(config, registry);
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
    // A client that never finishes its request head (slowloris) would hold a front fd for Node's
    // default 60 s, checked only every 30 s: bound both.
    this.server = http.createServer(
      {
        headersTimeout: config.headersTimeoutMs,
        requestTimeout: config.headersTimeoutMs * 2,
        connectionsCheckingInterval: Math.min(1000, Math.ceil(config.headersTimeoutMs / 2)),
      },
      (req, res) => void this.onRequest(req, res),
    );
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket as net.Socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Only when nothing was sent yet: a status line in the middle of a response corrupts it.
      if (socket.writable && (socket as net.Socket).bytesWritten === 0) {
        const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? 400;
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
    this.server.on('error', (err) => this.log.error({ err }, 'listener error'));
  }

  async start(): Promise<void> {
    this.log.info(
      { max_connections: this.config.maxConnections, cpu_limit: this.config.cpuLimit, memory_limit_mb: this.config.memoryLimitMb, per_shard_max: this.perShardMax },
      'resource guard enabled',
    );
    this.sampleLoad();
    this.sampler = setInterval(() => this.sampleLoad(), SAMPLE_MS);
    this.sampler.unref();
    const { host, port } = this.config.addr;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 4096 }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    this.log.info(
      { port: this.port, ws_url: `ws://${shown}:${this.port}/ws`, health_url: `http://${shown}:${this.port}/health`, metrics_url: `http://${shown}:${this.port}/metrics` },
      'listening',
    );
  }

  /** Health 503, listener closed, clients 1001, shards exit: all within the drain deadline. */
  stop(): Promise<void> {
    this.stopPromise ??= this.shutdown();
    return this.stopPromise;
  }

  private async shutdown(): Promise<void> {
    const deadline = Date.now() + this.config.drainTimeoutMs;
    this.draining = true;
    this.log.info({ deadline_ms: this.config.drainTimeoutMs, connections: this.pool.totalConnections }, 'draining');
    // The listener stays up while the shards drain, answering 503 to /health and upgrades, so
    // load balancers and reconnecting clients learn this instance is going away.
    await this.source.stop();
    this.bus.stop();
    await this.pool.drain(deadline);
    // Not awaiting 'close': once sockets have been handed to child processes, net.Server tracks
    // them through its workers, and when those have already exited (as here) Node never emits
    // 'close'. The listening handle closes at once; the only sockets left are plain HTTP ones.
    this.server.close();
    this.server.closeAllConnections();
    await new Promise((r) => setImmediate(r));
    if (this.sampler) clearInterval(this.sampler);
    this.log.info('stopped');
  }

  private lastCpu = process.cpuUsage();
  private lastSampleAt = Date.now();
  private load = { cpu: 0, memoryMb: 0 };

  private sampleLoad(): void {
    const now = Date.now();
    const d = process.cpuUsage(this.lastCpu);
    this.frontCpu = (d.user + d.system) / 1000 / Math.max(1, now - this.lastSampleAt);
    this.lastCpu = process.cpuUsage();
    this.lastSampleAt = now;
    let cpu = this.frontCpu;
    let mem = process.memoryUsage.rss() / 1048576;
    for (const s of this.pool.shards) {
      if (!s.stats) continue;
      cpu += s.stats.cpu;
      mem += s.stats.rssMb;
    }
    this.load = { cpu, memoryMb: mem };
  }

  private refuse(socket: net.Socket, reason: RefusalReason): void {
    this.guard.count(reason);
    rawReply(socket, 503, { error: 'unavailable', reason }, `Retry-After: ${this.config.retryAfterS}\r\n`);
  }

  private onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ws') {
      return rawReply(socket, 404, { error: 'not_found', message: 'WebSocket upgrades are served on /ws' });
    }
    // A request no WebSocket server would accept never costs a shard a handoff.
    const bad = upgradeProblem(req);
    if (bad) {
      return rawReply(socket, bad.status, { error: 'bad_request', message: bad.message }, bad.header);
    }
    if (this.draining) return this.refuse(socket, 'draining');
    const reason = this.guard.check({ connections: this.pool.totalConnections, ...this.load });
    if (reason) return this.refuse(socket, reason);
    if (!this.auth) return this.admit(req, socket, head, undefined);
    void this.auth.verify(req).then((verdict) => {
      if (socket.destroyed) return;
      if (verdict.ok) return this.admit(req, socket, head, verdict.claims);
      rawReply(socket, 401, { error: 'unauthorized', code: verdict.code });
    });
  }

  private admit(req: http.IncomingMessage, socket: net.Socket, head: Buffer, claims: ChannelClaims | undefined): void {
    const shard = this.pool.pick(this.perShardMax);
    if (!shard) return this.refuse(socket, this.pool.shards.some((s) => s.ready) ? 'shard_full' : 'no_shard');
    if (!this.pool.handoff(shard, { method: req.method ?? 'GET', url: req.url ?? '/ws', headers: req.headers, head, claims }, socket)) {
      this.refuse(socket, 'no_shard');
    }
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/health') {
      const body = this.health();
      res.writeHead(this.draining ? 503 : 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
    } else if (path === '/metrics') {
      if (!this.metricsAllowed(req.socket.remoteAddress)) {
        res.writeHead(403, { 'Content-Type': 'text/plain' }).end('forbidden: /metrics is served only to WS_METRICS_ALLOW\n');
        return;
      }
      try {
        const mine = await this.registry.getMetricsAsJSON();
        const theirs = await this.pool.collectMetrics();
        const merged = AggregatorRegistry.aggregate([mine, ...theirs] as never);
        res.writeHead(200, { 'Content-Type': merged.contentType }).end(await merged.metrics());
      } catch (err) {
        this.log.error({ err }, 'metrics aggregation failed');
        res.writeHead(500).end();
      }
    } else if (path === '/ws') {
      res.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain' }).end('use a WebSocket client: this endpoint needs Upgrade: websocket\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /ws, /health, /metrics\n');
    }
  }

  /** /metrics shares the public port, so it is served only to the allowed ranges (Prometheus). */
  private metricsAllowed(addr: string | undefined): boolean {
    if (!addr) return false;
    const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    return net.isIPv4(v4) ? this.metricsAllow.check(v4, 'ipv4') : this.metricsAllow.check(addr, 'ipv6');
  }

  health(): HealthBody {
    const body: HealthBody = {
      status: this.draining ? 'draining' : 'ok',
      version: this.version,
      mode: this.config.mode,
      system: {
        total_connections: this.pool.totalConnections,
        max_connections: this.config.maxConnections,
        rejected: this.guard.totalRejected,
        rejected_by_reason: { ...this.guard.rejected },
        cpu: round(this.load.cpu),
        cpu_limit: this.config.cpuLimit,
        memory_mb: round(this.load.memoryMb),
        memory_limit_mb: this.config.memoryLimitMb,
        uptime_s: Math.round((Date.now() - this.startedAt) / 1000),
        source: this.source.kind,
      },
      shards: this.pool.shards.map((s) => ({
        id: s.id,
        pid: s.proc?.pid ?? null,
        up: s.ready,
        connections: s.connections,
        channels: s.stats?.channels ?? 0,
        restarts: s.restarts,
        bus_batches: s.stats?.busBatches ?? 0,
        bus_messages: s.stats?.busMessages ?? 0,
        deliveries: s.stats?.deliveries ?? 0,
        slow_consumers: s.stats?.slowConsumers ?? 0,
        rss_mb: round(s.stats?.rssMb ?? 0),
        cpu: round(s.stats?.cpu ?? 0),
      })),
      bus: this.bus.health(),
    };
    if (this.source.kind === 'kafka') body.kafka = this.source.health();
    else body.feed = this.source.health();
    return body;
  }
}

const round = (n: number) => Math.round(n * 100) / 100;

/** An HTTP answer written straight to an upgrade socket (no ServerResponse exists there). */
function rawReply(socket: net.Socket, status: number, body: Record<string, unknown>, extraHeaders = ''): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n${extraHeaders}Content-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

/** Node's parser errors that have a more precise status than 400 (as Node's default handler). */
const CLIENT_ERROR_STATUS: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};

const WS_KEY_RE = /^[+/0-9A-Za-z]{22}==$/;

/** The RFC 6455 §4.2.1 checks `ws` would make in the shard, made before the handoff. */
export function upgradeProblem(req: http.IncomingMessage): { status: number; message: string; header?: string } | null {
  if (req.method !== 'GET') return { status: 405, message: 'a WebSocket upgrade must be a GET' };
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return { status: 400, message: 'Upgrade header must be websocket' };
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WS_KEY_RE.test(key)) return { status: 400, message: 'missing or invalid Sec-WebSocket-Key (16 random bytes, base64)' };
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') {
    return { status: 400, message: 'missing or unsupported Sec-WebSocket-Version', header: 'Sec-WebSocket-Version: 13, 8\r\n' };
  }
  return null;
}
