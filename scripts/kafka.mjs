#!/usr/bin/env node
// A real single-node Apache Kafka (KRaft) on loopback for development and tests, run from the jars
// that kafka/pom.xml pins (resolved by Maven into ~/.m2; the classpath is cached, so later starts
// are offline and skip Maven entirely).
//
//   node scripts/kafka.mjs install        resolve the jars (what .ci/run calls; needs the registry once)
//   node scripts/kafka.mjs up [--port N]  start in the background, return once ready; last line KAFKA_BROKERS=...
//   node scripts/kafka.mjs down           stop the background broker
//   node scripts/kafka.mjs status         print the background broker's state
//
// Tests import startBroker() instead and own the process.
import { $ } from 'zx';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const files = {
  pom: path.join(root, 'kafka', 'pom.xml'),
  template: path.join(root, 'kafka', 'server.properties.template'),
  log4j: path.join(root, 'kafka', 'log4j.properties'),
};
export const defaultDir = path.join(root, '.kafka', 'broker');
export const defaultTopics = ['odin.trades', 'odin.prices'];
export const defaultPartitions = 3;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Where the resolved classpath for the current pom is cached (changes when the pom changes). */
export function classpathCacheFile(pomText, cacheDir = path.join(root, '.kafka')) {
  const hash = createHash('sha256').update(pomText).digest('hex').slice(0, 16);
  return path.join(cacheDir, `classpath-${hash}.txt`);
}

/** A cached classpath is usable only while every jar in it is still in ~/.m2. */
export function usableClasspath(text) {
  const entries = text.trim().split(path.delimiter).filter(Boolean);
  return entries.length > 0 && entries.every((e) => fs.existsSync(e)) ? entries.join(path.delimiter) : null;
}

/** The broker's runtime classpath: cache, else Maven offline (jars already in ~/.m2), else Maven online. */
export async function resolveClasspath({ cacheDir, log = () => {} } = {}) {
  const cache = classpathCacheFile(fs.readFileSync(files.pom, 'utf8'), cacheDir);
  if (fs.existsSync(cache)) {
    const cp = usableClasspath(fs.readFileSync(cache, 'utf8'));
    if (cp) return cp;
  }
  fs.mkdirSync(path.dirname(cache), { recursive: true });
  const tmp = `${cache}.${process.pid}.tmp`;
  const args = ['-q', '-B', '-Dstyle.color=never', '-f', files.pom, 'dependency:build-classpath', `-Dmdep.outputFile=${tmp}`];
  const offline = await $({ nothrow: true, quiet: true })`mvn -o ${args}`;
  if (offline.exitCode !== 0) {
    log('resolving Kafka jars with Maven (first run; cached in ~/.m2 afterwards)');
    const online = await $({ nothrow: true, quiet: true })`mvn ${args}`;
    if (online.exitCode !== 0) {
      throw new Error(`mvn could not resolve ${files.pom}:\n${online.stdout}${online.stderr}`);
    }
  }
  const cp = usableClasspath(fs.readFileSync(tmp, 'utf8'));
  if (!cp) throw new Error(`mvn wrote an empty or broken classpath to ${tmp}`);
  fs.renameSync(tmp, cache);
  return cp;
}

/** A port the OS says is free right now on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Fills ${NAME} placeholders; a placeholder without a value is a bug in the caller, so it throws. */
export function renderTemplate(template, vars) {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name) => {
    if (vars[name] === undefined) throw new Error(`no value for \${${name}} in the broker template`);
    return String(vars[name]);
  });
}

/** A KRaft cluster id: 16 random bytes, base64url without padding, not starting with '-' (as Kafka's Uuid). */
export function newClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export function javaArgs({ classpath, propsFile, heapMb = 512 }) {
  return [
    `-Xms${Math.min(128, heapMb)}m`,
    `-Xmx${heapMb}m`,
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-Djava.awt.headless=true',
    `-Dlog4j.configuration=file:${files.log4j}`,
    '-cp',
    classpath,
    'kafka.Kafka',
    propsFile,
  ];
}

function statePaths(dir) {
  return {
    state: path.join(dir, 'broker.json'),
    props: path.join(dir, 'server.properties'),
    data: path.join(dir, 'data'),
    log: path.join(dir, 'broker.log'),
    pid: path.join(dir, 'broker.pid'),
  };
}

export function readState(dir) {
  const p = statePaths(dir);
  if (!fs.existsSync(p.state)) return null;
  return JSON.parse(fs.readFileSync(p.state, 'utf8'));
}

/** True when pid is alive and is the broker of this dir (pids get reused; never signal a stranger). */
export function isBrokerPid(pid, dir) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('kafka.Kafka') && cmdline.includes(statePaths(dir).props);
  } catch {
    return false;
  }
}

function readPid(dir) {
  const p = statePaths(dir).pid;
  return fs.existsSync(p) ? Number(fs.readFileSync(p, 'utf8').trim()) : null;
}

function logTail(dir, lines = 30) {
  try {
    return fs.readFileSync(statePaths(dir).log, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no broker log)';
  }
}

/** Writes server.properties and formats the KRaft storage once; later starts reuse both. */
async function prepare({ dir, port, classpath }) {
  const p = statePaths(dir);
  const existing = readState(dir);
  if (existing && fs.existsSync(path.join(p.data, 'meta.properties'))) {
    if (port && port !== existing.port) {
      throw new Error(`${dir} holds a broker formatted for port ${existing.port}, not ${port}; remove the dir or drop --port`);
    }
    return existing;
  }
  fs.mkdirSync(dir, { recursive: true });
  const state = {
    port: port ?? (await freePort()),
    controllerPort: await freePort(),
    clusterId: newClusterId(),
  };
  if (state.controllerPort === state.port) state.controllerPort = await freePort();
  const template = fs.readFileSync(files.template, 'utf8');
  fs.writeFileSync(p.props, renderTemplate(template, { PORT: state.port, CONTROLLER_PORT: state.controllerPort, DATA_DIR: p.data }));
  const fmt = await $({ nothrow: true, quiet: true })`java -Xmx256m -Dlog4j.configuration=file:${files.log4j} -cp ${classpath} kafka.tools.StorageTool format -t ${state.clusterId} -c ${p.props} --ignore-formatted`;
  if (fmt.exitCode !== 0) throw new Error(`formatting KRaft storage failed:\n${fmt.stdout}${fmt.stderr}`);
  fs.writeFileSync(p.state, JSON.stringify(state, null, 2));
  return state;
}

function adminFor(brokers) {
  return new Kafka({
    clientId: 'odin-kafka-script',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  }).admin();
}

/** Polls the broker with the admin client until it answers, the process dies, or the deadline passes. */
export async function waitReady({ brokers, alive = () => true, timeoutMs = 90_000 }) {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no attempt';
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`broker process exited before answering (${lastError})`);
    const admin = adminFor(brokers);
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0 && cluster.controller !== null) return;
      lastError = 'no controller yet';
    } catch (e) {
      lastError = e.message;
    } finally {
      await admin.disconnect().catch(() => {});
    }
    await sleep(200);
  }
  throw new Error(`broker at ${brokers} did not answer within ${timeoutMs} ms (${lastError})`);
}

/**
 * Creates the topics that do not exist yet and waits until every partition has a leader. (kafkajs'
 * own waitForLeaders gives up on UNKNOWN_TOPIC_OR_PARTITION, which a fresh broker answers for a
 * moment while the new topic's metadata reaches it.)
 */
export async function createTopics({ brokers, topics, partitions = defaultPartitions, timeoutMs = 30_000 }) {
  const admin = adminFor(brokers);
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length) {
      await admin.createTopics({
        waitForLeaders: false,
        topics: missing.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
      });
    }
    const deadline = Date.now() + timeoutMs;
    let lastError = '';
    while (Date.now() < deadline) {
      try {
        const { topics: meta } = await admin.fetchTopicMetadata({ topics });
        if (meta.length === topics.length && meta.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) {
          return missing;
        }
        lastError = 'partitions without a leader';
      } catch (e) {
        lastError = e.message;
      }
      await sleep(100);
    }
    throw new Error(`topics ${topics.join(',')} have no leaders after ${timeoutMs} ms (${lastError})`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

function waitExit(pid, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    while (Date.now() < deadline) {
      try {
        process.kill(pid, 0);
      } catch {
        return true;
      }
      await sleep(100);
    }
    return false;
  })();
}

/** SIGTERM (Kafka shuts down cleanly and flushes), SIGKILL after the grace period. */
export async function stopPid(pid, { graceMs = 30_000 } = {}) {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitExit(pid, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitExit(pid, 5_000);
}

/**
 * Starts a broker whose data lives in `dir` (formatted on first use) and waits until it answers and
 * the topics exist. `detached` leaves it running after this process exits (npm run kafka:up);
 * otherwise it is killed when this process exits. restart() keeps the port and the data.
 */
export async function startBroker({
  dir,
  port,
  topics = defaultTopics,
  partitions = defaultPartitions,
  heapMb = 512,
  detached = false,
  readyTimeoutMs = 90_000,
  log = () => {},
}) {
  const t0 = Date.now();
  const classpath = await resolveClasspath({ log });
  const state = await prepare({ dir, port, classpath });
  const p = statePaths(dir);
  const brokers = `127.0.0.1:${state.port}`;
  let child = null;
  let exitHook = null;

  const launch = async () => {
    if (!(await portIsFree(state.port))) throw new Error(`port ${state.port} is in use; is a broker already running from ${dir}?`);
    const out = fs.openSync(p.log, 'a');
    child = spawn('java', javaArgs({ classpath, propsFile: p.props, heapMb }), {
      cwd: dir,
      detached,
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    const proc = child;
    let exited = false;
    proc.once('exit', () => {
      exited = true;
    });
    fs.writeFileSync(p.pid, String(proc.pid));
    if (detached) {
      proc.unref();
    } else if (!exitHook) {
      exitHook = () => child && child.exitCode === null && child.kill('SIGKILL');
      process.once('exit', exitHook);
    }
    try {
      await waitReady({ brokers, alive: () => !exited, timeoutMs: readyTimeoutMs });
    } catch (e) {
      proc.kill('SIGKILL');
      throw new Error(`${e.message}\n--- ${p.log} ---\n${logTail(dir)}`);
    }
  };

  const stop = async () => {
    const proc = child;
    child = null;
    if (proc && proc.exitCode === null && proc.signalCode === null) await stopPid(proc.pid);
    fs.rmSync(p.pid, { force: true });
  };

  await launch();
  await createTopics({ brokers, topics, partitions });
  const startMs = Date.now() - t0;
  log(`broker ready at ${brokers} in ${startMs} ms (data in ${p.data})`);

  return {
    brokers,
    port: state.port,
    dir,
    startMs,
    get pid() {
      return child ? child.pid : null;
    },
    stop,
    /** Starts it again after stop(), on the same port and data dir; a no-op while it runs. */
    async start() {
      if (!child) await launch();
    },
    /** Stop then start on the same port and data dir (committed offsets and records survive). */
    async restart() {
      await stop();
      await launch();
    },
    /** Stop and, when this process owns the exit hook, forget it. */
    async close() {
      await stop();
      if (exitHook) process.removeListener('exit', exitHook);
      exitHook = null;
    },
  };
}

/** Stops the background broker of `dir` (started by `up`); a no-op when none runs. */
export async function down({ dir = defaultDir } = {}) {
  const pid = readPid(dir);
  if (pid && isBrokerPid(pid, dir)) {
    await stopPid(pid);
    fs.rmSync(statePaths(dir).pid, { force: true });
    return true;
  }
  fs.rmSync(statePaths(dir).pid, { force: true });
  return false;
}

/** Starts the background broker of `dir` unless it already runs; returns its bootstrap address. */
export async function up({ dir = defaultDir, port, topics, partitions, log }) {
  const state = readState(dir);
  const pid = readPid(dir);
  if (state && pid && isBrokerPid(pid, dir)) {
    const brokers = `127.0.0.1:${state.port}`;
    await waitReady({ brokers, timeoutMs: 30_000 });
    if (topics) await createTopics({ brokers, topics, partitions });
    return { brokers, already: true };
  }
  const broker = await startBroker({ dir, port, topics, partitions, detached: true, log });
  return { brokers: broker.brokers, already: false, startMs: broker.startMs };
}

export function parseCli(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      dir: { type: 'string' },
      port: { type: 'string' },
      topics: { type: 'string' },
      partitions: { type: 'string' },
    },
  });
  const command = positionals[0];
  const problems = [];
  if (!['install', 'up', 'down', 'status'].includes(command) || positionals.length > 1) {
    problems.push(`expected one command of install|up|down|status, got ${JSON.stringify(positionals)}`);
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 1024 && port <= 65535)) {
    problems.push(`--port must be an integer 1024..65535, got ${values.port}`);
  }
  const partitions = values.partitions === undefined ? defaultPartitions : Number(values.partitions);
  if (!(Number.isInteger(partitions) && partitions >= 1 && partitions <= 64)) {
    problems.push(`--partitions must be an integer 1..64, got ${values.partitions}`);
  }
  const topics = values.topics === undefined ? defaultTopics : values.topics.split(',').map((t) => t.trim());
  for (const t of topics) {
    if (!/^[A-Za-z0-9._-]{1,249}$/.test(t)) problems.push(`--topics: ${JSON.stringify(t)} is not a valid Kafka topic name`);
  }
  return { command, dir: path.resolve(values.dir ?? defaultDir), port, topics, partitions, problems };
}

async function main() {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (e) {
    cli = { problems: [e.message] };
  }
  if (cli.problems.length) {
    console.error(`kafka.mjs: ${cli.problems.join('\n')}\nusage: node scripts/kafka.mjs install|up|down|status [--dir D] [--port N] [--topics a,b] [--partitions N]`);
    process.exit(2);
  }
  const log = (m) => console.error(`kafka: ${m}`);
  if (cli.command === 'install') {
    const cp = await resolveClasspath({ log });
    console.log(`kafka: ${cp.split(path.delimiter).length} jars resolved for ${files.pom}`);
  } else if (cli.command === 'up') {
    const r = await up({ dir: cli.dir, port: cli.port, topics: cli.topics, partitions: cli.partitions, log });
    log(r.already ? 'already running' : `started in ${r.startMs} ms; logs in ${statePaths(cli.dir).log}`);
    console.log(`KAFKA_BROKERS=${r.brokers}`);
  } else if (cli.command === 'down') {
    log((await down({ dir: cli.dir })) ? 'stopped' : 'not running');
  } else {
    const state = readState(cli.dir);
    const pid = readPid(cli.dir);
    const running = Boolean(pid && isBrokerPid(pid, cli.dir));
    console.log(JSON.stringify({ dir: cli.dir, running, pid: running ? pid : null, ...(state ?? {}) }));
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`kafka.mjs: ${e.message}`);
    process.exit(1);
  });
}
