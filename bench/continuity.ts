// Benchmark `continuity` (issue 12): N official clients streaming over Kafka from one server while
// the server is restarted R times with SIGTERM. Prints one JSON line: messages lost (must be 0) and
// duplicated (0) against a direct Kafka consumer of the same topic, reconnect time p50/p99 (close
// -> open, and close -> channel recovered; both include the random delay the 1001 reason asks
// for), the time until every client is back per restart, and the server's CPU while it serves the
// replays against its CPU while streaming steadily (the baseline), as a ratio.
// Every process it starts is stopped at the end, also on error, SIGINT or SIGTERM.
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundle } from '../scripts/build.mjs';
import { observeTopic, startFleet, type Fleet } from '../scripts/local-fleet.mjs';
import { benchCli } from './lib/cli.js';
import { loadAverage, machine, machineBusy } from './lib/machine.js';
import { sampleTree } from './lib/proc-tree.js';
import type { Episode, FromWorker, ToWorker } from './continuity-lib/worker.js';

const USAGE = `usage: npm run bench -- continuity [options]
  --clients N              official clients, one concrete channel each (default 2000)
  --rate N                 records/s the publisher produces, all channels (default 100)
  --tokens N               channels (trades:ODIN1..N; default 20)
  --restarts N             SIGTERM restarts of the server (default 3)
  --workers N              client processes (default 2)
  --shards N               server shard processes (default 2)
  --hold S                 steady streaming before the first restart and after each (default 5)
  --reconnect-window-ms N  WS_RECONNECT_WINDOW_MS of the server (default 5000, its default)
  --out DIR                where the JSON line is also written (default reports/bench-continuity-<time>)`;

const log = (msg: string) => process.stderr.write(`[bench continuity ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function parse(argv: string[]) {
  const names = ['clients', 'rate', 'tokens', 'restarts', 'workers', 'shards', 'hold', 'reconnect-window-ms'] as const;
  const { v, problems, int, die } = benchCli('continuity', USAGE, argv, { out: { type: 'string' }, ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])) });
  const o = {
    clients: int('clients', 2000, 1, 20_000),
    rate: int('rate', 100, 1, 100_000),
    tokens: int('tokens', 20, 1, 10_000),
    restarts: int('restarts', 3, 1, 20),
    workers: int('workers', 2, 1, 16),
    shards: int('shards', 2, 1, 16),
    hold: int('hold', 5, 1, 600),
    reconnectWindowMs: int('reconnect-window-ms', 5000, 0, 600_000),
    out: String(v.out ?? path.join('reports', `bench-continuity-${new Date().toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}`)),
  };
  if (problems.length) die(problems);
  return o;
}

/** The p-th percentile (nearest rank) of `xs`, or null when empty. */
function percentile(xs: number[], p: number): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

class Worker {
  private readonly waiters: Array<(m: FromWorker) => void> = [];
  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: FromWorker) => {
      if (m.t === 'error') log(`worker ${proc.pid}: ${m.message}`);
      else this.waiters.shift()?.(m);
    });
  }
  ask<T extends FromWorker['t']>(msg: ToWorker, reply: T, timeoutMs = 120_000): Promise<Extract<FromWorker, { t: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker ${this.proc.pid}: no ${reply} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((m) => {
        clearTimeout(timer);
        if (m.t !== reply) reject(new Error(`worker ${this.proc.pid}: expected ${reply}, got ${m.t}`));
        else resolve(m as Extract<FromWorker, { t: T }>);
      });
      this.proc.send(msg);
    });
  }
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  await bundle({ only: ['server', 'publisher'] });
  let busy = await machineBusy(1000);
  for (let i = 0; busy > 0.3 && i < 90; i++) busy = await machineBusy(1000);
  log(`machine ${Math.round(busy * 100)}% busy before the run (load ${loadAverage().join(' ')})`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-bench-continuity-'));
  const workers: Worker[] = [];
  let fleet: Fleet | null = null;
  let observer: Awaited<ReturnType<typeof observeTopic>> | null = null;
  const cleanup = async () => {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await observer?.stop();
    await fleet?.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)));
  try {
    const topic = `bench-continuity-${randomUUID().slice(0, 8)}.trades`;
    fleet = await startFleet({
      dir,
      port: 0,
      nodes: 1,
      balancer: false,
      shards: o.shards,
      noticeMs: 0,
      drainTimeoutMs: 15_000,
      rate: o.rate,
      tokens: o.tokens,
      topics: [topic],
      brokers: process.env.KAFKA_BROKERS || undefined,
      // The guard counts the server's cores against all of them; on a shared 2-core box a busy
      // moment would refuse reconnects, which is not what is measured.
      nodeExtraEnv: { WS_CPU_LIMIT: '64', WS_RECONNECT_WINDOW_MS: String(o.reconnectWindowMs) },
      log,
    });
    const node = fleet.nodes[0].name;
    log(`server ${fleet.url}, broker ${fleet.brokers}, topic ${topic}`);

    observer = await observeTopic({ brokers: fleet.brokers, topic, clientId: 'bench-continuity-observer', groupId: `observer-${randomUUID().slice(0, 8)}` });
    const truth = observer.truth;

    const channels = Array.from({ length: o.tokens }, (_, i) => `trades:ODIN${i + 1}`);
    const per = Math.ceil(o.clients / o.workers);
    for (let i = 0; i < o.workers && i * per < o.clients; i++) {
      const proc = fork(path.join(import.meta.dirname, 'continuity-lib', 'worker.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      workers.push(new Worker(proc));
    }
    const started = await Promise.all(workers.map((w, i) => w.ask({ t: 'start', url: fleet!.url, channels, first: i * per, count: Math.min(per, o.clients - i * per), reconnectBaseMs: 200 }, 'started')));
    const failed = started.reduce((a, s) => a + s.failed, 0);
    if (failed) throw new Error(`${failed} clients could not subscribe`);
    const progress = async (since: number) => {
      const ps = await Promise.all(workers.map((w) => w.ask({ t: 'progress', since }, 'progress')));
      return { open: ps.reduce((a, p) => a + p.open, 0), streaming: ps.reduce((a, p) => a + p.streamingSince, 0), recovered: ps.reduce((a, p) => a + p.recoveredSince, 0) };
    };
    const waitUntil = async (what: string, check: () => Promise<boolean>, timeoutMs = 120_000) => {
      const end = Date.now() + timeoutMs;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out: ${what}`);
        await sleep(100);
      }
    };
    const t0 = Date.now();
    await waitUntil('every client streaming', async () => (await progress(t0)).streaming === o.clients);
    log(`${o.clients} clients streaming`);

    // Baseline: the server's CPU while it streams steadily.
    const cpuOf = () => sampleTree(fleet!.nodes[0].pid!);
    const b0 = cpuOf();
    await sleep(o.hold * 1000);
    const b1 = cpuOf();
    const baselineCores = (b1.cpuS - b0.cpuS) / ((b1.at - b0.at) / 1000);

    const restarts: Array<{ restart_ms: number; all_back_ms: number; replay_cpu_s: number; replay_cores: number }> = [];
    for (let r = 1; r <= o.restarts; r++) {
      const at = Date.now();
      const code = await fleet.signal(node, 'SIGTERM');
      if (code !== 0) throw new Error(`the server exited with ${code} on SIGTERM`);
      await fleet.start(node);
      const ready = Date.now();
      const c0 = cpuOf();
      await waitUntil(`every client back after restart ${r}`, async () => {
        const p = await progress(at);
        return p.open === o.clients && p.recovered === o.clients;
      });
      const back = Date.now();
      const c1 = cpuOf();
      restarts.push({ restart_ms: ready - at, all_back_ms: back - at, replay_cpu_s: +(c1.cpuS - c0.cpuS).toFixed(2), replay_cores: +((c1.cpuS - c0.cpuS) / Math.max(0.001, (c1.at - c0.at) / 1000)).toFixed(3) });
      log(`restart ${r}: server ready in ${ready - at} ms, every client back in ${back - at} ms`);
      await sleep(o.hold * 1000);
    }

    // Stop the source; once the broker's count settles and the last records were delivered, compare.
    process.kill(fleet.publisher!.pid, 'SIGTERM');
    let count = -1;
    for (let stable = 0; stable < 3; await sleep(1000)) {
      const n = [...truth.values()].reduce((a, l) => a + l.length, 0);
      stable = n === count ? stable + 1 : 0;
      count = n;
    }
    const verdicts = await Promise.all(workers.map((w) => w.ask({ t: 'verdict', truth: Object.fromEntries(truth) }, 'verdict')));
    const sum = (k: 'lost' | 'duplicates' | 'unordered' | 'gaps' | 'delivered' | 'replayed' | 'reconnects') => verdicts.reduce((a, v) => a + v[k], 0);
    const all: Episode[] = verdicts.flatMap((v) => v.episodes);
    const episodes = all.filter((e) => e.code === 1001);
    const byCode: Record<string, number> = {};
    for (const e of all) byCode[String(e.code)] = (byCode[String(e.code)] ?? 0) + 1;
    const toOpen = episodes.filter((e) => e.openAt !== null).map((e) => e.openAt! - e.closedAt);
    const toRecovered = episodes.filter((e) => e.recoveredAt !== null).map((e) => e.recoveredAt! - e.closedAt);
    const replayCores = restarts.map((x) => x.replay_cores);
    const meanReplay = replayCores.reduce((a, x) => a + x, 0) / replayCores.length;
    const result = {
      scenario: 'continuity',
      at: new Date().toISOString(),
      machine: machine(),
      busy_before: +busy.toFixed(2),
      clients: o.clients,
      workers: workers.length,
      shards: o.shards,
      rate: o.rate,
      channels: o.tokens,
      restarts: o.restarts,
      reconnect_window_ms: o.reconnectWindowMs,
      records: count,
      delivered: sum('delivered'),
      lost: sum('lost'),
      duplicates: sum('duplicates'),
      unordered: sum('unordered'),
      gaps_reported: sum('gaps'),
      replayed: sum('replayed'),
      reconnects: sum('reconnects'),
      closes_by_code: byCode,
      reconnect_ms: { p50: percentile(toOpen, 50), p99: percentile(toOpen, 99), n: toOpen.length, what: 'close 1001 -> open (includes the random delay in [0, reconnect_window_ms))' },
      recovered_ms: { p50: percentile(toRecovered, 50), p99: percentile(toRecovered, 99), n: toRecovered.length, what: 'close 1001 -> its channel recovered (replay delivered)' },
      per_restart: restarts,
      server_cpu: {
        baseline_cores: +baselineCores.toFixed(3),
        baseline: `front + shards while ${o.clients} clients stream steadily for ${o.hold} s`,
        replay_cores_mean: +meanReplay.toFixed(3),
        ratio_replay_to_baseline: baselineCores > 0 ? +(meanReplay / baselineCores).toFixed(2) : null,
      },
      verdict: sum('lost') === 0 && sum('duplicates') === 0 && sum('unordered') === 0 ? 'pass' : 'fail',
    };
    const line = JSON.stringify(result);
    process.stdout.write(`${line}\n`);
    fs.mkdirSync(o.out, { recursive: true });
    fs.appendFileSync(path.join(o.out, 'continuity.jsonl'), `${line}\n`);
    for (const w of workers) w.proc.send({ t: 'stop' } satisfies ToWorker);
    return result.verdict === 'pass' ? 0 : 1;
  } finally {
    await cleanup();
  }
}

process.exitCode = await main().catch((e) => {
  log(`failed: ${e?.stack ?? e}`);
  return 1;
});
