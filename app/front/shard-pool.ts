// Forks the shard processes, has each of them listen on the public port (SO_REUSEPORT: the kernel
// spreads new connections over them, no process in between), restarts the ones that die, runs
// the admission ledger (credits for capacity, relays for balance) and relays the rare connection
// a shard passes on. Tracks each shard's channel interest for the bus.
import { fork, type ChildProcess } from 'node:child_process';
import type net from 'node:net';
import type { Writable } from 'node:stream';
import type { BusTarget, BusTargets } from '../bus/broadcast-bus.js';
import type { ServerConfig } from '../config/config.js';
import { BUSY_FACTOR, hungVerdict, processCpuMs } from './liveness.js';
import type { FromShard, RecoverItem, ShardStats, ToShard } from '../common/ipc.js';
import type { Logger } from '../common/logger.js';
import { AdmissionLedger } from './admission.js';

const RESTART_BASE_MS = 100;
const RESTART_MAX_MS = 5000;
const STABLE_MS = 30_000;
/** A shard that exited this many times within CRASH_LOOP_WINDOW_MS is reported as crash-looping. */
const CRASH_LOOP_EXITS = 3;
const CRASH_LOOP_WINDOW_MS = 60_000;
/** Backstop for grants (they normally follow each report at once; see scheduleTick). */
const TICK_MS = 100;
/** Grants go out at most this long after a report (one pass over every shard's report). */
const GRANT_MS = 2;
/** Env vars a shard must not inherit: secrets reach it over the IPC channel, never /proc/PID/environ. */
const SECRET_ENV = /^(WS_AUTH_SECRET|WS_AUTH_SECRET_FILE)$/;

export type RestartCause = 'crash' | 'hang';

export class ShardHandle implements BusTarget {
  proc: ChildProcess | null = null;
  pipe: Writable | null = null;
  ready = false;
  restarts = 0;
  readonly restartsBy: Record<RestartCause, number> = { crash: 0, hang: 0 };
  /** Declared hung (missed heartbeats, or its bus output stuck over the cap): killed, not yet exited. */
  hung = false;
  /** Restarts in a row without a stable run (the backoff's exponent). */
  streak = 0;
  /** When it last exited (the last few), for the crash-loop verdict. */
  readonly exits: number[] = [];
  /** Last heartbeat answer (ms since the epoch) and its round trip. */
  lastBeat = 0;
  beatRttMs = 0;
  /** While overdue: its CPU time when last looked at, and when (see liveness.ts). */
  silentCpu: { ms: number | null; at: number } | null = null;
  startedAt = 0;
  stats: ShardStats | null = null;
  /** Admitted connections still open, from the shard's last report. */
  held = 0;
  /** Channels (concrete and `<stream>:*`) with at least one subscriber in this shard. */
  readonly interest = new Set<string>();
  lastGrant = '';
  readonly statsWaiters: Array<() => void> = [];
  /** Relayed sockets sent to this shard and not yet confirmed: the front's copies, closed on `relay-got`. */
  readonly relaysInFlight: net.Socket[] = [];

  constructor(readonly id: number) {}

  /** Exited CRASH_LOOP_EXITS times within CRASH_LOOP_WINDOW_MS, and not stable since. */
  get crashLooping(): boolean {
    const now = Date.now();
    if (this.ready && now - this.startedAt > STABLE_MS) return false;
    return this.exits.length >= CRASH_LOOP_EXITS && now - this.exits[0] < CRASH_LOOP_WINDOW_MS;
  }

  get connections(): number {
    return this.stats?.connections ?? 0;
  }

  wants(channel: string, wildcard: string): boolean {
    return this.interest.has(channel) || this.interest.has(wildcard);
  }

  wantsExact(channel: string): boolean {
    return this.interest.has(channel);
  }

  get incarnation(): number {
    return this.startedAt;
  }

  get pendingBytes(): number {
    return this.pipe?.writableLength ?? 0;
  }

  write(batch: Buffer): void {
    if (this.ready && this.pipe && !this.pipe.destroyed) this.pipe.write(batch);
  }

  send(msg: ToShard, handle?: net.Socket): boolean {
    if (!this.proc?.connected) return false;
    this.proc.send(msg, handle as never, { keepOpen: false }, () => {});
    return true;
  }
}

/** What the front answers for a shard's /health or /metrics request. */
export type HttpAnswer = { status: number; type: string; body: string };
export type HttpRequestHandler = (kind: 'health' | 'metrics', detail: boolean) => Promise<HttpAnswer>;
export type RecoverHandler = (shard: ShardHandle, rid: number, items: RecoverItem[]) => void;

/** The guard's verdict the front computes from the whole server's load (cpu, memory). */
export interface AdmissionFlags {
  refuse: string | null;
  draining: boolean;
}

export class ShardPool implements BusTargets {
  readonly shards: ShardHandle[];
  private readonly ledger: AdmissionLedger;
  private stopping = false;
  private readonly metricsWaiters = new Map<number, (m: unknown) => void>();
  private nextReq = 1;
  private ticker: NodeJS.Timeout | null = null;
  private beater: NodeJS.Timeout | null = null;
  private tickPending = false;
  /** The last grants told the shards the server is full (they refuse at once while it is). */
  private sentFull = false;
  /** Since when a shard's bus output has been over its cap (the bus knows), or null. */
  private stalledSince: (id: number) => number | null = () => null;
  private port = 0;
  private flags: AdmissionFlags = { refuse: null, draining: false };
  private onHttp: HttpRequestHandler = async () => ({ status: 503, type: 'application/json', body: '{"status":"starting"}' });
  private onRecover: RecoverHandler = () => {};
  relayFailed = 0;
  /** Called once per restart with its cause (the front counts them in /metrics). */
  onRestart: (s: ShardHandle, cause: RestartCause) => void = () => {};

  constructor(
    private readonly config: ServerConfig,
    private readonly entry: string,
    private readonly log: Logger,
  ) {
    this.shards = Array.from({ length: config.shards }, (_, i) => new ShardHandle(i));
    this.ledger = new AdmissionLedger(config.shards, config.maxConnections);
  }

  /** Forks every shard; the first picks the port (it may be 0), the others join it. */
  async start(): Promise<number> {
    const [first, ...rest] = this.shards;
    this.port = await this.spawn(first, this.config.addr.port);
    await Promise.all(rest.map((s) => this.spawn(s, this.port)));
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
    const every = Math.max(100, Math.floor(this.config.shardLivenessMs / 6));
    this.beater = setInterval(() => this.beat(), every);
    this.beater.unref();
    this.log.info({ shards: this.shards.length, pids: this.shards.map((s) => s.proc?.pid), port: this.port }, 'shards started');
    return this.port;
  }

  /** Where the pool learns that a shard has stopped taking its bus output (see beat()). */
  watchStalls(fn: (id: number) => number | null): void {
    this.stalledSince = fn;
  }

  handleHttp(fn: HttpRequestHandler): void {
    this.onHttp = fn;
  }

  handleRecover(fn: RecoverHandler): void {
    this.onRecover = fn;
  }

  setFlags(flags: AdmissionFlags): void {
    this.flags = flags;
    this.tick();
  }

  forEachTarget(fn: (t: BusTarget) => void): void {
    for (const s of this.shards) if (s.ready && s.interest.size) fn(s);
  }

  get totalConnections(): number {
    let n = 0;
    for (const s of this.shards) n += s.connections;
    return n;
  }

  /** Admitted connections (established or handshaking), as the ledger counts them. */
  get heldConnections(): number {
    return this.ledger.held;
  }

  /** Asks every live shard for its prom-client metrics JSON. */
  async collectMetrics(timeoutMs = 1000): Promise<unknown[]> {
    const live = this.shards.filter((s) => s.ready);
    const replies = live.map(
      (s) =>
        new Promise<unknown>((resolve) => {
          const id = this.nextReq++;
          const timer = setTimeout(() => {
            this.metricsWaiters.delete(id);
            resolve(null);
          }, timeoutMs);
          this.metricsWaiters.set(id, (m) => {
            clearTimeout(timer);
            resolve(m);
          });
          if (!s.send({ t: 'metrics-req', id })) resolve(null);
        }),
    );
    return (await Promise.all(replies)).filter((m) => m !== null);
  }

  /** Asks every live shard for fresh stats (counts that /health reports); bounded wait. */
  async refreshStats(timeoutMs = 500): Promise<void> {
    const live = this.shards.filter((s) => s.ready);
    await Promise.all(
      live.map(
        (s) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, timeoutMs);
            s.statsWaiters.push(() => {
              clearTimeout(timer);
              resolve();
            });
            if (!s.send({ t: 'stats-req' })) resolve();
          }),
      ),
    );
  }

  /** Tells every shard to close its clients with 1001 and exit; resolves when all have exited. */
  async drain(deadlineAt: number): Promise<void> {
    this.stopping = true;
    if (this.ticker) clearInterval(this.ticker);
    if (this.beater) clearInterval(this.beater);
    await Promise.all(
      this.shards.map(async (s) => {
        const proc = s.proc;
        if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = new Promise<void>((r) => proc.once('exit', () => r()));
        if (!s.send({ t: 'drain', deadlineMs: deadlineAt - 250 })) proc.kill('SIGKILL');
        const timer = setTimeout(() => proc.kill('SIGKILL'), Math.max(0, deadlineAt - Date.now()));
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  /**
   * Liveness: every live shard answers a heartbeat from its event loop. One that has not answered
   * within WS_SHARD_LIVENESS_MS (a blocked loop, a runaway synchronous task, SIGSTOP, a long GC
   * pause), or whose bus output has been stuck over its cap that long, is declared hung: it stops
   * getting grants, relays and bus batches at once, and is SIGKILLed (its listener leaves the port
   * with it) and restarted with the crash backoff.
   */
  private beat(): void {
    const now = Date.now();
    const bound = this.config.shardLivenessMs;
    for (const s of this.shards) {
      if (!s.ready || s.hung) continue;
      const stalled = this.stalledSince(s.id);
      if (stalled !== null && now - stalled > bound) {
        this.declareHung(s, 'bus output stuck over its cap');
        continue;
      }
      if (now - s.lastBeat > bound) {
        // Overdue: whether it is running decides (one beat period of CPU accounting first).
        const cpu = s.proc?.pid ? processCpuMs(s.proc.pid) : null;
        const last = s.silentCpu;
        s.silentCpu = { ms: cpu, at: now };
        if (!last && cpu !== null) continue;
        const why = hungVerdict({ silentMs: now - s.lastBeat, cpuMs: cpu === null || last?.ms == null ? null : cpu - last.ms, windowMs: last ? now - last.at : 0 }, bound);
        if (why) this.declareHung(s, `missed heartbeats (${why})`);
        continue;
      }
      s.send({ t: 'hb', at: now });
    }
  }

  private declareHung(s: ShardHandle, why: string): void {
    s.hung = true;
    s.ready = false;
    this.ledger.down(s.id);
    this.log.error({ shard: s.id, pid: s.proc?.pid, why, liveness_ms: this.config.shardLivenessMs, last_beat_ms_ago: Date.now() - s.lastBeat }, 'shard hung; killing it');
    s.proc?.kill('SIGKILL');
    this.tick();
  }

  /** Grants follow reports within GRANT_MS (coalesced over every shard); the ticker is a backstop. */
  private scheduleTick(): void {
    if (this.tickPending) return;
    this.tickPending = true;
    setTimeout(() => {
      this.tickPending = false;
      this.tick();
    }, GRANT_MS);
  }

  /** Sends each live shard its grant when it changed (capacity credits, relay budget, guard flags). */
  private tick(): void {
    const grants = this.ledger.grants();
    this.sentFull = grants.some((g) => g.full);
    for (const s of this.shards) {
      if (!s.ready) continue;
      const g = grants[s.id];
      const msg: ToShard = { t: 'grant', issued: g.issued, relay: g.relay, gen: g.gen, canRelay: g.canRelay, full: g.full, multi: g.multi, refuse: this.flags.refuse, draining: this.flags.draining };
      const key = `${g.issued}/${g.gen}/${g.canRelay}/${g.full}/${g.multi}/${this.flags.refuse}/${this.flags.draining}`;
      if (key === s.lastGrant) continue;
      s.lastGrant = key;
      s.send(msg);
    }
  }

  /** Resolves with the port the shard listens on (0 when it died before listening). */
  private spawn(s: ShardHandle, port: number): Promise<number> {
    const env: NodeJS.ProcessEnv = { ODIN_ROLE: 'shard' };
    for (const [k, v] of Object.entries(process.env)) if (!SECRET_ENV.test(k)) env[k] = v;
    env.ODIN_ROLE = 'shard';
    const proc = fork(this.entry, [], {
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
      // A shard holds many long-lived sockets and allocates little per message (frames are
      // shared), so V8's default 16 MiB semi-spaces mostly hold garbage: smaller ones cut shard
      // RSS by ~3 KB per connection at the cost of more (cheap) scavenges. Its old generation is
      // mostly those sockets, live: V8's first full GCs (at ~16 and ~56 MiB) mark a heap that is
      // still filling with clients after a deploy and free ~2 MiB each; starting at 128 MiB
      // spares them (a 36,000 ramp on 2 shards: ~10% less server CPU per connection).
      execArgv: [...process.execArgv, '--max-semi-space-size=4', '--initial-old-space-size=128'],
      serialization: 'json',
    });
    s.proc = proc;
    s.pipe = proc.stdio[4] as Writable;
    s.pipe.on('error', () => {}); // the exit handler deals with a dead shard
    s.ready = false;
    s.held = 0;
    s.lastGrant = '';
    s.interest.clear();
    s.silentCpu = null;
    s.startedAt = Date.now();
    // A fork that fails (EAGAIN, EMFILE) must not take the front down: it is retried like a crash.
    proc.on('error', (err) => this.log.error({ err, shard: s.id }, 'shard process error'));
    // A shard that never gets to listening (a start that hangs) is killed and restarted like a
    // hung one, instead of leaving the front waiting forever.
    // The bound is the one a running but silent shard gets (module loading on a loaded machine).
    const startupMs = Math.max(5000, this.config.shardLivenessMs * BUSY_FACTOR);
    const startup = setTimeout(() => {
      this.log.error({ shard: s.id, pid: proc.pid, startup_ms: startupMs }, 'shard did not start; killing it');
      s.hung = true;
      proc.kill('SIGKILL');
    }, startupMs);
    return new Promise((resolve) => {
      proc.on('message', (msg: FromShard, handle?: unknown) => {
        if (msg.t === 'booted') s.send({ t: 'init', id: s.id, config: this.config });
        else if (msg.t === 'ready') s.send({ t: 'listen', port });
        else if (msg.t === 'listening') {
          clearTimeout(startup);
          s.ready = true;
          s.lastBeat = Date.now();
          this.ledger.up(s.id);
          this.tick();
          resolve(msg.port);
        } else this.onMessage(s, msg, handle);
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(startup);
        // Relayed sockets it never confirmed would hang their clients: close them (they reconnect).
        this.relayFailed += s.relaysInFlight.length;
        for (const sock of s.relaysInFlight.splice(0)) sock.destroy();
        s.ready = false;
        s.held = 0;
        s.interest.clear();
        s.stats = null;
        this.ledger.down(s.id);
        resolve(0);
        if (this.stopping) return;
        const cause: RestartCause = s.hung ? 'hang' : 'crash';
        s.hung = false;
        s.restarts++;
        s.restartsBy[cause]++;
        this.onRestart(s, cause);
        // The backoff doubles per restart in a row and starts again once a run lasted STABLE_MS.
        const now = Date.now();
        s.streak = now - s.startedAt > STABLE_MS ? 0 : s.streak + 1;
        s.exits.push(now);
        if (s.exits.length > CRASH_LOOP_EXITS) s.exits.shift();
        const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.min(s.streak, 6));
        this.log.error({ shard: s.id, code, signal, cause, restarts: s.restarts, restart_in_ms: delay }, 'shard exited; restarting');
        setTimeout(() => {
          if (!this.stopping) void this.spawn(s, this.port);
        }, delay);
      });
    });
  }

  private onMessage(s: ShardHandle, msg: FromShard, handle: unknown): void {
    switch (msg.t) {
      case 'hb-ack':
        s.lastBeat = Date.now();
        s.beatRttMs = s.lastBeat - msg.at;
        s.silentCpu = null;
        break;
      case 'load':
        s.held = msg.held;
        this.ledger.report(s.id, msg);
        // A slot freed at the maximum is granted now: until the shards hear it they refuse every
        // upgrade, while /health (answered from these reports) already shows the room.
        if (this.sentFull && this.ledger.held < this.config.maxConnections) this.tick();
        else this.scheduleTick();
        break;
      case 'relay':
        this.relay(s, handle as net.Socket | undefined, msg.at);
        break;
      case 'relay-failed':
        this.relayFailed++;
        break;
      case 'relay-got':
        for (const sock of s.relaysInFlight.splice(0, msg.n)) sock.destroy();
        break;
      case 'interest':
        // One batch per shard event-loop turn; the shard sends the next only after this ack.
        for (const ch of msg.add) s.interest.add(ch);
        for (const ch of msg.remove) s.interest.delete(ch);
        s.send({ t: 'interest-ack', seq: msg.seq });
        break;
      case 'stats':
        s.stats = msg.stats;
        for (const w of s.statsWaiters.splice(0)) w();
        break;
      case 'metrics-res':
        this.metricsWaiters.get(msg.id)?.(msg.metrics);
        this.metricsWaiters.delete(msg.id);
        break;
      case 'recover':
        this.onRecover(s, msg.rid, msg.items);
        break;
      case 'http-req':
        void this.onHttp(msg.kind, msg.detail)
          .catch((err) => {
            this.log.error({ err }, `${msg.kind} request failed`);
            return { status: 500, type: 'application/json', body: '{"error":"internal"}' };
          })
          .then((a) => s.send({ t: 'http-res', id: msg.id, ...a }));
        break;
    }
  }

  /**
   * A shard passed on an unread connection (balance, or it had no credit). Node's handle receipt
   * starts libuv reading on the socket and, once sent on, drops whatever it reads until the next
   * process acks the handle: stop reading so the client's request waits in the kernel.
   */
  private relay(from: ShardHandle, socket: net.Socket | undefined, acceptedAt: number): void {
    if (!socket) {
      this.relayFailed++;
      return;
    }
    (socket as unknown as { _handle?: { readStop?: () => number } })._handle?.readStop?.();
    this.tick(); // credits freed since the last tick may be what the relay needs
    const to = this.ledger.relayTarget(from.id);
    const target = to === null ? from : this.shards[to];
    // keepOpen: the front's copy stays open until the shard confirms it has its own, so a shard
    // that dies with relays in flight cannot leave a client hanging on a handle nobody owns.
    if (!target.proc?.connected) {
      this.relayFailed++;
      socket.destroy();
      return;
    }
    target.relaysInFlight.push(socket);
    target.proc.send({ t: 'conn', at: acceptedAt } satisfies ToShard, socket as never, { keepOpen: true }, () => {});

  }
}
