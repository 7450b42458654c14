// A shard process: receives client sockets from the front, upgrades them with `ws` (noServer),
// and fans out the bus batches the front sends it. It never listens on a port itself.
import net from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { WebSocketServer } from 'ws';
import type { ServerConfig } from '../config/config.js';
import { CloseCode } from '../common/errors.js';
import { BUS_FD, BatchDecoder, type FromShard, type ShardStats, type ToShard } from '../common/ipc.js';
import { createLogger } from '../common/logger.js';
import { Client } from './client.js';
import { ClientEdge } from './client-edge.js';
import { Hub } from './hub.js';
import { InterestLink } from './interest-link.js';

const STATS_MS = 1000;

export function runShard(config: ServerConfig, id: number): void {
  const log = createLogger(config.logLevel, { role: 'shard', shard: id });
  const send = (m: FromShard): void => {
    if (process.connected) process.send!(m, undefined, {}, () => {}); // a failed send is no 'error' event
  };

  const registry = new Registry();
  registry.setDefaultLabels({ shard: String(id) });
  collectDefaultMetrics({ register: registry, prefix: 'odin_ws_' });
  const m = {
    deliveries: new Counter({ name: 'odin_ws_deliveries_total', help: 'Messages delivered to clients', registers: [registry] }),
    slow: new Counter({ name: 'odin_ws_slow_consumers_total', help: 'Clients closed with 4008 (slow consumer)', registers: [registry] }),
    errors: new Counter({ name: 'odin_ws_client_errors_total', help: 'Protocol errors sent to clients', labelNames: ['code'], registers: [registry] }),
    busMessages: new Counter({ name: 'odin_ws_shard_bus_messages_total', help: 'Bus messages received by the shard', registers: [registry] }),
    subscriptions: new Gauge({ name: 'odin_ws_shard_channels', help: 'Channels with a local subscriber', registers: [registry] }),
  };

  // Backpressure is the link's one batch in flight; the callback only keeps a failed send from
  // becoming an 'error' event.
  const link = new InterestLink((msg) => {
    if (!process.connected) return false;
    process.send!(msg, undefined, {}, () => {});
    return true;
  });
  const hub = new Hub({ first: (ch) => link.want(ch), last: (ch) => link.drop(ch) });

  const clients = new Set<Client>();
  let slowConsumers = 0;
  let busBatches = 0;
  let busMessages = 0;
  let draining = false;
  const edge = new ClientEdge(config, {
    hub,
    registry,
    log,
    clients: () => clients,
    gate: (ch) => link.gate(ch),
    onSlow: () => {
      slowConsumers++;
      m.slow.inc();
    },
    onError: (code) => m.errors.inc({ code }),
  });
  edge.start();

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: config.maxPayload,
    clientTracking: false,
    autoPong: false, // the client answers pings itself, within its rate limit and output cap
    handleProtocols: chooseProtocol,
  });

  function accept(msg: Extract<ToShard, { t: 'conn' }>, socket: net.Socket): void {
    if (draining) {
      socket.destroy();
      send({ t: 'conn-failed' });
      return;
    }
    let upgraded = false;
    socket.once('close', () => {
      if (!upgraded) send({ t: 'conn-failed' });
    });
    const req = { method: msg.method, url: msg.url, headers: msg.headers } as never;
    wss.handleUpgrade(req, socket, Buffer.from(msg.head, 'base64'), (ws) => {
      upgraded = true;
      const client = new Client(ws, socket, edge.ctx, msg.claims);
      clients.add(client);
      ws.on('error', () => {}); // close follows; ws already sent the right close code (e.g. 1009)
      ws.on('close', () => {
        client.dispose();
        clients.delete(client);
        send({ t: 'closed' });
      });
    });
  }

  const decoder = new BatchDecoder();
  const bus = new net.Socket({ fd: BUS_FD, readable: true, writable: false });
  bus.on('data', (chunk: Buffer) =>
    decoder.push(chunk, (batch) => {
      busBatches++;
      busMessages += batch.length;
      m.busMessages.inc(batch.length);
      const before = hub.deliveries;
      hub.publish(batch);
      m.deliveries.inc(hub.deliveries - before);
    }),
  );
  bus.on('error', (err) => log.error({ err }, 'bus pipe error'));

  let lastCpu = process.cpuUsage();
  let lastAt = Date.now();
  const statsTimer = setInterval(() => {
    const cpu = process.cpuUsage(lastCpu);
    const now = Date.now();
    const stats: ShardStats = {
      connections: clients.size,
      channels: hub.channels,
      deliveries: hub.deliveries,
      busBatches,
      busMessages,
      slowConsumers,
      ...edge.stats(),
      rssMb: process.memoryUsage.rss() / 1048576,
      cpu: (cpu.user + cpu.system) / 1000 / Math.max(1, now - lastAt),
    };
    lastCpu = process.cpuUsage();
    lastAt = now;
    m.subscriptions.set(hub.channels);
    send({ t: 'stats', stats });
  }, STATS_MS);

  function drain(deadlineMs: number): void {
    if (draining) return;
    draining = true;
    clearInterval(statsTimer);
    edge.stop();
    link.stop();
    log.info({ clients: clients.size }, 'draining');
    for (const c of clients) c.close(CloseCode.GOING_AWAY, 'server shutting down');
    const finish = () => {
      bus.destroy();
      process.exit(0);
    };
    const deadline = setTimeout(finish, Math.max(0, deadlineMs - Date.now()));
    const check = setInterval(() => {
      if (clients.size === 0) {
        clearTimeout(deadline);
        clearInterval(check);
        // Let the close frames flush before exiting.
        setTimeout(finish, 50);
      }
    }, 20);
  }

  // The front keeps only a few handles in flight per shard (see HANDOFF_WINDOW); one `got` per
  // event-loop turn tells it how many arrived.
  let gotPending = 0;
  const ackConn = () => {
    if (gotPending++ === 0) {
      setImmediate(() => {
        send({ t: 'got', n: gotPending });
        gotPending = 0;
      });
    }
  };

  process.on('message', (msg: ToShard, handle?: unknown) => {
    switch (msg.t) {
      case 'conn':
        ackConn();
        // Node sends the message without the handle when the socket died in the front first.
        if (handle instanceof net.Socket) accept(msg, handle);
        else send({ t: 'conn-failed' });
        break;
      case 'interest-ack':
        link.acked(msg.seq);
        break;
      case 'metrics-req':
        registry.getMetricsAsJSON().then((metrics) => send({ t: 'metrics-res', id: msg.id, metrics }));
        break;
      case 'drain':
        drain(msg.deadlineMs);
        break;
    }
  });
  // The front orchestrates shutdown; a terminal's Ctrl-C reaches the whole process group.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  process.on('disconnect', () => drain(Date.now() + config.drainTimeoutMs));

  log.debug('shard ready');
  send({ t: 'ready' });
}

/**
 * The subprotocol to answer with. A client that offers any protocol fails the handshake unless
 * the server picks one of them, but echoing `bearer.<jwt>` would copy the credential into the
 * response: prefer any other offered protocol, and answer with the bearer entry only when it is
 * the sole offer.
 */
export function chooseProtocol(offered: Set<string>): string | false {
  for (const p of offered) if (!p.startsWith('bearer.')) return p;
  const first = offered.values().next();
  return first.done ? false : first.value;
}
