#!/usr/bin/env node
// Soak (not in CI): minutes of connection churn, slow consumers and hostile bytes against a locally
// started server (127.0.0.1, port 0), while witness clients check their channels for gaps. Then it
// checks that every process's RSS came back near its baseline and that no file descriptor leaked
// (/proc/<pid>/fd of the front and each shard), and prints ONE JSON line.
//
//   npm run soak -- --minutes 5 [--shards 3] [--witnesses 10] [--churn 100] [--slow 2]
//                   [--rss-tolerance-mb 64] [--settle-s 60]
//
// Exit 0 when every check passed, 1 when one failed, 2 on invalid flags.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { bundle } from './build.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Flag -> [key, min, max, default]; every value is a number. */
const FLAGS = {
  minutes: ['minutes', 0.1, 1440, 5],
  shards: ['shards', 1, 16, 3],
  witnesses: ['witnesses', 1, 200, 10],
  churn: ['churn', 0, 5000, 100],
  slow: ['slow', 0, 50, 2],
  'rss-tolerance-mb': ['rssToleranceMb', 1, 100_000, 64],
  'settle-s': ['settleS', 1, 3600, 60],
};

/** Validated options, or every problem with the offending flag and value. */
export function parseSoakArgs(argv) {
  const problems = [];
  let values = {};
  try {
    values = parseArgs({ args: [...argv], options: Object.fromEntries(Object.keys(FLAGS).map((f) => [f, { type: 'string' }])), strict: true }).values;
  } catch (err) {
    return { ok: false, problems: [`${err.message}; accepted flags: ${Object.keys(FLAGS).map((f) => `--${f}`).join(', ')}`] };
  }
  const opts = {};
  for (const [flag, [key, min, max, def]] of Object.entries(FLAGS)) {
    const raw = values[flag];
    const n = raw === undefined ? def : Number(raw);
    if (!Number.isFinite(n) || n < min || n > max) problems.push(`--${flag}=${JSON.stringify(raw)}: must be a number from ${min} to ${max}`);
    else opts[key] = n;
  }
  return problems.length ? { ok: false, problems } : { ok: true, opts };
}

/** One masked client frame (RFC 6455 §5.2); `declaredLength` writes a length that is a lie. */
export function clientFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, declaredLength } = {}) {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = declaredLength ?? body.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = (mask ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!mask) return Buffer.concat([head, body]);
  const key = randomBytes(4);
  key.copy(head, 2 + ext);
  const out = Buffer.from(body);
  for (let i = 0; i < out.length; i++) out[i] ^= key[i & 3];
  return Buffer.concat([head, out]);
}

const upgrade = (extra = '', method = 'GET') =>
  `${method} /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

/** Hostile inputs: `http` ones are the whole request; `ws` ones follow a good handshake. */
export const HOSTILE = [
  { name: 'non-http', http: () => Buffer.from([0x16, 0x03, 0x01, 0, 0xa5, 1, 0, 0, 0xa1, 13, 10, 13, 10]) },
  { name: 'oversized-headers', http: () => upgrade(`X-Pad: ${'a'.repeat(40_000)}\r\n`) },
  { name: 'no-key', http: () => upgrade().replace(/Sec-WebSocket-Key: .*\r\n/, '') },
  { name: 'post-upgrade', http: () => upgrade('', 'POST') },
  { name: 'over-max-payload', ws: () => clientFrame(1, 'x'.repeat(17_000)) },
  { name: 'huge-declared-length', ws: () => clientFrame(1, Buffer.alloc(0), { declaredLength: 2 ** 40 }) },
  { name: 'fragment-flood', ws: () => Buffer.concat([clientFrame(1, 'y'.repeat(1000), { fin: false }), ...Array.from({ length: 20 }, () => clientFrame(0, 'y'.repeat(1000), { fin: false }))]) },
  { name: 'invalid-utf8', ws: () => clientFrame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])) },
  { name: 'control-over-125', ws: () => clientFrame(9, Buffer.alloc(126)) },
  { name: 'unmasked', ws: () => clientFrame(1, '{"op":"ping"}', { mask: false }) },
  { name: 'subscribe-burst', ws: () => Buffer.concat(Array.from({ length: 400 }, (_, i) => clientFrame(1, `{"op":"subscribe","channels":["trades:S${i}"]}`))) },
];

/** RSS (MiB) and open file descriptors of a live process, from /proc. */
export function procStats(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return { rssMb: Math.round((rssKb / 1024) * 10) / 10, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

/**
 * Compares the final reading with the baseline: each process's fds must match exactly, and the
 * total RSS may exceed the baseline by at most the tolerance (MiB).
 */
export function judge(baseline, final, { rssToleranceMb }) {
  const problems = [];
  for (const [name, b] of Object.entries(baseline)) {
    const f = final[name];
    if (!f) problems.push(`${name}: gone (pid changed or exited)`);
    else if (f.fds !== b.fds) problems.push(`${name}: ${f.fds} fds, baseline ${b.fds}`);
  }
  const sum = (r) => Object.values(r).reduce((n, s) => n + (s?.rssMb ?? 0), 0);
  const growth = Math.round((sum(final) - sum(baseline)) * 10) / 10;
  if (growth > rssToleranceMb) problems.push(`RSS grew ${growth} MiB over the baseline (tolerance ${rssToleranceMb} MiB)`);
  return { ok: problems.length === 0, problems, rssGrowthMb: growth };
}

// ---------------------------------------------------------------------------------------------
// Runtime: the server, its clients and the traffic.

function get(port, p) {
  return new Promise((resolve, reject) => {
    // agent:false -> Connection: close, so our own probes never hold a descriptor in the front.
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${p} timed out`)));
    req.on('error', reject);
  });
}
const health = async (port) => JSON.parse((await get(port, '/health')).body);
const metricSum = (text, name) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((n, l) => n + Number(l.split(' ').pop()), 0);

async function startServer(opts) {
  const proc = spawn(process.execPath, [path.join(root, 'dist/server.mjs'), '--lb-addr', '127.0.0.1:0'], {
    env: {
      ...process.env,
      KAFKA_BROKERS: '',
      WS_SHARDS: String(opts.shards),
      FEED_RATE: '50',
      FEED_PAYLOAD_BYTES: '2048',
      WS_CLIENT_BUFFER_BYTES: '65536',
      WS_CPU_LIMIT: '1000', // capacity is the connection limit; this box also runs the clients
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start within 30 s')), 30_000);
    readline.createInterface({ input: proc.stdout }).on('line', (line) => {
      if (!line.includes('"listening"')) return; // every other line is read and dropped
      clearTimeout(timer);
      resolve(JSON.parse(line).port);
    });
    proc.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
  });
  return { proc, port };
}

function rawHandshake(port, timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(upgrade()));
    const timer = setTimeout(() => (s.destroy(), reject(new Error('handshake timeout'))), timeoutMs);
    let pre = '';
    const onData = (d) => {
      pre += d.toString('latin1');
      if (!pre.includes('\r\n\r\n')) return;
      clearTimeout(timer);
      s.off('data', onData);
      if (!pre.startsWith('HTTP/1.1 101')) return s.destroy(), reject(new Error(pre.slice(0, 12)));
      resolve(s);
    };
    s.on('data', onData);
    s.on('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

/** Sends one hostile input; resolves 'closed' when the server ended it, else 'timeout'. */
async function sendHostile(port, h) {
  let s;
  try {
    s = h.http ? net.connect(port, '127.0.0.1') : await rawHandshake(port);
  } catch {
    return 'handshake-failed';
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => (s.destroy(), resolve('timeout')), 10_000);
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('close', () => (clearTimeout(timer), resolve('closed')));
    const bytes = h.http ? h.http() : h.ws();
    if (h.http) s.once('connect', () => s.write(bytes));
    else s.write(bytes);
  });
}

/** A client that subscribes to everything and never reads again; destroyed after `holdMs`. */
async function slowClient(port, holdMs) {
  const s = await rawHandshake(port).catch(() => null);
  if (!s) return;
  s.on('error', () => {});
  s.pause();
  s.write(clientFrame(1, '{"op":"subscribe","channels":["trades:*","prices:*"]}'));
  await sleep(holdMs);
  s.destroy();
}

/** One churn connection: open, ping, pong, then close or drop; or abandon mid-handshake. */
function churnOne(port, i) {
  const kind = i % 3;
  if (kind === 2) {
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.write(upgrade()), s.destroy()));
      s.on('error', () => {});
      s.on('close', () => resolve('abandoned'));
    });
  }
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const timer = setTimeout(() => (ws.terminate(), resolve('failed')), 10_000);
    const done = (r) => (clearTimeout(timer), resolve(r));
    ws.on('error', () => done('failed'));
    ws.on('unexpected-response', (_q, res) => (res.resume(), ws.terminate(), done(`refused-${res.statusCode}`)));
    ws.on('open', () => ws.send('{"op":"ping"}'));
    ws.on('message', (m) => {
      if (!String(m).includes('"pong"')) return;
      kind === 0 ? ws.close() : ws.terminate();
      done('served');
    });
  });
}

async function pool(n, concurrency, fn) {
  const out = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) {
        const r = await fn(next++);
        out[r] = (out[r] ?? 0) + 1;
      }
    }),
  );
  return out;
}

const add = (into, from) => {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
};

/** Witnesses: steady subscribers whose every message is checked for seq gaps. */
async function startWitnesses(port, n) {
  const state = { messages: 0, gaps: 0, closed: 0, sockets: [] };
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    const last = new Map();
    ws.on('message', (raw) => {
      const v = JSON.parse(String(raw));
      for (const m of Array.isArray(v) ? v : v.op ? [] : [v]) {
        const prev = last.get(m.channel);
        if (prev !== undefined && m.seq !== prev + 1) state.gaps++;
        last.set(m.channel, m.seq);
        state.messages++;
      }
    });
    ws.on('close', () => state.closed++);
    ws.send(JSON.stringify({ op: 'subscribe', channels: [`trades:ODIN${(i % 5) + 1}`] }));
    state.sockets.push(ws);
  }
  return state;
}

function snapshot(frontPid, shardPids) {
  const out = { front: procStats(frontPid) };
  shardPids.forEach((pid, i) => {
    try {
      out[`shard${i}`] = procStats(pid);
    } catch {
      out[`shard${i}`] = null;
    }
  });
  return out;
}

async function waitSettled(port, witnesses, deadlineMs) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const h = await health(port);
    if (h.system.total_connections === witnesses) return h;
    await sleep(250);
  }
  return health(port);
}

export async function main(argv) {
  const parsed = parseSoakArgs(argv);
  if (!parsed.ok) {
    for (const p of parsed.problems) process.stderr.write(`soak: ${p}\n`);
    return 2;
  }
  const opts = parsed.opts;
  await bundle({ only: ['server'] });
  const { proc, port } = await startServer(opts);
  try {
    const first = await health(port);
    const shardPids = first.shards.map((s) => s.pid);
    const witnesses = await startWitnesses(port, opts.witnesses);
    const totals = { rounds: 0, churn: {}, hostile: {} };
    // One round: churn and hostile inputs run to completion; the slow clients it starts are held
    // longer and returned as a promise in a box, so rounds overlap only through them.
    const round = async (holdMs) => {
      const slow = Promise.all(Array.from({ length: opts.slow }, () => slowClient(port, holdMs)));
      const [c, h] = await Promise.all([pool(opts.churn, 16, (i) => churnOne(port, i)), Promise.all(HOSTILE.map((x) => sendHostile(port, x)))]);
      add(totals.churn, c);
      for (const x of h) totals.hostile[x] = (totals.hostile[x] ?? 0) + 1;
      return { slow };
    };

    // Warm-up round (JIT, pools, lazily built state), then settle and take the baseline.
    await (await round(3000)).slow;
    await waitSettled(port, opts.witnesses, 30_000);
    await sleep(2000);
    const baseline = snapshot(proc.pid, shardPids);
    const slowBefore = metricSum((await get(port, '/metrics')).body, 'odin_ws_slow_consumers_total');

    const end = Date.now() + opts.minutes * 60_000;
    const pendingSlow = [];
    const maxRounds = Math.ceil(opts.minutes * 60 * 20); // a bound even if rounds were instant
    while (Date.now() < end && totals.rounds < maxRounds) {
      totals.rounds++;
      pendingSlow.push((await round(10_000)).slow);
      if (pendingSlow.length >= 5) await pendingSlow.shift(); // at most 5 rounds of slow clients
      await sleep(200);
    }
    await Promise.all(pendingSlow);

    const settledHealth = await waitSettled(port, opts.witnesses, 30_000);
    const slowDropped = metricSum((await get(port, '/metrics')).body, 'odin_ws_slow_consumers_total') - slowBefore;
    // RSS and fds settle on their own schedule (GC, TIME_WAIT is not an fd): poll until both pass.
    let final;
    let verdict;
    const settleEnd = Date.now() + opts.settleS * 1000;
    do {
      await sleep(1000);
      final = snapshot(proc.pid, shardPids);
      verdict = judge(baseline, final, opts);
    } while (!verdict.ok && Date.now() < settleEnd);

    const h = await get(port, '/health');
    const restarts = JSON.parse(h.body).shards.reduce((n, s) => n + s.restarts, 0);
    const problems = [...verdict.problems];
    if (witnesses.gaps) problems.push(`witnesses saw ${witnesses.gaps} gaps`);
    if (witnesses.closed) problems.push(`${witnesses.closed} witnesses were closed`);
    if (totals.churn.failed) problems.push(`${totals.churn.failed} churn connections failed`);
    if (totals.hostile.timeout) problems.push(`${totals.hostile.timeout} hostile connections were not closed by the server`);
    if (restarts) problems.push(`${restarts} shard restarts`);
    if (h.status !== 200) problems.push(`/health answered ${h.status}`);
    if (settledHealth.system.total_connections !== opts.witnesses) problems.push(`${settledHealth.system.total_connections} connections counted after the soak, expected ${opts.witnesses}`);
    if (opts.slow && !slowDropped) problems.push('no slow consumer was dropped');

    const summary = {
      ok: problems.length === 0,
      minutes: opts.minutes,
      rounds: totals.rounds,
      churn: totals.churn,
      hostile: totals.hostile,
      slow_consumers_dropped: slowDropped,
      witnesses: { clients: opts.witnesses, messages: witnesses.messages, gaps: witnesses.gaps, closed: witnesses.closed },
      rss_mb: { baseline: mapStat(baseline, 'rssMb'), final: mapStat(final, 'rssMb'), growth: verdict.rssGrowthMb, tolerance: opts.rssToleranceMb },
      fds: { baseline: mapStat(baseline, 'fds'), final: mapStat(final, 'fds') },
      health_status: h.status,
      shard_restarts: restarts,
      problems,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    for (const ws of witnesses.sockets) ws.terminate();
    return summary.ok ? 0 : 1;
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
  }
}

const mapStat = (snap, key) => Object.fromEntries(Object.entries(snap).map(([k, v]) => [k, v?.[key] ?? null]));

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`soak: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
