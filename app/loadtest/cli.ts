// Load generator CLI: every flag validated here, once, into a frozen config. Bad input exits 2
// with one line per problem, before any socket is opened.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { parseChannelSpec, type ChannelSpec } from './channels.js';
import { defaultSourceIps, isLoopbackHost, parseSourceIps } from './source-ips.js';

/** A single process holds at most 20,000 fds here (hard limit); leave room for pipes and logs. */
export const SOCKETS_PER_WORKER_CAP = 19_000;

export interface LoadtestConfig {
  readonly url: string;
  readonly healthUrl: string | null;
  readonly channels: ChannelSpec;
  readonly streams: readonly string[];
  readonly discoverS: number;
  readonly holdS: number;
  readonly rampPerS: number;
  readonly mode: 'target' | 'search';
  readonly target: number;
  readonly search: { readonly start: number; readonly step: number; readonly max: number };
  readonly workers: number;
  readonly perWorkerMax: number;
  readonly sourceIps: readonly string[];
  readonly outDir: string;
  readonly json: boolean;
  readonly deadlineS: number;
  readonly sloP99Ms: number;
  readonly handshakeTimeoutMs: number;
  readonly maxInFlight: number;
  readonly retryRefused: boolean;
  readonly client: 'ws' | 'lite';
  readonly progress: boolean;
  readonly local: boolean;
}

export const USAGE = `usage: loadtest (--target N | --search) [options]
  --url URL              WebSocket endpoint (default ws://127.0.0.1:3004/ws)
  --health URL|off       health endpoint (default: the URL with http(s) and path /health)
  --channels SPEC        subscription mix per client (default trades:*):
                           a,b,c      a comma list of channels, every client subscribes to all
                           random:K   K distinct concrete channels per client, drawn from the
                                      channels seen on <stream>:* (--streams) during discovery
                           none       connect only, no subscription (idle connections)
  --streams LIST         streams used by random:K discovery (default trades,prices)
  --discover SECONDS     how long random:K discovery listens (default 3)
  --target N             ramp to N connections, hold, report
  --search               step up until the SLO breaks; report the last good step
  --search-start N       first step (default 1000)
  --search-step N        step size (default 1000)
  --search-max N         last step (default 20000)
  --hold SECONDS         hold time at the target / at each step (default 10)
  --ramp N               new connections per second, all workers together (default 1000)
  --workers N            generator processes (default min(4, cores), raised to fit the target)
  --per-worker-max N     sockets per worker (default and cap ${SOCKETS_PER_WORKER_CAP})
  --source-ips LIST      client source addresses: IP, IP-IP ranges, comma separated, or none
                         (default for a loopback target: 16 addresses 127.A.B.1-16, A.B new
                         each run so TIME_WAIT sockets of the last run do not collide; none otherwise)
  --slo-p99-ms N         latency SLO (default 100)
  --handshake-timeout-ms N  per connection (default 10000)
  --max-in-flight N      handshakes in flight per worker (default 200)
  --retry-refused        a client refused with 503 (or closed with 1013) tries again after the
                         server's Retry-After or reconnect hint (plus up to 50% jitter), as the
                         official client does, until the run ends; a step's
                         ramp ends on first attempts, its hold then shows what retrying clients get
  --client ws|lite       client implementation: ws (the ws library, protocol v1) or lite
                         (handshake and pings only, about half the CPU per connection; idle clients only)
                         (default lite with --channels none on ws://, ws otherwise)
  --deadline SECONDS     hard stop for the whole run (default: from the plan, plus margin)
  --out DIR              report directory; files go to DIR/<timestamp>/ (default reports)
  --json                 print the result JSON as the last line of stdout
  --no-progress          no progress bar even on a TTY (it is off when not a TTY or CI is set)`;

export type CliResult = { ok: true; config: LoadtestConfig } | { ok: false; problems: string[]; help?: boolean };

const INT_FLAGS = ['target', 'search-start', 'search-step', 'search-max', 'ramp', 'workers', 'per-worker-max', 'slo-p99-ms', 'handshake-timeout-ms', 'max-in-flight'] as const;
const NUM_FLAGS = ['hold', 'discover', 'deadline'] as const;

export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, isTTY = !!process.stderr.isTTY): CliResult {
  const options = {
    url: { type: 'string' },
    health: { type: 'string' },
    channels: { type: 'string' },
    streams: { type: 'string' },
    search: { type: 'boolean' },
    'source-ips': { type: 'string' },
    client: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
    'no-progress': { type: 'boolean' },
    'retry-refused': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...Object.fromEntries([...INT_FLAGS, ...NUM_FLAGS].map((f) => [f, { type: 'string' }])),
  } as const;
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as typeof v;
  } catch (err) {
    return { ok: false, problems: [(err as Error).message] };
  }
  if (v.help) return { ok: false, problems: [], help: true };
  const problems: string[] = [];
  const n = (flag: string, min: number, max: number, def: number, integer = true): number => {
    const raw = v[flag];
    if (raw === undefined) return def;
    const x = Number(raw);
    if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(x) || (integer && !Number.isInteger(x)) || x < min || x > max) {
      problems.push(`--${flag}=${JSON.stringify(raw)}: must be ${integer ? 'an integer' : 'a number'} in ${min}..${max}`);
      return def;
    }
    return x;
  };

  const url = String(v.url ?? 'ws://127.0.0.1:3004/ws');
  let parsedUrl: URL | null = null;
  try {
    parsedUrl = new URL(url);
    if (parsedUrl.protocol !== 'ws:' && parsedUrl.protocol !== 'wss:') throw new Error('not ws');
  } catch {
    problems.push(`--url=${JSON.stringify(url)}: must be a ws:// or wss:// URL`);
    parsedUrl = null;
  }
  let healthUrl: string | null = null;
  if (v.health === 'off') healthUrl = null;
  else if (typeof v.health === 'string') {
    try {
      const h = new URL(v.health);
      if (h.protocol !== 'http:' && h.protocol !== 'https:') throw new Error('not http');
      healthUrl = h.toString();
    } catch {
      problems.push(`--health=${JSON.stringify(v.health)}: must be an http(s) URL or "off"`);
    }
  } else if (parsedUrl) healthUrl = deriveHealthUrl(parsedUrl);

  const spec = parseChannelSpec(String(v.channels ?? 'trades:*'));
  if (!spec.ok) problems.push(`--channels=${JSON.stringify(v.channels)}: ${spec.problem}`);
  const streams = String(v.streams ?? 'trades,prices').split(',').map((s) => s.trim()).filter(Boolean);
  if (!streams.length || streams.some((s) => !/^[a-z][a-z0-9_-]{0,31}$/.test(s))) {
    problems.push(`--streams=${JSON.stringify(v.streams)}: must be a comma list of lowercase stream names`);
  }

  const hasTarget = v.target !== undefined;
  if (hasTarget === !!v.search) problems.push('give exactly one of --target N or --search');
  for (const f of ['search-start', 'search-step', 'search-max']) {
    if (v[f] !== undefined && !v.search) problems.push(`--${f} only applies with --search`);
  }
  const target = n('target', 1, 1_000_000, 0);
  const search = { start: n('search-start', 1, 1_000_000, 1000), step: n('search-step', 1, 1_000_000, 1000), max: n('search-max', 1, 1_000_000, 20_000) };
  if (v.search && search.max < search.start) problems.push(`--search-max (${search.max}) must be >= --search-start (${search.start})`);
  const holdS = n('hold', 1, 86_400, 10, false);
  const discoverS = n('discover', 0.5, 60, 3, false);
  const rampPerS = n('ramp', 1, 1_000_000, 1000);
  const perWorkerMax = n('per-worker-max', 1, SOCKETS_PER_WORKER_CAP, SOCKETS_PER_WORKER_CAP);
  const sloP99Ms = n('slo-p99-ms', 1, 600_000, 100);
  const handshakeTimeoutMs = n('handshake-timeout-ms', 100, 600_000, 10_000);
  const maxInFlight = n('max-in-flight', 1, 100_000, 200);

  const peak = v.search ? search.max : target;
  const needed = Math.max(1, Math.ceil(peak / perWorkerMax));
  let workers: number;
  if (v.workers !== undefined) {
    workers = n('workers', 1, 256, 1);
    if (workers < needed) {
      problems.push(`--workers=${workers}: ${peak} connections need at least ${needed} workers at ${perWorkerMax} sockets each (one process may hold at most ~${SOCKETS_PER_WORKER_CAP} sockets under the fd limit)`);
    }
  } else workers = Math.max(needed, Math.min(4, os.availableParallelism()));

  const idle = spec.ok && spec.spec.kind === 'none';
  const plainWs = parsedUrl?.protocol === 'ws:';
  let client: 'ws' | 'lite' = idle && plainWs ? 'lite' : 'ws';
  if (v.client !== undefined) {
    if (v.client !== 'ws' && v.client !== 'lite') problems.push(`--client=${JSON.stringify(v.client)}: must be ws or lite`);
    else if (v.client === 'lite' && !(idle && plainWs)) problems.push('--client lite needs --channels none and a ws:// URL (it only holds idle connections)');
    else client = v.client;
  }

  const local = parsedUrl ? isLoopbackHost(parsedUrl.hostname) : false;
  let sourceIps: string[] = [];
  if (v['source-ips'] !== undefined) {
    const r = parseSourceIps(String(v['source-ips']));
    if (r.ok) sourceIps = r.ips;
    else problems.push(`--source-ips=${JSON.stringify(v['source-ips'])}: ${r.problem}`);
  } else if (local) sourceIps = defaultSourceIps();

  const plannedS = planSeconds(v.search ? 'search' : 'target', target, search, rampPerS, holdS) + (spec.ok && spec.spec.kind === 'random' ? discoverS : 0);
  // Default deadline: every step may use its whole ramp budget, plus hold and a margin.
  const worstS = planSteps({ mode: v.search ? 'search' : 'target', target, search }).reduce(
    (acc, x, i, all) => acc + rampBudgetMs(x - (i ? all[i - 1] : 0), rampPerS, handshakeTimeoutMs) / 1000 + holdS + 15,
    spec.ok && spec.spec.kind === 'random' ? discoverS : 0,
  );
  const deadlineS = n('deadline', 1, 7 * 86_400, Math.ceil(worstS + 30), false);
  if (v.deadline !== undefined && deadlineS < plannedS) {
    problems.push(`--deadline=${deadlineS}: shorter than the plan needs (~${Math.ceil(plannedS)} s of ramp and hold)`);
  }

  if (problems.length || !spec.ok) return { ok: false, problems };
  const config: LoadtestConfig = {
    url,
    healthUrl,
    channels: spec.spec,
    streams,
    discoverS,
    holdS,
    rampPerS,
    mode: v.search ? 'search' : 'target',
    target,
    search,
    workers,
    perWorkerMax,
    sourceIps,
    outDir: String(v.out ?? 'reports'),
    json: !!v.json,
    deadlineS,
    sloP99Ms,
    handshakeTimeoutMs,
    maxInFlight,
    retryRefused: !!v['retry-refused'],
    client,
    progress: isTTY && !env.CI && !v['no-progress'],
    local,
  };
  return { ok: true, config: deepFreeze(config) };
}

/** ws://h:p/ws -> http://h:p/health (wss -> https). */
export function deriveHealthUrl(u: URL): string {
  const h = new URL(u.toString());
  h.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  h.pathname = '/health';
  h.search = '';
  h.hash = '';
  return h.toString();
}

/** The steps a run walks through: one for --target, start..max by step for --search. */
export function planSteps(c: Pick<LoadtestConfig, 'mode' | 'target' | 'search'>): number[] {
  if (c.mode === 'target') return [c.target];
  const steps: number[] = [];
  for (let x = c.search.start; x <= c.search.max && steps.length < 10_000; x += c.search.step) steps.push(x);
  if (steps[steps.length - 1] !== c.search.max) steps.push(c.search.max);
  return steps;
}

/** How long a ramp of `delta` new connections may take before the step moves on regardless. */
export function rampBudgetMs(delta: number, rampPerS: number, handshakeTimeoutMs: number): number {
  return (delta / rampPerS) * 2000 + handshakeTimeoutMs + 60_000;
}

function planSeconds(mode: 'target' | 'search', target: number, search: LoadtestConfig['search'], ramp: number, hold: number): number {
  const steps = planSteps({ mode, target, search });
  const peak = steps[steps.length - 1] ?? 0;
  return peak / ramp + steps.length * (hold + 2);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const x of Object.values(o)) deepFreeze(x);
    Object.freeze(o);
  }
  return o;
}
