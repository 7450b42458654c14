// The benchmark baseline: what a plain single-process `ws` server does. It speaks protocol v1
// (subscribe with exact and `<stream>:*` channels), runs the same kind of synthetic feed as the
// odin-ws embedded feed (FEED_TOKENS, FEED_STREAMS, FEED_RATE per channel, FEED_PAYLOAD_BYTES; all
// channels of a tick together), serialises each message once, and then calls send() per client
// per message: no sharding, no coalescing, no buffer limits. /health reports the fields the load
// generator reads. Prints one JSON line {"msg":"listening","port":N} when ready.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

interface Client {
  ws: WebSocket;
  exact: Set<string>;
  wild: Set<string>;
}

function envList(name: string, def: string): string[] {
  const v = (process.env[name] || def).split(',').map((s) => s.trim()).filter(Boolean);
  if (!v.length || v.some((x) => !/^[A-Za-z0-9_.-]{1,64}$/.test(x))) fail(`${name} must be a comma list of [A-Za-z0-9_.-] names`);
  return v;
}

function envNum(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  const x = raw === undefined || raw === '' ? def : Number(raw);
  if (!Number.isFinite(x) || x < min || x > max) fail(`${name}=${raw} must be a number in ${min}..${max}`);
  return x;
}

function fail(msg: string): never {
  process.stderr.write(`ws-baseline: ${msg}\n`);
  process.exit(2);
}

const tokens = envList('FEED_TOKENS', 'ODIN1,ODIN2,ODIN3,ODIN4,ODIN5');
const streams = envList('FEED_STREAMS', 'trades,prices');
const rate = envNum('FEED_RATE', 1, 0.01, 10_000);
const payloadBytes = envNum('FEED_PAYLOAD_BYTES', 0, 0, 65_536);
const port = envNum('PORT', 0, 0, 65_535);
const host = process.env.HOST || '127.0.0.1';

const clients = new Set<Client>();
const exactSubs = new Map<string, Set<Client>>();
const wildSubs = new Map<string, Set<Client>>();
const seqs = new Map<string, number>();
const prices = new Map(tokens.map((t, i) => [t, 100 + i]));
const pad = 'x'.repeat(Math.max(0, payloadBytes - 90));
let deliveries = 0;

const add = (m: Map<string, Set<Client>>, k: string, c: Client) => {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(c);
};

function payload(stream: string, price: number): string {
  const p = pad ? `,"pad":"${pad}"` : '';
  if (stream === 'trades') {
    return `{"price":${price.toFixed(4)},"size":${(Math.random() * 10).toFixed(3)},"side":"${Math.random() < 0.5 ? 'buy' : 'sell'}"${p}}`;
  }
  return `{"bid":${(price * 0.9995).toFixed(4)},"ask":${(price * 1.0005).toFixed(4)},"last":${price.toFixed(4)}${p}}`;
}

function publish(stream: string, token: string, ts: number, data: string): void {
  const channel = `${stream}:${token}`;
  const seq = (seqs.get(channel) ?? 0) + 1;
  seqs.set(channel, seq);
  const text = `{"channel":"${channel}","seq":${seq},"ts":${ts},"data":${data}}`;
  const exact = exactSubs.get(channel);
  if (exact) for (const c of exact) send(c, text);
  const wild = wildSubs.get(stream);
  if (wild) for (const c of wild) if (!exact?.has(c)) send(c, text);
}

function send(c: Client, text: string): void {
  if (c.ws.readyState !== 1) return;
  c.ws.send(text);
  deliveries++;
}

const tickMs = Math.max(10, 1000 / rate);
let owed = 0;
setInterval(() => {
  owed += (rate * tickMs) / 1000;
  const rounds = Math.floor(owed);
  owed -= rounds;
  const ts = Date.now();
  for (let r = 0; r < rounds; r++) {
    for (const token of tokens) {
      const price = prices.get(token)! * (1 + (Math.random() - 0.5) / 500);
      prices.set(token, price);
      for (const stream of streams) publish(stream, token, ts, payload(stream, price));
    }
  }
}, tickMs);

function onMessage(c: Client, raw: Buffer): void {
  let req: { op?: unknown; channels?: unknown; id?: unknown };
  try {
    req = JSON.parse(raw.toString('utf8'));
  } catch {
    c.ws.send(JSON.stringify({ op: 'error', code: 'BAD_JSON', message: 'frame is not JSON' }));
    return;
  }
  const id = req.id;
  if (req.op === 'ping') return c.ws.send(JSON.stringify({ op: 'pong', id }));
  if (req.op !== 'subscribe' && req.op !== 'unsubscribe') return c.ws.send(JSON.stringify({ op: 'error', code: 'UNKNOWN_OP', message: 'unknown op', id }));
  const list = Array.isArray(req.channels) ? req.channels : [];
  const bad = list.filter((ch) => typeof ch !== 'string' || !/^[a-z][a-z0-9_-]{0,31}:(\*|[A-Za-z0-9_.-]{1,64})$/.test(ch));
  if (!list.length || bad.length) return c.ws.send(JSON.stringify({ op: 'error', code: 'BAD_CHANNEL', message: 'bad channel', id }));
  for (const ch of list as string[]) {
    const [stream, token] = ch.split(':');
    const [own, index, key] = token === '*' ? [c.wild, wildSubs, stream] : [c.exact, exactSubs, ch];
    if (req.op === 'subscribe') {
      own.add(key);
      add(index, key, c);
    } else {
      own.delete(key);
      index.get(key)?.delete(c);
    }
  }
  c.ws.send(JSON.stringify({ op: req.op === 'subscribe' ? 'subscribed' : 'unsubscribed', channels: list, id }));
}

let lastCpu = process.cpuUsage();
let lastAt = Date.now();
let cpu = 0;
setInterval(() => {
  const d = process.cpuUsage(lastCpu);
  lastCpu = process.cpuUsage();
  const now = Date.now();
  cpu = (d.user + d.system) / 1000 / Math.max(1, now - lastAt);
  lastAt = now;
}, 1000).unref();

const startedAt = Date.now();
const server = http.createServer((req, res) => {
  if ((req.url ?? '').split('?')[0] !== '/health') return void res.writeHead(404).end();
  const rss = Math.round((process.memoryUsage.rss() / 1048576) * 100) / 100;
  const r2 = Math.round(cpu * 100) / 100;
  res.writeHead(200, { 'Content-Type': 'application/json' }).end(
    JSON.stringify({
      status: 'ok',
      mode: 'single',
      system: { total_connections: clients.size, rejected: 0, rejected_by_reason: {}, cpu: r2, memory_mb: rss, uptime_s: Math.round((Date.now() - startedAt) / 1000), source: 'embedded' },
      shards: [{ id: 0, pid: process.pid, up: true, connections: clients.size, deliveries, rss_mb: rss, cpu: r2 }],
      baseline: true,
    }),
  );
});
const wss = new WebSocketServer({ server, path: '/ws', perMessageDeflate: false });
wss.on('connection', (ws) => {
  const c: Client = { ws, exact: new Set(), wild: new Set() };
  clients.add(c);
  ws.on('message', (raw: Buffer) => onMessage(c, raw));
  ws.on('error', () => ws.terminate());
  ws.on('close', () => {
    clients.delete(c);
    for (const k of c.exact) exactSubs.get(k)?.delete(c);
    for (const k of c.wild) wildSubs.get(k)?.delete(c);
  });
});
server.listen({ host, port, backlog: 4096 }, () => {
  const p = (server.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: p, ws_url: `ws://${host}:${p}/ws`, health_url: `http://${host}:${p}/health` })}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
