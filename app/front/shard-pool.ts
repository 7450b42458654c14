// Forks the shard processes, restarts the ones that die, tracks each one's connections and
// channel interest, and hands each accepted socket to the least-loaded shard.
import { fork, type ChildProcess } from 'node:child_process';
import type net from 'node:net';
import type { Writable } from 'node:stream';
import type { BusTarget, BusTargets } from '../bus/broadcast-bus.js';
import type { ServerConfig } from '../config/config.js';
import type { ChannelClaims, FromShard, ShardStats, ToShard } from '../common/ipc.js';
import type { Logger } from '../common/logger.js';

const RESTART_BASE_MS = 100;
const RESTART_MAX_MS = 5000;
const STABLE_MS = 30_000;

export class ShardHandle implements BusTarget {
  proc: ChildProcess | null = null;
  pipe: Writable | null = null;
  ready = false;
  connections = 0;
  restarts = 0;
  startedAt = 0;
  stats: ShardStats | null = null;
  /** Channels (concrete and `<stream>:*`) with at least one subscriber in this shard. */
  readonly interest = new Set<string>();

  constructor(readonly id: number) {}

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

  /**
   * Node sends one handle at a time per child and queues the rest until the child acks; on each
   * ack it walks its whole queue, so a deep queue (hundreds during a connect burst) costs the
   * front O(depth) per connection. Keep Node's queue short and hold the backlog here instead.
   */
  private backlog: Array<{ msg: ToShard; socket: net.Socket }> = [];
  private inFlight = 0;

  sendSocket(msg: ToShard, socket: net.Socket): boolean {
    if (!this.proc?.connected) return false;
    if (this.inFlight < HANDOFF_WINDOW) {
      this.inFlight++;
      return this.send(msg, socket);
    }
    this.backlog.push({ msg, socket });
    return true;
  }

  /** The shard reports `n` conn messages arrived: send what waits. */
  received(n: number): void {
    this.inFlight = Math.max(0, this.inFlight - n);
    while (this.inFlight < HANDOFF_WINDOW && this.backlog.length) {
      const next = this.backlog.shift()!;
      this.inFlight++;
      this.send(next.msg, next.socket);
    }
  }

  /** The shard is gone: sockets still waiting for it are dropped (their clients reconnect). */
  resetHandoff(): number {
    const dropped = this.backlog.length;
    for (const { socket } of this.backlog) socket.destroy();
    this.backlog = [];
    this.inFlight = 0;
    return dropped;
  }
}

const HANDOFF_WINDOW = 4;

export interface HandoffRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  head: Buffer;
  claims?: ChannelClaims;
}

export class ShardPool implements BusTargets {
  readonly shards: ShardHandle[];
  private stopping = false;
  private readonly metricsWaiters = new Map<number, (m: unknown) => void>();
  private nextReq = 1;

  constructor(
    private readonly config: ServerConfig,
    private readonly entry: string,
    private readonly log: Logger,
  ) {
    this.shards = Array.from({ length: config.shards }, (_, i) => new ShardHandle(i));
  }

  async start(): Promise<void> {
    await Promise.all(this.shards.map((s) => this.spawn(s)));
    this.log.info({ shards: this.shards.length, pids: this.shards.map((s) => s.proc?.pid) }, 'shards started');
  }

  forEachTarget(fn: (t: BusTarget) => void): void {
    for (const s of this.shards) if (s.ready && s.interest.size) fn(s);
  }

  get totalConnections(): number {
    let n = 0;
    for (const s of this.shards) n += s.connections;
    return n;
  }

  /** Least connections among ready shards; ties go to the lowest id. */
  pick(perShardMax: number): ShardHandle | null {
    let best: ShardHandle | null = null;
    for (const s of this.shards) {
      if (!s.ready || s.connections >= perShardMax) continue;
      if (!best || s.connections < best.connections) best = s;
    }
    return best;
  }

  handoff(shard: ShardHandle, req: HandoffRequest, socket: net.Socket): boolean {
    // Until the shard acks the handle, this process still holds the fd with read interest that
    // the HTTP parser started: bytes the client sends right after the 101 (its first subscribe)
    // would be read here and lost. Stop reading so they wait in the kernel for the shard.
    // (net.Socket#pause() only stops the libuv read for sockets created with `onread`.)
    (socket as unknown as { _handle?: { readStop?: () => number } })._handle?.readStop?.();
    const ok = shard.sendSocket({ t: 'conn', method: req.method, url: req.url, headers: handshakeHeaders(req.headers), head: req.head.toString('base64'), claims: req.claims }, socket);
    if (ok) shard.connections++;
    return ok;
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

  /** Tells every shard to close its clients with 1001 and exit; resolves when all have exited. */
  async drain(deadlineAt: number): Promise<void> {
    this.stopping = true;
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

  private spawn(s: ShardHandle): Promise<void> {
    const proc = fork(this.entry, [], {
      env: { ...process.env, ODIN_ROLE: 'shard', ODIN_SHARD_ID: String(s.id), ODIN_SHARD_CONFIG: JSON.stringify(this.config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
      // A shard holds many long-lived sockets and allocates little per message (frames are
      // shared), so V8's default 16 MiB semi-spaces mostly hold garbage: smaller ones cut shard
      // RSS by ~3 KB per connection at the cost of more (cheap) scavenges.
      execArgv: [...process.execArgv, '--max-semi-space-size=4'],
      serialization: 'json',
    });
    s.proc = proc;
    s.pipe = proc.stdio[4] as Writable;
    s.pipe.on('error', () => {}); // the exit handler deals with a dead shard
    s.ready = false;
    s.connections = 0;
    s.interest.clear();
    s.startedAt = Date.now();
    return new Promise((resolve) => {
      proc.on('message', (msg: FromShard) => {
        this.onMessage(s, msg);
        if (msg.t === 'ready') resolve();
      });
      proc.once('exit', (code, signal) => {
        s.resetHandoff();
        s.ready = false;
        s.connections = 0;
        s.interest.clear();
        s.stats = null;
        resolve();
        if (this.stopping) return;
        s.restarts++;
        const stable = Date.now() - s.startedAt > STABLE_MS;
        const delay = stable ? RESTART_BASE_MS : Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.min(s.restarts, 6));
        this.log.error({ shard: s.id, code, signal, restarts: s.restarts, restart_in_ms: delay }, 'shard exited; restarting');
        setTimeout(() => {
          if (!this.stopping) void this.spawn(s);
        }, delay);
      });
    });
  }

  private onMessage(s: ShardHandle, msg: FromShard): void {
    switch (msg.t) {
      case 'ready':
        s.ready = true;
        break;
      case 'got':
        s.received(msg.n);
        break;
      case 'conn-failed':
      case 'closed':
        s.connections = Math.max(0, s.connections - 1);
        break;
      case 'sub':
        s.interest.add(msg.ch);
        s.send({ t: 'sub-ack', ch: msg.ch });
        break;
      case 'unsub':
        s.interest.delete(msg.ch);
        break;
      case 'stats':
        s.stats = msg.stats;
        break;
      case 'metrics-res':
        this.metricsWaiters.get(msg.id)?.(msg.metrics);
        this.metricsWaiters.delete(msg.id);
        break;
    }
  }
}

/** Only what `ws` reads to complete a handshake crosses the IPC channel. */
const HANDSHAKE = ['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol', 'sec-websocket-extensions', 'origin', 'host'];

function handshakeHeaders(h: HandoffRequest['headers']): HandoffRequest['headers'] {
  const out: HandoffRequest['headers'] = {};
  for (const k of HANDSHAKE) if (h[k] !== undefined) out[k] = h[k];
  return out;
}
