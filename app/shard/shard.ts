// A shard process: listens on the public port itself (SO_REUSEPORT), upgrades its clients with
// `ws` (noServer), fans out the bus batches the front sends it, and reports to the front.
import net from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ServerConfig } from '../config/config.js';
import { CloseCode } from '../common/errors.js';
import { BUS_FD, BatchDecoder, busClockMs, type ChannelClaims, type FromShard, type ShardStats, type ToShard } from '../common/ipc.js';
import { createLogger, type Logger } from '../common/logger.js';
import type { Authenticator } from '../auth/auth.js';
import { createAuthenticator } from '../auth/jwt-auth.js';
import { ExpirySweep } from '../auth/expiry-sweep.js';
import { chooseProtocol } from '../protocol/handshake.js';
import { AdmissionGate, type RelayCause } from './admission-gate.js';
import { Probation } from './probation.js';
import { SaturationMeter, VERDICT_MS } from './saturation.js';
import { Client } from './client.js';
import { ClientEdge } from './client-edge.js';
import { readFdLimit } from '../common/fd-limit.js';
import { HttpEdge } from './http-edge.js';
import { Hub } from './hub.js';
import { InterestLink } from './interest-link.js';
import { RecoveryLink } from './recovery-link.js';
import { PublicListener } from './listener.js';
import { ReadCoalescer } from './read-coalescer.js';

const STATS_MS = 1000;
const ASK_TIMEOUT_MS = 2000;
/** Descriptors kept free for the shard's own pipes, files and the bus. */
const FD_HEADROOM = 64;
/** When the front is gone, clients get 1001 and the shard exits within about this long. */
const ORPHAN_DRAIN_MS = 500;
/** At most this many messages in one merged batch (one read of the pipe is 64 KiB: a few hundred). */
const MAX_MERGED = 1024;

function send(m: FromShard): void {
  if (process.connected) process.send!(m, undefined, {}, () => {}); // a failed send is no 'error' event
}

/** Entry point of the shard role: waits for the front's `init` (config never travels in env). */
export function runShard(): void {
  process.once('message', (msg: ToShard) => {
    if (msg.t !== 'init') return;
    const config = msg.config as ServerConfig;
    new Shard(config, msg.id, config.auth ? createAuthenticator(config.auth) : null).start();
  });
  // The front orchestrates shutdown; a terminal's Ctrl-C reaches the whole process group.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  send({ t: 'booted' });
}

class Shard {
  private readonly log: Logger;
  private readonly registry = new Registry();
  private readonly metrics;
  private readonly link: InterestLink;
  private readonly recovery: RecoveryLink;
  private readonly reconnectWindowMs: number;
  private readonly hub: Hub;
  private readonly clients = new Set<Client>();
  /** Clients admitted within WS_SATURATION_PROBATION_MS, oldest first (empty when it is 0). */
  private readonly probation: Probation;
  private readonly gate: AdmissionGate;
  private readonly wss: WebSocketServer;
  private readonly edge: HttpEdge;
  private readonly listener: PublicListener;
  private readonly decoder = new BatchDecoder();
  private readonly coalescer = new ReadCoalescer(MAX_MERGED, (msgs, stamps) => this.onBatches(msgs, stamps));
  private readonly asks = new Map<number, (a: { status: number; type: string; body: string }) => void>();
  private readonly refused: Record<string, number> = {};
  private readonly maxSockets: number;
  private readonly clientEdge: ClientEdge;
  private bus: net.Socket | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private verdictTimer: NodeJS.Timeout | null = null;
  private nextAsk = 1;
  private slowConsumers = 0;
  private busBatches = 0;
  private busMessages = 0;
  private readonly relayedBy: Record<string, number> = {};
  private draining = false;
  private lastCpu = process.cpuUsage();
  private lastAt = Date.now();
  private cpu = 0;
  private loopLagMs = 0;
  private deliveryLagMs = 0;
  private fanoutShare = 0;
  /** Loop delay and delivery lag, for /health, /metrics and the guard. */
  private readonly saturation: SaturationMeter;
  private readonly handshakeTimers: Record<'admitted' | 'refused', { observe(v: number): void }>;

  constructor(config: ServerConfig, id: number, auth: Authenticator | null) {
    this.log = createLogger(config.logLevel, { role: 'shard', shard: id });
    this.reconnectWindowMs = config.reconnectWindowMs;
    this.saturation = new SaturationMeter(config.saturationLagMs);
    this.probation = new Probation(config.saturationProbationMs, config.retryAfterS * 1000);
    this.registry.setDefaultLabels({ shard: String(id) });
    collectDefaultMetrics({ register: this.registry, prefix: 'odin_ws_' });
    this.metrics = {
      deliveries: new Counter({ name: 'odin_ws_deliveries_total', help: 'Messages delivered to clients', registers: [this.registry] }),
      slow: new Counter({ name: 'odin_ws_slow_consumers_total', help: 'Clients closed with 4008 (slow consumer)', registers: [this.registry] }),
      errors: new Counter({ name: 'odin_ws_client_errors_total', help: 'Protocol errors sent to clients', labelNames: ['code'], registers: [this.registry] }),
      busMessages: new Counter({ name: 'odin_ws_shard_bus_messages_total', help: 'Bus messages received by the shard', registers: [this.registry] }),
      subscriptions: new Gauge({ name: 'odin_ws_shard_channels', help: 'Channels with a local subscriber', registers: [this.registry] }),
      rejected: new Counter({ name: 'odin_ws_rejected_total', help: 'Connections and upgrades refused, by reason', labelNames: ['reason'], registers: [this.registry] }),
      relayed: new Counter({ name: 'odin_ws_relayed_total', help: 'New connections passed to another shard, by cause (balance, no_credit, fd_limit)', labelNames: ['cause'], registers: [this.registry] }),
      deliveryLatency: new Histogram({
        name: 'odin_ws_delivery_latency_seconds',
        help: 'Bus flush to the last client write of the batch in this shard',
        buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers: [this.registry],
      }),
      handshake: new Histogram({
        name: 'odin_ws_handshake_seconds',
        help: 'Upgrade handshakes: accepted (by this shard, or by the one that relayed it) to the 101 or the refusal written, by outcome',
        labelNames: ['outcome'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [this.registry],
      }),
      acceptErrors: new Counter({ name: 'odin_ws_accept_errors_total', help: 'accept() failures (EMFILE, ENFILE...)', labelNames: ['code'], registers: [this.registry] }),
    };
    // Bound once: a label lookup per handshake is measurable on the accept path.
    this.handshakeTimers = { admitted: this.metrics.handshake.labels({ outcome: 'admitted' }), refused: this.metrics.handshake.labels({ outcome: 'refused' }) };
    for (const r of ['max_connections', 'cpu', 'memory', 'draining', 'saturated']) this.metrics.rejected.inc({ reason: r }, 0);
    for (const cause of ['balance', 'no_credit', 'fd_limit'] satisfies RelayCause[]) this.metrics.relayed.inc({ cause }, 0);
    this.maxSockets = Math.max(1, (readFdLimit().soft ?? Number.MAX_SAFE_INTEGER) - FD_HEADROOM);
    // Interest goes to the front coalesced, one batch in flight (backpressure: the next waits for
    // the ack); the send callback only keeps a failed send from becoming an 'error' event.
    const link = (this.link = new InterestLink((msg) => {
      if (!process.connected) return false;
      process.send!(msg, undefined, {}, () => {});
      return true;
    }));
    this.hub = new Hub({ first: (ch) => link.want(ch), last: (ch) => link.drop(ch) });
    const recovery = (this.recovery = new RecoveryLink((msg) => {
      if (!process.connected) return false;
      process.send!(msg, undefined, {}, () => {});
      return true;
    }));
    this.decoder.onReplay = (rid, outcomes, messages) => {
      this.coalescer.flush(); // the live messages before a replay reach the clients before it
      recovery.answered(rid, outcomes, messages);
    };
    this.clientEdge = new ClientEdge(config, {
      hub: this.hub,
      registry: this.registry,
      log: this.log,
      clients: () => this.clients,
      gate: (ch) => link.gate(ch),
      recover: (items, arrive) => recovery.request(items, arrive),
      onSlow: () => {
        this.slowConsumers++;
        this.metrics.slow.inc();
      },
      onError: (code) => this.metrics.errors.inc({ code }),
      auth,
      expiry: new ExpirySweep(),
    });
    // Every socket this shard holds: admitted (handshaking or established) plus plain HTTP ones.
    this.gate = new AdmissionGate(send, () => this.maxSockets - this.gate.held - this.edge.pending);
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: config.maxPayload,
      clientTracking: false,
      autoPong: false, // the client answers pings itself, within its rate limit and output cap
      handleProtocols: chooseProtocol,
    });
    this.edge = new HttpEdge(
      {
        headersTimeoutMs: config.headersTimeoutMs,
        retryAfterS: config.retryAfterS,
        metricsAllow: config.metricsAllow,
        allowedOrigins: config.allowedOrigins,
        perIpLimit: config.maxConnectionsPerIp ? Math.ceil(config.maxConnectionsPerIp / config.shards) : 0,
        // Plain HTTP connections may use at most a quarter of the descriptors: the rest stay for
        // WebSocket clients, and accept() never meets EMFILE because of a half-open flood.
        maxHttpConnections: Math.max(16, Math.min(config.maxHttpConnections, Math.floor(this.maxSockets / 4))),
      },
      {
        gate: this.gate,
        wss: this.wss,
        auth,
        ask: (kind, detail) => this.ask(kind, detail),
        onClient: (ws, socket, claims, release) => this.onClient(ws, socket, claims, release),
        onRefused: (reason) => this.countRefusal(reason),
        onHandshake: (outcome, acceptedAt) => this.handshakeTimers[outcome].observe(Math.max(0, Date.now() - acceptedAt) / 1000),
      },
    );
    this.gate.countPending(() => this.edge.pending);
    this.listener = new PublicListener(config.addr.host, {
      relayCause: () => this.gate.relayCause(),
      relay: (socket, cause) => this.relay(socket, cause),
      serve: (socket) => this.edge.serve(socket),
      onAcceptError: (err) => {
        this.metrics.acceptErrors.inc({ code: err.code ?? 'unknown' });
        this.log.warn({ code: err.code }, 'accept failed');
      },
    });
  }

  start(): void {
    this.bus = new net.Socket({ fd: BUS_FD, readable: true, writable: false });
    this.bus.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk, (batch, flushedAt) => this.coalescer.add(batch, flushedAt));
      this.coalescer.flush();
    });
    this.saturation.start();
    this.bus.on('error', (err) => this.log.error({ err }, 'bus pipe error'));
    this.statsTimer = setInterval(() => this.sendStats(true), STATS_MS);
    let verdictAt = Date.now();
    this.verdictTimer = setInterval(() => {
      const now = Date.now();
      this.judgeSaturation(now - verdictAt - VERDICT_MS);
      verdictAt = now;
    }, VERDICT_MS);
    this.clientEdge.start();
    process.on('message', (msg: ToShard, handle?: unknown) => this.onMessage(msg, handle));
    process.on('disconnect', () => this.drain(Date.now() + ORPHAN_DRAIN_MS));
    send({ t: 'ready' });
  }

  private onClient(ws: WebSocket, socket: net.Socket, claims: ChannelClaims | undefined, release: () => void): void {
    const client = new Client(ws, socket, this.clientEdge.ctx, claims);
    this.clients.add(client);
    this.probation.admitted(client);
    ws.on('error', () => {}); // close follows; ws already sent the right close code (e.g. 1009)
    ws.on('close', () => {
      client.dispose();
      this.clients.delete(client);
      release();
    });
  }

  private onMessage(msg: ToShard, handle: unknown): void {
    switch (msg.t) {
      case 'listen':
        void this.listener.listen(msg.port).then(
          (port) => send({ t: 'listening', port }),
          (err) => {
            this.log.fatal({ err, port: msg.port }, 'cannot listen');
            process.exit(1);
          },
        );
        break;
      case 'grant':
        this.gate.onGrant(msg);
        break;
      case 'conn':
        this.confirmRelay();
        // Node sends the message without the handle when the socket died on the way.
        if (handle instanceof net.Socket) this.edge.serve(handle, msg.at);
        else send({ t: 'relay-failed' });
        break;
      case 'interest-ack':
        this.link.acked(msg.seq);
        break;
      case 'hb':
        send({ t: 'hb-ack', at: msg.at });
        break;
      case 'stats-req':
        this.sendStats(false);
        break;
      case 'metrics-req':
        void this.registry.getMetricsAsJSON().then((metrics) => send({ t: 'metrics-res', id: msg.id, metrics }));
        break;
      case 'http-res':
        this.asks.get(msg.id)?.(msg);
        this.asks.delete(msg.id);
        break;
      case 'drain':
        this.drain(msg.deadlineMs);
        break;
    }
  }

  private relaysGot = 0;

  /** One `relay-got` per event-loop turn tells the front how many relayed sockets arrived. */
  private confirmRelay(): void {
    if (this.relaysGot++ === 0) {
      setImmediate(() => {
        send({ t: 'relay-got', n: this.relaysGot });
        this.relaysGot = 0;
      });
    }
  }

  private relay(socket: net.Socket, cause: string): void {
    this.relayedBy[cause] = (this.relayedBy[cause] ?? 0) + 1;
    this.metrics.relayed.inc({ cause });
    if (!process.connected) return void socket.destroy();
    process.send!({ t: 'relay', at: Date.now() } satisfies FromShard, socket as never, { keepOpen: false }, () => {});
  }

  private ask(kind: 'health' | 'metrics', detail: boolean): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
      const id = this.nextAsk++;
      const timer = setTimeout(() => {
        this.asks.delete(id);
        reject(new Error('front did not answer'));
      }, ASK_TIMEOUT_MS);
      this.asks.set(id, (a) => {
        clearTimeout(timer);
        resolve(a);
      });
      send({ t: 'http-req', id, kind, detail });
    });
  }

  private countRefusal(reason: string): void {
    this.refused[reason] = (this.refused[reason] ?? 0) + 1;
    this.metrics.rejected.inc({ reason });
  }

  /** The bus batches of one read, merged (`stamps`: each one's flush time). */
  private onBatches(batch: Parameters<Hub['publish']>[0], stamps: readonly number[]): void {
    this.busBatches += stamps.length;
    this.busMessages += batch.length;
    this.metrics.busMessages.inc(batch.length);
    const before = this.hub.deliveries;
    const startedAt = busClockMs();
    this.hub.publish(batch);
    const now = busClockMs();
    this.saturation.fanout(now - startedAt);
    const delivered = this.hub.deliveries - before;
    this.metrics.deliveries.inc(delivered);
    if (!delivered) return;
    for (const at of stamps) this.metrics.deliveryLatency.observe(this.saturation.delivered(at, now) / 1000);
  }

  private judgeSaturation(lateMs: number): void {
    const sat = this.saturation.sample(lateMs);
    this.gate.saturated = sat.saturated;
    // Still over the limit (not only waiting to clear): the newest clients on probation go first.
    const lag = Math.max(sat.loopLagMs, sat.deliveryLagMs);
    const limitMs = this.saturation.limitMs;
    if (sat.saturated && lag > limitMs) {
      const load = { pace: sat.pace, fanoutShare: sat.fanoutShare, deliveryLagMs: sat.deliveryLagMs, limitMs };
      const clients = this.clients.size;
      const ceiling = this.probation.ceiling;
      const shed = this.probation.shed(clients, load);
      if (shed || this.probation.ceiling !== ceiling) {
        const fields = { shed, clients, ceiling: this.probation.ceiling, pace: +sat.pace.toFixed(2), fanout_share: +sat.fanoutShare.toFixed(2), delivery_lag_ms: Math.round(sat.deliveryLagMs) };
        this.log.warn(fields, shed ? 'saturated: shed the newest clients on probation (1013)' : 'saturated: ceiling cut');
      }
    } else this.probation.calm(lag < limitMs / 2, this.clients.size);
    this.gate.ceiling = this.probation.ceiling;
    if (!sat.changed) return;
    const fields = { loop_lag_ms: Math.round(sat.loopLagMs), delivery_lag_ms: Math.round(sat.deliveryLagMs), limit_ms: this.saturation.limitMs, saturated: sat.saturated };
    this.log.warn(fields, sat.saturated ? 'saturated: refusing new upgrades' : 'no longer saturated');
  }

  /** `sample`: measure CPU since the previous sample (once a second); else reuse the last figure. */
  private sendStats(sample: boolean): void {
    this.gate.flush();
    if (sample) {
      const cpu = process.cpuUsage(this.lastCpu);
      const now = Date.now();
      const elapsed = now - this.lastAt;
      this.cpu = (cpu.user + cpu.system) / 1000 / Math.max(1, elapsed);
      this.lastCpu = process.cpuUsage();
      this.lastAt = now;
      ({ loopLagMs: this.loopLagMs, deliveryLagMs: this.deliveryLagMs, fanoutShare: this.fanoutShare } = this.saturation.report());
    }
    const stats: ShardStats = {
      connections: this.clients.size,
      channels: this.hub.channels,
      deliveries: this.hub.deliveries,
      busBatches: this.busBatches,
      busMessages: this.busMessages,
      slowConsumers: this.slowConsumers,
      refused: { ...this.refused },
      relayed: Object.values(this.relayedBy).reduce((a, b) => a + b, 0),
      relayedBy: { ...this.relayedBy },
      loopLagMs: this.loopLagMs,
      deliveryLagMs: this.deliveryLagMs,
      saturated: this.gate.saturated,
      fanoutShare: this.fanoutShare,
      ceiling: Number.isFinite(this.probation.ceiling) ? this.probation.ceiling : null,
      ...this.clientEdge.stats(),
      rssMb: process.memoryUsage.rss() / 1048576,
      cpu: this.cpu,
    };
    this.metrics.subscriptions.set(this.hub.channels);
    send({ t: 'stats', stats });
  }

  /** Refuse new upgrades, close every client with 1001, leave the port, exit by the deadline. */
  private drain(deadlineMs: number): void {
    if (this.draining) return;
    this.draining = true;
    this.gate.draining = true;
    if (this.statsTimer) clearInterval(this.statsTimer);
    if (this.verdictTimer) clearInterval(this.verdictTimer);
    this.saturation.stop();
    this.clientEdge.stop();
    this.link.stop();
    this.recovery.stop();
    this.log.info({ clients: this.clients.size }, 'draining');
    // The reason tells clients how long to spread their reconnects over (no stampede).
    const reason = JSON.stringify({ reconnect_within_ms: this.reconnectWindowMs });
    for (const c of this.clients) c.close(CloseCode.GOING_AWAY, reason);
    const finish = () => {
      this.listener.close();
      this.edge.close();
      this.bus?.destroy();
      process.exit(0);
    };
    const deadline = setTimeout(finish, Math.max(0, deadlineMs - Date.now()));
    const check = setInterval(() => {
      if (this.clients.size === 0) {
        clearTimeout(deadline);
        clearInterval(check);
        // Let the close frames flush before exiting.
        setTimeout(finish, 50);
      }
    }, 20);
  }
}
