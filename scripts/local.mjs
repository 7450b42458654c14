#!/usr/bin/env node
// The whole stack on this machine: a Kafka broker (npm run kafka:up), the publisher and the
// server, detached, with pid files and logs under .tmp/local/.
//
//   node scripts/local.mjs up [--port N] [--no-kafka]   start (idempotent), wait until healthy
//   node scripts/local.mjs down [--keep-kafka]         stop what up started (idempotent)
//   node scripts/local.mjs health                      server /health, publisher /status, broker
//   node scripts/local.mjs load-test [--target N] [--hold S]   load generator against it, on loopback
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError, intFlag, isMain, parseOptions, runMain } from './ops/cli.mjs';
import { OpsError, ROOT, createGcp } from './ops/gcp.mjs';
import { evaluatePublisherStatus, evaluateWsHealth, fetchJson, formatChecks, formatHealth, formatPublisherStatus, tcpProbe, waitHealthy } from './ops/health.mjs';

export const USAGE = `usage: local.mjs up|down|health|load-test [options] [--dry-run]
  up         [--port N (default 3004)] [--publisher-port N (default 3003)] [--no-kafka (embedded feed)]
  down       [--keep-kafka]
  health
  load-test  [--target N (default 2000)] [--hold S (default 10)]`;

export const STATE_DIR = path.join(ROOT, '.tmp', 'local');
const STATE_FILE = 'state.json';
const PROCS = Object.freeze({ server: 'dist/server.mjs', publisher: 'dist/publisher.mjs' });
const log = (s) => process.stdout.write(`${s}\n`);

export function readState(dir = STATE_DIR) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8'));
  } catch {
    return null;
  }
}

/** Alive and still running our bundle (a recycled pid must not be signalled). */
export function isOurProcess(pid, bundle) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(bundle);
  } catch {
    return false;
  }
}

/** KAFKA_BROKERS=... is the last line `scripts/kafka.mjs up` prints. */
export function parseBrokers(stdout) {
  const m = /^KAFKA_BROKERS=(\S+)\s*$/m.exec(String(stdout).trim().split('\n').pop() ?? '');
  return m ? m[1] : null;
}

/** Starts `node <bundle> args` detached, output to <dir>/<name>.log, pid to <dir>/<name>.pid. */
function startDetached(name, args, env, dir) {
  const logFile = path.join(dir, `${name}.log`);
  const fd = fs.openSync(logFile, 'w');
  const child = spawn(process.execPath, [path.join(ROOT, PROCS[name]), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  fs.closeSync(fd);
  child.unref();
  fs.writeFileSync(path.join(dir, `${name}.pid`), `${child.pid}\n`);
  return { pid: child.pid, logFile };
}

/** Waits for the server's `listening` log line (bounded), or its exit. */
async function waitListening(logFile, pid, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const text = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    for (const line of text.split('\n')) {
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'listening') return rec;
      } catch {
        /* not a JSON log line */
      }
    }
    if (!isOurProcess(pid, PROCS.server)) throw new OpsError('the server exited during start-up', { detail: text });
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new OpsError(`the server did not log "listening" within ${timeoutMs / 1000} s`, { detail: fs.readFileSync(logFile, 'utf8') });
}

export async function up(gcp, { port, publisherPort, kafka, dir = STATE_DIR }) {
  const state = readState(dir);
  if (state && isOurProcess(state.server?.pid, PROCS.server)) {
    log(`already running: ${state.server.ws_url} (pid ${state.server.pid}); \`npm run local:down\` first to restart`);
    return state;
  }
  let brokers = '';
  if (kafka) {
    const r = await gcp.run('npm', ['run', '--silent', 'kafka:up'], { stream: true });
    brokers = gcp.dryRun ? '127.0.0.1:9092' : parseBrokers(r.stdout);
    if (!brokers) throw new OpsError('`npm run kafka:up` did not print KAFKA_BROKERS=... as its last line', { detail: r.stdout });
  }
  await gcp.run(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { display: 'node scripts/build.mjs', stream: true });
  const serverArgs = ['--lb-addr', `127.0.0.1:${port}`];
  if (gcp.dryRun) {
    if (kafka) log(`[dry-run] KAFKA_BROKERS=${brokers} PUBLISHER_PORT=${publisherPort} node ${PROCS.publisher} &`);
    log(`[dry-run] ${kafka ? `KAFKA_BROKERS=${brokers} ` : ''}node ${PROCS.server} ${serverArgs.join(' ')} &`);
    return null;
  }
  for (const name of kafka ? ['server', 'publisher'] : ['server']) {
    if (!fs.existsSync(path.join(ROOT, PROCS[name]))) throw new OpsError(`${PROCS[name]} was not built (see scripts/build.mjs for its entry point)`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const next = { started_at: new Date().toISOString(), brokers: brokers || null };
  if (kafka) {
    const pub = startDetached('publisher', [], { KAFKA_BROKERS: brokers, PUBLISHER_HOST: '127.0.0.1', PUBLISHER_PORT: String(publisherPort) }, dir);
    next.publisher = { pid: pub.pid, log: pub.logFile, status_url: `http://127.0.0.1:${publisherPort}/status` };
  }
  const srv = startDetached('server', serverArgs, { KAFKA_BROKERS: brokers }, dir);
  const rec = await waitListening(srv.logFile, srv.pid);
  next.server = { pid: srv.pid, log: srv.logFile, port: rec.port, ws_url: rec.ws_url, health_url: rec.health_url };
  fs.writeFileSync(path.join(dir, STATE_FILE), `${JSON.stringify(next, null, 2)}\n`);
  const healthy = await waitHealthy(rec.health_url, { timeoutMs: 30_000, intervalMs: 500 });
  log(formatHealth(healthy.body));
  if (next.publisher) await waitPublisher(next.publisher);
  log(`\nup: ${rec.ws_url}  health ${rec.health_url}${next.publisher ? `  publisher ${next.publisher.status_url}` : ''}`);
  log(`logs: ${dir.startsWith(`${ROOT}${path.sep}`) ? path.relative(ROOT, dir) : dir}/*.log`);
  return next;
}

/** Bounded wait for the publisher's /status to report its broker connection. */
async function waitPublisher({ pid, log: logFile, status_url: url }, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let verdict = { ok: false, problem: 'not checked' };
  while (Date.now() < deadline && isOurProcess(pid, PROCS.publisher)) {
    const s = await fetchJson(url, { timeoutMs: 2000 });
    verdict = evaluatePublisherStatus(s);
    if (verdict.ok) return log(`publisher: ${formatPublisherStatus(s.body)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new OpsError(`the publisher did not become ready (${isOurProcess(pid, PROCS.publisher) ? verdict.problem : 'it exited'})`, { detail: fs.readFileSync(logFile, 'utf8') });
}

async function stopPid(name, pid, timeoutMs = 20_000) {
  if (!isOurProcess(pid, PROCS[name])) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && isOurProcess(pid, PROCS[name])) await new Promise((r) => setTimeout(r, 100));
  if (isOurProcess(pid, PROCS[name])) process.kill(pid, 'SIGKILL');
  return true;
}

export async function down(gcp, { keepKafka, dir = STATE_DIR }) {
  const state = readState(dir);
  for (const name of ['server', 'publisher']) {
    const file = path.join(dir, `${name}.pid`);
    const pid = fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8').trim()) : null;
    if (gcp.dryRun) {
      if (pid) log(`[dry-run] kill -TERM ${pid} (${name})`);
      continue;
    }
    if (pid && (await stopPid(name, pid))) log(`stopped ${name} (pid ${pid})`);
    fs.rmSync(file, { force: true });
  }
  if (!gcp.dryRun) fs.rmSync(path.join(dir, STATE_FILE), { force: true });
  // Only a broker that up started (an up --no-kafka leaves someone else's broker alone).
  if (!keepKafka && (state === null || state.brokers)) await gcp.run('npm', ['run', '--silent', 'kafka:down'], { stream: true, allowFail: true });
}

export async function health({ dir = STATE_DIR } = {}) {
  const state = readState(dir);
  if (!state?.server) throw new OpsError('nothing is running locally: `npm run local:up` first');
  const h = await fetchJson(state.server.health_url);
  const v = evaluateWsHealth(h);
  if (h.body && typeof h.body === 'object' && Array.isArray(h.body.shards)) log(formatHealth(h.body));
  const checks = [{ name: 'server /health', ok: v.ok, detail: v.ok ? state.server.health_url : v.problem }];
  if (state.publisher) {
    const s = await fetchJson(state.publisher.status_url);
    const p = evaluatePublisherStatus(s);
    checks.push({ name: 'publisher /status', ok: p.ok, detail: p.ok ? formatPublisherStatus(s.body) : p.problem });
  }
  if (state.brokers) {
    const [host, port] = [state.brokers.slice(0, state.brokers.lastIndexOf(':')), Number(state.brokers.split(':').pop())];
    const open = await tcpProbe(host, port);
    checks.push({ name: 'kafka broker', ok: open, detail: `${state.brokers} ${open ? 'open' : 'closed'}` });
  }
  const { text, ok } = formatChecks(checks);
  log(`\n${text}`);
  return ok;
}

export async function loadTest(gcp, { target, hold, dir = STATE_DIR }) {
  const state = readState(dir);
  if (!gcp.dryRun && !state?.server) throw new OpsError('nothing is running locally: `npm run local:up` first');
  const url = state?.server?.ws_url ?? 'ws://127.0.0.1:3004/ws';
  const r = await gcp.run(process.execPath, [path.join(ROOT, 'dist', 'loadtest.mjs'), '--url', url, '--target', String(target), '--hold', String(hold), '--out', 'reports'], {
    display: `node dist/loadtest.mjs --url ${url} --target ${target} --hold ${hold} --out reports`,
    stream: true,
    allowFail: true,
  });
  return r.exitCode;
}

const COMMAND_OPTIONS = {
  up: { port: { type: 'string' }, 'publisher-port': { type: 'string' }, 'no-kafka': { type: 'boolean', default: false } },
  down: { 'keep-kafka': { type: 'boolean', default: false } },
  health: {},
  'load-test': { target: { type: 'string' }, hold: { type: 'string' } },
};

export async function main(argv, { env = process.env } = {}) {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (!Object.hasOwn(COMMAND_OPTIONS, command ?? '')) throw new UsageError(`unknown command ${JSON.stringify(command ?? '')}`, USAGE);
  const { values } = parseOptions(rest, COMMAND_OPTIONS[command], { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  // ODIN_LOCAL_DIR: another state dir, so a test's stack never touches a developer's.
  const dir = env.ODIN_LOCAL_DIR || STATE_DIR;
  if (!path.isAbsolute(dir)) throw new UsageError(`ODIN_LOCAL_DIR=${JSON.stringify(dir)}: must be an absolute path`);
  switch (command) {
    case 'up':
      await up(gcp, {
        port: intFlag(values, 'port', { min: 0, max: 65535, def: 3004 }),
        publisherPort: intFlag(values, 'publisher-port', { min: 1, max: 65535, def: 3003 }),
        kafka: !values['no-kafka'],
        dir,
      });
      return 0;
    case 'down':
      await down(gcp, { keepKafka: values['keep-kafka'], dir });
      return 0;
    case 'health':
      return (await health({ dir })) ? 0 : 1;
    default:
      return loadTest(gcp, {
        target: intFlag(values, 'target', { min: 1, max: 19_000, def: 2000 }),
        hold: intFlag(values, 'hold', { min: 1, max: 3600, def: 10 }),
        dir,
      });
  }
}

if (isMain(import.meta.url)) await runMain(main);
