#!/usr/bin/env node
// The fleet rehearsal on loopback: the real Kafka broker, the publisher, N server processes (the
// built dist/server.mjs, each on its own port with its own consumer group) and HAProxy in TCP mode
// in front, health-checking each node's /health as the GCP balancer does. pid files, logs and the
// HAProxy config live in the state dir.
//
//   node scripts/local-fleet.mjs [up] [--port N] [--nodes N] [--notice-ms N] [--rate N] [--tokens N]
//                                     run in the foreground; Ctrl-C stops everything
//   node scripts/local-fleet.mjs status  HAProxy's view of each node, and each node's /health status
//   node scripts/local-fleet.mjs down  stop what an `up` left running (its pid files)
//
// Tests import startFleet() and drive the nodes (drain, restart, SIGKILL) themselves.
import { $ } from 'zx';
import { Kafka, logLevel } from 'kafkajs';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createTopics, freePort, startBroker, stopPid } from './kafka.mjs';
import { isOurProcess } from './local.mjs';
import { UsageError, intFlag, isMain, parseOptions, runMain } from './ops/cli.mjs';
import { ROOT } from './ops/gcp.mjs';

export const STATE_DIR = path.join(ROOT, '.tmp', 'fleet');
export const BUNDLES = Object.freeze({ server: path.join(ROOT, 'dist', 'server.mjs'), publisher: path.join(ROOT, 'dist', 'publisher.mjs') });
export const DEFAULTS = Object.freeze({
  nodes: 3,
  port: 3004,
  shards: 1,
  noticeMs: 1500,
  drainTimeoutMs: 5000,
  rate: 20,
  tokens: 4,
  check: Object.freeze({ interMs: 500, fall: 2, rise: 2 }),
  // Two descriptors per connection (client and server side): 6000 fits a 20,000 fd limit.
  maxconn: 6000,
});

export const USAGE = `usage: local-fleet.mjs [up|down] [options]
  up    (default) [--port N (balancer, default ${DEFAULTS.port}; 0 = any)] [--nodes N (default ${DEFAULTS.nodes})]
        [--shards N per node (default ${DEFAULTS.shards})] [--notice-ms N (WS_DRAIN_NOTICE_MS, default ${DEFAULTS.noticeMs})]
        [--rate N (publisher records/s, default ${DEFAULTS.rate})] [--tokens N (default ${DEFAULTS.tokens})]
  status  HAProxy's view of each node (UP/DOWN, sessions) and each node's /health
  down  stop what up started (pid files in the state dir)
State dir: ODIN_FLEET_DIR (absolute), default .tmp/fleet. KAFKA_BROKERS: use that broker instead
of starting one.`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * HAProxy in TCP mode (WebSocket frames pass through untouched, as on GCP's passthrough
 * balancer), health-checking GET /health: 200 is up, the 503 of a draining node takes it out of
 * rotation after `fall` checks. Existing connections of a node marked down are left alone (the
 * node closes them itself with 1001). A connect refused by a dead node is redispatched.
 */
export function haproxyConfig({ bind, nodes, socket, check = DEFAULTS.check, maxconn = DEFAULTS.maxconn }) {
  const { interMs, fall, rise } = check;
  const servers = nodes.map((n) => `  server ${n.name} 127.0.0.1:${n.port} check`).join('\n');
  return `# written by scripts/local-fleet.mjs
global
  maxconn ${maxconn}
  log stdout format raw local0 notice
  stats socket ${socket} mode 600 level admin

defaults
  mode tcp
  log global
  timeout connect 2s
  timeout client 10m
  timeout server 10m
  timeout check 1s
  retries 3
  option redispatch

frontend ws
  bind ${bind.host}:${bind.port}
  default_backend nodes

backend nodes
  balance leastconn
  option httpchk GET /health
  http-check expect status 200
  default-server inter ${interMs}ms fastinter ${interMs}ms downinter ${interMs}ms fall ${fall} rise ${rise}
${servers}
`;
}

/** What one node runs with: its own port and consumer group, the fleet's topics and drain notice. */
export function nodeEnv({ brokers, topics, group, noticeMs, drainTimeoutMs, shards }) {
  return {
    KAFKA_BROKERS: brokers,
    KAFKA_TOPICS: topics.join(','),
    KAFKA_CONSUMER_GROUP: group,
    WS_SHARDS: String(shards),
    WS_DRAIN_NOTICE_MS: String(noticeMs),
    WS_DRAIN_TIMEOUT_MS: String(drainTimeoutMs),
    LOG_LEVEL: 'info',
  };
}

/** The per-node consumer group (every node needs every message, so never a shared group). */
export function groupName(fleetId, node) {
  return `ws-fleet-${fleetId}-${node}`;
}

/** HAProxy's `show stat` CSV -> [{ proxy, server, status }] for the servers (not FRONTEND/BACKEND rows). */
export function parseStat(csv) {
  const lines = String(csv).split('\n').filter((l) => l.trim());
  const head = lines.find((l) => l.startsWith('# '));
  if (!head) return [];
  const cols = head.slice(2).split(',');
  const at = (name) => cols.indexOf(name);
  const [px, sv, st, cur] = [at('pxname'), at('svname'), at('status'), at('scur')];
  return lines
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.split(','))
    .filter((f) => f[sv] !== 'FRONTEND' && f[sv] !== 'BACKEND')
    .map((f) => ({ proxy: f[px], server: f[sv], status: f[st], sessions: Number(f[cur]) }));
}

/** One command on HAProxy's admin socket; resolves with its whole answer. */
export function haproxyCommand(socket, command, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let out = '';
    const timer = setTimeout(() => c.destroy(new Error(`no answer from ${socket} to ${command}`)), timeoutMs);
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d) => (out += d));
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

export function parseCli(argv) {
  const [first, ...rest] = argv;
  const command = first === undefined || first.startsWith('-') ? 'up' : first;
  const args = command === first ? rest : argv;
  if (!['up', 'down', 'status'].includes(command)) throw new UsageError(`unknown command ${JSON.stringify(command)}`, USAGE);
  const options = command === 'up' ? { port: { type: 'string' }, nodes: { type: 'string' }, shards: { type: 'string' }, 'notice-ms': { type: 'string' }, rate: { type: 'string' }, tokens: { type: 'string' } } : {};
  const { values } = parseOptions(args, options, { usage: USAGE });
  if (command !== 'up') return { command, help: values.help };
  return {
    command,
    help: values.help,
    port: intFlag(values, 'port', { min: 0, max: 65535, def: DEFAULTS.port }),
    nodes: intFlag(values, 'nodes', { min: 1, max: 16, def: DEFAULTS.nodes }),
    shards: intFlag(values, 'shards', { min: 1, max: 16, def: DEFAULTS.shards }),
    noticeMs: intFlag(values, 'notice-ms', { min: 0, max: 600_000, def: DEFAULTS.noticeMs }),
    rate: intFlag(values, 'rate', { min: 1, max: 100_000, def: DEFAULTS.rate }),
    tokens: intFlag(values, 'tokens', { min: 1, max: 10_000, def: DEFAULTS.tokens }),
  };
}


/**
 * What the broker holds, read directly (not through any server): per channel `trades:<key>`, the
 * positions `p<partition>:<offset>` in offset order (a channel's records share a partition). The
 * truth a rehearsal compares its clients with.
 */
export async function observeTopic({ brokers, topic, clientId, groupId }) {
  const truth = new Map();
  const consumer = new Kafka({ clientId, brokers: [brokers], logLevel: logLevel.NOTHING }).consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const ch = `trades:${message.key}`;
      if (!truth.has(ch)) truth.set(ch, []);
      truth.get(ch).push(`p${partition}:${message.offset}`);
    },
  });
  return { truth, stop: () => consumer.disconnect().catch(() => {}) };
}

/** Bounded wait for a JSON log line (written after byte `from`) that satisfies `pred`; fails early when `alive` says no. */
async function waitLog(file, from, pred, alive, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  const text = () => (fs.existsSync(file) ? fs.readFileSync(file).subarray(from).toString('utf8') : '');
  while (Date.now() < deadline) {
    for (const line of text().split('\n')) {
      try {
        const rec = JSON.parse(line);
        if (pred(rec)) return rec;
      } catch {
        /* not a JSON line */
      }
    }
    if (!alive()) throw new Error(`${what}: the process exited\n${text().slice(-3000)}`);
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms\n${text().slice(-3000)}`);
}

/** Polls `check` (bounded); resolves with its first truthy value. */
async function poll(check, what, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (${last.message})` : ''}`);
}

async function getJson(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: r.status, body: await r.json() };
}

/**
 * Starts the fleet. `brokers`: use that broker (tests pass theirs) instead of starting one in the
 * state dir. Every process is its own process group, so a terminal's Ctrl-C reaches only this
 * process (which stops them in order) and a SIGKILL of a node's group takes its shards with it;
 * all are SIGKILLed if this process exits without stop().
 */
export async function startFleet(opts = {}) {
  const started = [];
  try {
    return await launchFleet(opts, started);
  } catch (e) {
    // A fleet that failed half way stops what it started, so nothing is left behind.
    for (const stop of started.reverse()) await stop().catch(() => {});
    throw e;
  }
}

async function launchFleet({
  dir = STATE_DIR,
  port = DEFAULTS.port,
  nodes: count = DEFAULTS.nodes,
  shards = DEFAULTS.shards,
  noticeMs = DEFAULTS.noticeMs,
  drainTimeoutMs = DEFAULTS.drainTimeoutMs,
  rate = DEFAULTS.rate,
  tokens = DEFAULTS.tokens,
  check = DEFAULTS.check,
  brokers: given,
  topics: givenTopics,
  publisher: withPublisher = true,
  // false: no HAProxy, the url is the first node's (the continuity benchmark restarts one server).
  balancer = true,
  nodeExtraEnv = {},
  log = () => {},
  onExit = () => {},
}, started) {
  for (const b of Object.values(BUNDLES)) if (!fs.existsSync(b)) throw new Error(`${path.relative(ROOT, b)} is missing: run node scripts/build.mjs`);
  const haproxyBin = (await $({ nothrow: true, quiet: true })`command -v haproxy`).stdout.trim();
  if (balancer && !haproxyBin) throw new Error('haproxy is not installed (apt-get install -y haproxy; .ci/run does it)');
  fs.mkdirSync(dir, { recursive: true });
  const fleetId = randomUUID().slice(0, 8);
  const topics = givenTopics ?? ['odin.trades', 'odin.prices'];
  const procs = new Map(); // name -> ChildProcess
  let broker = null;
  const killAll = () => {
    for (const p of procs.values()) if (p.exitCode === null && p.signalCode === null) killGroup(p.pid, 'SIGKILL');
    if (broker?.pid) killGroup(broker.pid, 'SIGKILL', true);
  };
  process.once('exit', killAll);

  let brokers = given;
  if (!brokers) {
    broker = await startBroker({ dir: path.join(dir, 'kafka'), topics, log, detached: true });
    started.push(() => broker.close());
    brokers = broker.brokers;
    fs.writeFileSync(path.join(dir, 'kafka.pid'), `${broker.pid}\n`);
  } else {
    await createTopics({ brokers, topics });
  }

  const spawnLogged = (name, argv, env) => {
    const logFile = path.join(dir, `${name}.log`);
    const fd = fs.openSync(logFile, 'a');
    const child = spawn(argv[0], argv.slice(1), { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    procs.set(name, child);
    started.push(async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      killGroup(child.pid, 'SIGKILL');
      await exited;
    });
    fs.writeFileSync(path.join(dir, `${name}.pid`), `${child.pid}\n`);
    child.once('exit', (code, sig) => {
      fs.rmSync(path.join(dir, `${name}.pid`), { force: true });
      onExit(name, code ?? sig);
    });
    return { child, logFile };
  };
  const running = (name) => {
    const p = procs.get(name);
    return !!p && p.exitCode === null && p.signalCode === null;
  };

  let publisherInfo = null;
  if (withPublisher) {
    const pubPort = await freePort();
    const { child, logFile } = spawnLogged('publisher', [process.execPath, BUNDLES.publisher], {
      KAFKA_BROKERS: brokers,
      PUBLISHER_HOST: '127.0.0.1',
      PUBLISHER_PORT: String(pubPort),
      PUBLISHER_TOPICS: topics.join(','),
      PUBLISHER_RATE: String(rate),
      PUBLISHER_TOKENS: String(tokens),
      LOG_LEVEL: 'info',
    });
    publisherInfo = { pid: child.pid, log: logFile, statusUrl: `http://127.0.0.1:${pubPort}/status` };
  }

  const nodes = [];
  for (let i = 1; i <= count; i++) {
    const name = `n${i}`;
    nodes.push({ name, port: await freePort(), group: groupName(fleetId, name), pid: null, log: path.join(dir, `${name}.log`), restarts: 0 });
  }
  const nodeUrl = (n, p) => `http://127.0.0.1:${n.port}${p}`;

  const startNode = async (n) => {
    if (running(n.name)) return n;
    const env = { ...nodeEnv({ brokers, topics, group: n.group, noticeMs, drainTimeoutMs, shards }), ...nodeExtraEnv };
    const from = fs.existsSync(n.log) ? fs.statSync(n.log).size : 0;
    const { child } = spawnLogged(n.name, [process.execPath, BUNDLES.server, '--lb-addr', `127.0.0.1:${n.port}`], env);
    n.pid = child.pid;
    await waitLog(n.log, from, (rec) => rec.msg === 'listening', () => running(n.name), `${n.name} listening`);
    await poll(async () => {
      if (!running(n.name)) throw Object.assign(new Error(`${n.name} exited:\n${fs.readFileSync(n.log, 'utf8').slice(-2000)}`), { fatal: true });
      const h = await getJson(nodeUrl(n, '/health'));
      return h.status === 200 && h.body.kafka?.connected === true;
    }, `${n.name} healthy on Kafka`);
    return n;
  };
  for (const n of nodes) await startNode(n);
  if (publisherInfo) {
    await poll(async () => (await getJson(publisherInfo.statusUrl)).body.broker?.connected === true, 'publisher connected');
  }

  const socket = path.join(dir, 'haproxy.sock');
  const cfgFile = path.join(dir, 'haproxy.cfg');
  let hap = null;
  let bindPort = nodes[0].port;
  const status = async () => {
    if (!hap) return new Map();
    const rows = parseStat(await haproxyCommand(socket, 'show stat'));
    return new Map(rows.filter((r) => r.proxy === 'nodes').map((r) => [r.server, r.status]));
  };
  if (balancer) {
    bindPort = port === 0 ? await freePort() : port;
    fs.writeFileSync(cfgFile, haproxyConfig({ bind: { host: '127.0.0.1', port: bindPort }, nodes, socket, check }));
    const verdict = await $({ nothrow: true, quiet: true })`${haproxyBin} -c -f ${cfgFile}`;
    if (verdict.exitCode !== 0) throw new Error(`haproxy rejects ${cfgFile}:\n${verdict.stdout}${verdict.stderr}`);
    hap = spawnLogged('haproxy', [haproxyBin, '-db', '-f', cfgFile], {}).child;
    const hapLog = path.join(dir, 'haproxy.log');
    await poll(async () => {
      if (!running('haproxy')) throw Object.assign(new Error(`haproxy exited:\n${fs.readFileSync(hapLog, 'utf8').slice(-2000)}`), { fatal: true });
      const s = await status();
      return nodes.every((n) => s.get(n.name) === 'UP');
    }, 'HAProxy sees every node UP');
  }

  const exitOf = (name) => {
    const p = procs.get(name);
    if (!p) return Promise.resolve(null);
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode ?? p.signalCode);
    return new Promise((r) => p.once('exit', (code, sig) => r(code ?? sig)));
  };
  const byName = (name) => {
    const n = nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} (have ${nodes.map((x) => x.name).join(', ')})`);
    return n;
  };

  let stopping = null;
  const fleet = {
    id: fleetId,
    dir,
    brokers,
    topics,
    url: `ws://127.0.0.1:${bindPort}/ws`,
    port: bindPort,
    nodes,
    publisher: publisherInfo,
    haproxy: hap ? { pid: hap.pid, socket, config: cfgFile } : null,
    /** HAProxy's own view: node name -> UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up). */
    status,
    nodeUrl: (name, p = '/health') => nodeUrl(byName(name), p),
    running: (name) => running(byName(name).name),
    /** Sends `signal` to the node (the whole process group for SIGKILL); resolves with its exit. */
    signal(name, sig = 'SIGTERM') {
      const n = byName(name);
      const exited = exitOf(n.name);
      if (running(n.name)) killGroup(procs.get(n.name).pid, sig, sig !== 'SIGKILL');
      return exited;
    },
    /** Starts the node again on its port with its group; resolves once it is healthy on Kafka. */
    async start(name) {
      const n = byName(name);
      await exitOf(n.name);
      n.restarts++;
      return startNode(n);
    },
    async stop() {
      stopping ??= (async () => {
        const stopOne = async (name) => {
          const p = procs.get(name);
          if (!p || p.exitCode !== null || p.signalCode !== null) return;
          const exited = exitOf(name);
          killGroup(p.pid, 'SIGTERM', true);
          const t = setTimeout(() => killGroup(p.pid, 'SIGKILL'), drainTimeoutMs + noticeMs + 5000);
          await exited;
          clearTimeout(t);
        };
        // The balancer first (no new connections), the nodes together, then the source.
        await stopOne('haproxy');
        await Promise.all(nodes.map((n) => stopOne(n.name)));
        await stopOne('publisher');
        if (broker) await broker.close();
        fs.rmSync(path.join(dir, 'kafka.pid'), { force: true });
        fs.rmSync(socket, { force: true });
        process.removeListener('exit', killAll);
      })();
      return stopping;
    },
  };
  fs.writeFileSync(path.join(dir, 'fleet.json'), `${JSON.stringify({ url: fleet.url, brokers, topics, nodes: nodes.map(({ name, port, group }) => ({ name, port, group })), haproxy: fleet.haproxy, publisher: publisherInfo }, null, 2)}\n`);
  return fleet;
}

/** SIGTERM/SIGINT to the process itself (it orders its own drain); SIGKILL to its whole group. */
function killGroup(pid, sig, leaderOnly = false) {
  try {
    process.kill(leaderOnly ? pid : -pid, sig);
  } catch {
    /* already gone */
  }
}

/** What `down` stops, in order, and how each is recognised in /proc/<pid>/cmdline. */
export function downPlan(dir) {
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.pid')).map((f) => f.slice(0, -4)) : [];
  const rank = (n) => (n === 'haproxy' ? 0 : n === 'publisher' ? 2 : n === 'kafka' ? 3 : 1);
  const marker = (n) => (n === 'haproxy' ? path.join(dir, 'haproxy.cfg') : n === 'publisher' ? BUNDLES.publisher : n === 'kafka' ? 'kafka.Kafka' : BUNDLES.server);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).map((name) => ({ name, file: path.join(dir, `${name}.pid`), marker: marker(name) }));
}

export async function down(dir = STATE_DIR, log = () => {}) {
  let stopped = 0;
  for (const { name, file, marker } of downPlan(dir)) {
    // The foreground `up` may be stopping the same processes (and removing their pid files).
    let pid = NaN;
    try {
      pid = Number(fs.readFileSync(file, 'utf8').trim());
    } catch {
      continue;
    }
    if (isOurProcess(pid, marker)) {
      await stopPid(pid, { graceMs: 20_000 });
      log(`stopped ${name} (pid ${pid})`);
      stopped++;
    }
    fs.rmSync(file, { force: true });
  }
  return stopped;
}

/** One line per node: HAProxy's state and sessions, the node's own /health status. */
export async function status(dir, log) {
  let fleet;
  try {
    fleet = JSON.parse(fs.readFileSync(path.join(dir, 'fleet.json'), 'utf8'));
  } catch {
    throw new UsageError(`no fleet in ${dir}: \`npm run local:fleet\` first`);
  }
  const rows = parseStat(await haproxyCommand(fleet.haproxy.socket, 'show stat').catch(() => ''));
  let ok = rows.length > 0;
  if (!ok) log(`HAProxy does not answer on ${fleet.haproxy.socket}`);
  log(`balancer ${fleet.url}`);
  for (const n of fleet.nodes) {
    const row = rows.find((r) => r.proxy === 'nodes' && r.server === n.name);
    const h = await getJson(`http://127.0.0.1:${n.port}/health`).catch(() => null);
    const own = h ? `${h.status} ${h.body.status} ${h.body.system?.total_connections ?? '?'} connections` : 'not answering';
    log(`${n.name} :${n.port}  haproxy ${row ? `${row.status}, ${row.sessions} sessions` : '?'}  /health ${own}`);
    if (row?.status !== 'UP') ok = false;
  }
  return ok ? 0 : 1;
}

export async function main(argv, { env = process.env } = {}) {
  const cli = parseCli(argv);
  if (cli.help) {
    console.log(USAGE);
    return 0;
  }
  const dir = env.ODIN_FLEET_DIR || STATE_DIR;
  if (!path.isAbsolute(dir)) throw new UsageError(`ODIN_FLEET_DIR=${JSON.stringify(dir)}: must be an absolute path`);
  const log = (s) => process.stdout.write(`${s}\n`);
  if (cli.command === 'down') {
    const n = await down(dir, log);
    log(n ? `down: ${n} process(es) stopped` : 'down: nothing was running');
    return 0;
  }
  if (cli.command === 'status') return status(dir, log);
  const pidIn = (file) => {
    try {
      return Number(fs.readFileSync(file, 'utf8').trim());
    } catch {
      return NaN;
    }
  };
  if (downPlan(dir).some(({ file, marker }) => isOurProcess(pidIn(file), marker))) {
    throw new UsageError(`a fleet is already running from ${dir}: \`npm run local:fleet -- down\` first`);
  }
  // A Ctrl-C while it starts: stop whatever already runs (the pid files say what).
  const early = () => void down(dir, log).then(() => process.exit(130));
  process.once('SIGINT', early);
  process.once('SIGTERM', early);
  await $({ quiet: false })`node ${path.join(ROOT, 'scripts', 'build.mjs')} server publisher`;
  // KAFKA_BROKERS: a broker already running (npm run kafka:up) instead of one of the fleet's own.
  const brokers = env.KAFKA_BROKERS?.trim() || undefined;
  let balancerGone = null;
  const gone = new Promise((resolve) => (balancerGone = resolve));
  const onExit = (name, how) => {
    log(`${name} exited (${how})`);
    if (name === 'haproxy') balancerGone(how);
  };
  const fleet = await startFleet({ dir, brokers, port: cli.port, nodes: cli.nodes, shards: cli.shards, noticeMs: cli.noticeMs, rate: cli.rate, tokens: cli.tokens, log, onExit });
  log(`\nfleet up: ${fleet.url}  (HAProxy -> ${fleet.nodes.map((n) => `${n.name} :${n.port}`).join(', ')})`);
  log(`brokers ${fleet.brokers}; publisher ${fleet.publisher?.statusUrl}; logs and pid files in ${dir}`);
  log('Ctrl-C (or `npm run local:fleet -- down`) stops everything');
  process.removeListener('SIGINT', early);
  process.removeListener('SIGTERM', early);
  // Until a signal, or the balancer is gone (`down` from another terminal stops it first).
  const why = await new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
    void gone.then((how) => resolve(`haproxy ${how}`));
  });
  log(`stopping the fleet (${why})`);
  await fleet.stop();
  return why === 'haproxy 0' || why === 'haproxy SIGTERM' || !why.startsWith('haproxy') ? 0 : 1;
}

if (isMain(import.meta.url)) await runMain(main);
