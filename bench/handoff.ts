// H1: what one connection handoff costs on this machine, and why. The front hands every accepted
// socket to a shard over Node's IPC channel; S0 (bench/fanout.ts) measured ~3x the server CPU
// per new connection of a single process that accepts its own sockets. This isolates the
// mechanism from HTTP and WebSocket work: the same N loopback connections are (a) accepted and
// kept by one process (the baseline) and (b) accepted by a front and sent to K children that keep
// them, as the first version did, (c) accepted by K children from one listener handed to them, and
// (e) accepted by K children that each bind the port with SO_REUSEPORT, as the server does now. It also times a bare acked IPC message against pipelined ones, since
// Node acks every handle before it sends the next: each handoff is a round trip of wake-ups.
// Prints one JSON line; never run in CI.
import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { benchCli } from './lib/cli.js';
import { machine } from './lib/machine.js';

const SELF = fileURLToPath(import.meta.url);
const DEADLINE_MS = 120_000;

type Cpu = { user: number; system: number };
const cpuUs = (c: Cpu) => c.user + c.system;

// ---- roles run in forked children -------------------------------------------------------------

/** Opens n connections from `from` (≤ inFlight connecting at once), then waits to be told to close. */
function connector(port: number, n: number, from: string, inFlight: number): void {
  const socks: net.Socket[] = [];
  let started = 0;
  let open = 0;
  const next = () => {
    while (started < n && started - open < inFlight) {
      started++;
      const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
      s.on('error', () => {});
      s.once('connect', () => {
        socks.push(s);
        open++;
        next();
      });
    }
  };
  process.on('message', (m: { t: string }) => {
    if (m.t === 'go') next();
    if (m.t === 'close') {
      for (const s of socks) s.destroy();
      process.send!({ t: 'closed' });
    }
  });
  process.send!({ t: 'ready' });
}

/** A shard stand-in: keeps each socket it is handed, or accepts its own from a shared listener. */
function keeper(): void {
  const kept: net.Socket[] = [];
  process.on('message', (m: { t: string }, h?: unknown) => {
    if (m.t === 'conn' && h instanceof net.Socket) kept.push(h);
    if (m.t === 'listen' && h instanceof net.Server) {
      h.on('connection', (s) => kept.push(s));
      process.send!({ t: 'listening' });
    }
    if (m.t === 'reuse') {
      // The server's design: each shard binds the port itself with SO_REUSEPORT.
      const srv = net.createServer((s) => kept.push(s));
      srv.listen({ port: (m as unknown as { port: number }).port, host: '127.0.0.1', reusePort: true, backlog: 4096 }, () =>
        process.send!({ t: 'listening', port: (srv.address() as net.AddressInfo).port }),
      );
    }
    if (m.t === 'cpu') process.send!({ t: 'cpu', cpu: process.cpuUsage(), kept: kept.length });
    if (m.t === 'ping') process.send!({ t: 'pong' });
  });
  process.send!({ t: 'ready' });
}

// ---- the measuring process ---------------------------------------------------------------------

function spawnRole(args: string[]): Promise<ChildProcess> {
  const child = fork(SELF, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code}) before it was ready`)));
  });
}

/** Sends `send` (with a handle, if given) and resolves with the child's first `t` message. */
function reply<T>(child: ChildProcess, t: string, send?: object, handle?: net.Server): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { t: string }) => {
      if (m.t !== t) return;
      child.off('message', on);
      resolve(m as T);
    };
    child.on('message', on);
    if (send) child.send(send, handle);
  });
}

type Sample = { cpu: Cpu; kept: number };
const sample = (cs: ChildProcess[]) => Promise.all(cs.map((c) => reply<Sample>(c, 'cpu', { t: 'cpu' })));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const cpuSince = (before: Sample[], after: Sample[]) => sum(after.map((a, j) => cpuUs(a.cpu) - cpuUs(before[j].cpu)));

/** Polls the children (a few messages a round, against thousands of sockets) until they hold n. */
async function held(cs: ChildProcess[], n: number): Promise<Sample[]> {
  for (;;) {
    const s = await sample(cs);
    if (sum(s.map((x) => x.kept)) >= n) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * n connections arrive at a fresh listener, taken either by this process (`onConn`) or by
 * children it hands the listener to (`share`, before the clock starts). Once all are taken and
 * `settled` resolves, returns this process's CPU and the wall time for the phase.
 */
async function acceptPhase(
  n: number,
  from: string,
  take: { onConn: (s: net.Socket) => void } | { share: (server: net.Server) => Promise<void> },
  settled: () => Promise<void>,
): Promise<{ cpu: Cpu; wallMs: number }> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, r));
  const conn = await spawnRole(['--connector', String((server.address() as net.AddressInfo).port), String(n), from, '200']);
  let accepted = 0;
  let allAccepted!: () => void;
  const all = new Promise<void>((r) => (allAccepted = r));
  if ('share' in take) {
    await take.share(server);
    allAccepted();
  } else {
    server.on('connection', (s) => {
      take.onConn(s);
      if (++accepted === n) allAccepted();
    });
  }
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  conn.send({ t: 'go' });
  await all;
  await settled();
  const cpu = process.cpuUsage(c0);
  const wallMs = Date.now() - t0;
  await reply(conn, 'closed', { t: 'close' });
  conn.kill();
  if (server.listening) server.close();
  return { cpu, wallMs };
}

async function main(argv: string[]): Promise<void> {
  const usage = 'usage: npm run bench -- handoff [--connections N] [--shards K] [--messages M]';
  const { problems, int, die } = benchCli('handoff', usage, argv, {
    connections: { type: 'string' },
    shards: { type: 'string' },
    messages: { type: 'string' },
  });
  const n = int('connections', 6000, 100, 19_000);
  const k = int('shards', 3, 1, 16);
  const m = int('messages', 5000, 100, 100_000);
  if (problems.length) die(problems);
  const hard = setTimeout(() => {
    process.stderr.write(`bench handoff: deadline of ${DEADLINE_MS / 1000} s passed\n`);
    process.exit(1);
  }, DEADLINE_MS);
  hard.unref();

  // Fresh source addresses each run: the last run's TIME_WAIT ports would slow the connector's
  // bind() and so the arrival rate, which changes what each accept costs.
  const net16 = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 256)}`;

  // (a) baseline: one process accepts and keeps its sockets.
  const kept: net.Socket[] = [];
  const base = await acceptPhase(n, `${net16}.2`, { onConn: (s) => kept.push(s) }, async () => {});
  for (const s of kept) s.destroy();

  // (b) handoff: the same accepts, each socket sent to the next child in turn.
  const keepers = await Promise.all(Array.from({ length: k }, () => spawnRole(['--keeper'])));
  const before = await sample(keepers);
  let after: Sample[] = [];
  let i = 0;
  const front = await acceptPhase(n, `${net16}.3`, { onConn: (s) => keepers[i++ % k].send({ t: 'conn' }, s) }, async () => {
    after = await held(keepers, n);
  });
  const shardUs = cpuSince(before, after);
  const handed = sum(after.map((a) => a.kept));

  // (c) the proposed design: the listener handed to fresh children once; they accept themselves.
  const acceptors = await Promise.all(Array.from({ length: k }, () => spawnRole(['--keeper'])));
  let sharedBefore: Sample[] = [];
  let sharedAfter: Sample[] = [];
  const share = async (server: net.Server) => {
    await Promise.all(acceptors.map((c) => reply(c, 'listening', { t: 'listen' }, server)));
    // Close this process's copy, or it would accept (and strand) a share of the connections.
    server.close();
    sharedBefore = await sample(acceptors);
  };
  const sharedPhase = await acceptPhase(n, `${net16}.4`, { share }, async () => {
    sharedAfter = await held(acceptors, n);
  });
  const sharedUs = cpuSince(sharedBefore, sharedAfter);
  const spread = sharedAfter.map((a) => a.kept);
  for (const c of acceptors) c.kill();

  // (e) what the server does now: every child binds the port with SO_REUSEPORT; the kernel
  // spreads the connections, no process is in between.
  const reusers = await Promise.all(Array.from({ length: k }, () => spawnRole(['--keeper'])));
  const first = await reply<{ port: number }>(reusers[0], 'listening', { t: 'reuse', port: 0 });
  await Promise.all(reusers.slice(1).map((c) => reply(c, 'listening', { t: 'reuse', port: first.port })));
  const reuseBefore = await sample(reusers);
  const reuseConn = await spawnRole(['--connector', String(first.port), String(n), `${net16}.5`, '200']);
  const rt0 = Date.now();
  reuseConn.send({ t: 'go' });
  const reuseAfter = await held(reusers, n);
  const reuseWallMs = Date.now() - rt0;
  const reuseUs = cpuSince(reuseBefore, reuseAfter);
  const reuseSpread = reuseAfter.map((a) => a.kept);
  await reply(reuseConn, 'closed', { t: 'close' });
  reuseConn.kill();
  for (const c of reusers) c.kill();

  // (d) the round trip: M messages each waiting for its reply, then M pipelined.
  const c = keepers[0];
  let t0 = process.cpuUsage();
  for (let j = 0; j < m; j++) await reply(c, 'pong', { t: 'ping' });
  const acked = cpuUs(process.cpuUsage(t0)) / m;
  t0 = process.cpuUsage();
  let pongs = 0;
  await new Promise<void>((resolve) => {
    const on = (msg: { t: string }) => {
      if (msg.t === 'pong' && ++pongs === m) {
        c.off('message', on);
        resolve();
      }
    };
    c.on('message', on);
    for (let j = 0; j < m; j++) c.send({ t: 'ping' });
  });
  const pipelined = cpuUs(process.cpuUsage(t0)) / m;
  for (const kp of keepers) kp.kill();

  const baseUs = cpuUs(base.cpu) / n;
  const frontUs = cpuUs(front.cpu) / n;
  const shardPerConn = shardUs / n;
  const r1 = (x: number) => Math.round(x * 10) / 10;
  const line = {
    scenario: 'H1',
    at: new Date().toISOString(),
    machine: machine(),
    connections: n,
    shards: k,
    handed_to_shards: handed,
    baseline_accept_in_process: { cpu_us_per_conn: r1(baseUs), user_us: r1(base.cpu.user / n), sys_us: r1(base.cpu.system / n), conns_per_s: Math.round((n * 1000) / base.wallMs) },
    handoff: {
      front_cpu_us_per_conn: r1(frontUs),
      front_sys_us_per_conn: r1(front.cpu.system / n),
      shards_cpu_us_per_conn: r1(shardPerConn),
      total_cpu_us_per_conn: r1(frontUs + shardPerConn),
      conns_per_s: Math.round((n * 1000) / front.wallMs),
    },
    shared_listener: {
      front_cpu_us_per_conn: r1(cpuUs(sharedPhase.cpu) / n),
      shards_cpu_us_per_conn: r1(sharedUs / n),
      total_cpu_us_per_conn: r1((cpuUs(sharedPhase.cpu) + sharedUs) / n),
      conns_per_s: Math.round((n * 1000) / sharedPhase.wallMs),
      per_shard: spread,
    },
    reuse_port: {
      shards_cpu_us_per_conn: r1(reuseUs / n),
      conns_per_s: Math.round((n * 1000) / reuseWallMs),
      per_shard: reuseSpread,
    },
    ratio_reuse_port_to_baseline: Math.round((reuseUs / n / baseUs) * 100) / 100,
    ratio_handoff_to_baseline: Math.round(((frontUs + shardPerConn) / baseUs) * 100) / 100,
    ratio_shared_listener_to_baseline: Math.round(((cpuUs(sharedPhase.cpu) + sharedUs) / n / baseUs) * 100) / 100,
    ipc_message_front_cpu_us: { acked_round_trip: r1(acked), pipelined: r1(pipelined), ratio: Math.round((acked / pipelined) * 100) / 100 },
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.exit(0);
}

const [, , role, ...rest] = process.argv;
if (role === '--connector') connector(Number(rest[0]), Number(rest[1]), rest[2], Number(rest[3]));
else if (role === '--keeper') keeper();
else await main(process.argv.slice(2));
