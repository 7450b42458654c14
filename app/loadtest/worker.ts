// One generator process: opens its share of the clients at a bounded rate, speaks protocol v1,
// checks every message's seq per channel and records latency from `ts`. It reports only when
// the coordinator asks, and exits on `stop`, on losing its parent, or at its hard deadline.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { CloseCode } from '../common/errors.js';
import { channelsFor } from './channels.js';
import { raiseFdLimit } from './fd-limit.js';
import { encodeHistogram, newHistogram } from './histogram.js';
import type { FromWorker, ToWorker, WorkerDelta, WorkerInit } from './ipc.js';
import { liteConnect, type LiteConnection } from './lite-client.js';
import { scanEnvelope } from './envelope-scan.js';
import { checkSeq, emptySeqCounters, type SeqCounters, type SeqPosition } from './seq-tracker.js';

const TICK_MS = 10;

/** A 1013 close's reconnect hint (`{"reconnect_after_ms":N}`, odin-ws sheds clients on probation so) in seconds, or null. */
function reconnectAfterS(reason: Buffer): string | null {
  try {
    const ms = (JSON.parse(reason.toString()) as { reconnect_after_ms?: unknown }).reconnect_after_ms;
    return typeof ms === 'number' && ms >= 0 ? String(ms / 1000) : null;
  } catch {
    return null;
  }
}

interface Client {
  /** Ends the connection without a close handshake. */
  readonly kill: () => void;
  readonly channels: readonly string[];
  last: Map<string, SeqPosition> | null;
  settled: boolean; // handshake finished one way or the other
  /** performance.now() when the connect started (handshake time ends at settle). */
  readonly startedAt: number;
  open: boolean;
  subscribed: boolean;
}

const bump = (rec: Record<string, number>, key: string, by = 1) => {
  rec[key] = (rec[key] ?? 0) + by;
};

export function runWorker(): void {
  const send = process.send?.bind(process);
  if (!send) {
    process.stderr.write('loadtest: --role worker is started by the coordinator over IPC; run without --role\n');
    process.exit(2);
  }
  const fd = raiseFdLimit();
  let worker: Worker | null = null;
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: ToWorker) => {
    if (m.t === 'init' && !worker) worker = new Worker(m.init, (msg) => send(msg));
    else if (m.t === 'ramp') worker?.ramp(m.total, m.rate);
    else if (m.t === 'flush') worker?.report(m.id);
    else if (m.t === 'stop') {
      worker?.stop();
      send({ t: 'stopped' } satisfies FromWorker, () => process.exit(0));
    }
  });
  send({ t: 'ready', pid: process.pid, fd } satisfies FromWorker);
}

class Worker {
  private readonly clients = new Set<Client>();
  /** Lite handshakes in flight, swept for the handshake timeout on every tick. */
  private readonly pendingLite = new Set<LiteConnection>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly url: URL;
  private readonly hist = newHistogram();
  private readonly handshakes = newHistogram();
  private seq: SeqCounters = emptySeqCounters();
  private d: Omit<WorkerDelta, 'latency' | 'handshake' | 'cpuUserUs' | 'cpuSystemUs' | 'loopDelayP99Ms' | keyof SeqCounters> = Worker.zero();
  private cpu = process.cpuUsage();
  private attemptedTotal = 0;
  private targetTotal = 0;
  private rate = 1;
  private rampStartMs = 0;
  private rampBase = 0;
  private open = 0;
  private inFlight = 0;
  private unsubscribed = 0;
  private stopping = false;
  private readonly timer: NodeJS.Timeout;
  // A burst of frames delays this worker's reading of the next ones; that lag lands in the
  // measured latency, so it is reported to tell generator lag from server lag.
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });
  private readonly family: 4 | 6 | undefined;

  constructor(
    private readonly init: WorkerInit,
    private readonly send: (m: FromWorker) => void,
  ) {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    const ms = init.hardDeadlineMs - Date.now();
    setTimeout(() => process.exit(3), Math.max(0, ms)).unref();
    this.family = init.sourceIps.length ? (init.sourceIps[0].includes(':') ? 6 : 4) : undefined;
    this.url = new URL(init.url);
    this.loopDelay.enable();
  }

  private static zero() {
    return { attempted: 0, retries: 0, opened: 0, refused: 0, connectErrors: {}, closedByServer: {}, frames: 0, messages: 0, badFrames: 0, subscribeAcks: 0, subscribeErrors: {}, retryAfter: null as string | null };
  }

  ramp(total: number, rate: number): void {
    this.targetTotal = Math.min(total, this.init.maxSockets);
    this.rate = rate;
    this.rampStartMs = Date.now();
    this.rampBase = this.attemptedTotal;
  }

  private tick(): void {
    if (this.pendingLite.size) {
      const old = Date.now() - this.init.handshakeTimeoutMs;
      for (const p of this.pendingLite) if (p.startedAt < old) p.destroy();
    }
    if (this.stopping || this.attemptedTotal >= this.targetTotal) return;
    const due = this.rampBase + Math.floor((this.rate * (Date.now() - this.rampStartMs)) / 1000) - this.attemptedTotal;
    const n = Math.min(due, this.targetTotal - this.attemptedTotal, this.init.maxInFlight - this.inFlight, this.init.maxSockets - this.open - this.inFlight);
    for (let i = 0; i < n; i++) this.connect();
  }

  private connect(): void {
    const local = this.attemptedTotal++;
    this.d.attempted++;
    // Global index interleaves workers so source IPs and random channel picks spread evenly.
    this.dial(local * this.init.workers + this.init.index);
  }

  /** With --retry-refused, a refused (503) or shed (1013) client comes back after the server's hint, spread by jitter as real clients are. */
  private retryLater(index: number, retryAfter: string | null): void {
    if (!this.init.retryRefused || this.stopping) return;
    const s = Number(retryAfter);
    const baseMs = retryAfter !== null && Number.isFinite(s) && s >= 0 ? s * 1000 : 1000;
    const t = setTimeout(() => {
      this.retryTimers.delete(t);
      if (this.stopping) return;
      this.d.retries++;
      this.dial(index);
    }, baseMs * (1 + Math.random() * 0.5));
    this.retryTimers.add(t);
  }

  private dial(index: number): void {
    this.inFlight++;
    const ips = this.init.sourceIps;
    const localAddress = ips.length ? ips[index % ips.length] : undefined;
    if (this.init.client === 'lite') return this.connectLite(index, localAddress);
    const ws = new WebSocket(this.init.url, {
      perMessageDeflate: false,
      handshakeTimeout: this.init.handshakeTimeoutMs,
      skipUTF8Validation: true,
      ...(localAddress ? { localAddress, family: this.family } : {}),
    });
    const c: Client = { kill: () => ws.terminate(), channels: channelsFor(this.init.plan, index), last: null, settled: false, startedAt: performance.now(), open: false, subscribed: false };
    this.clients.add(c);
    ws.on('unexpected-response', (req, res) => {
      if (!this.settle(c)) return;
      if (res.statusCode === 503) {
        this.d.refused++;
        const ra = res.headers['retry-after'];
        if (ra !== undefined) this.d.retryAfter = String(ra);
        this.retryLater(index, ra === undefined ? null : String(ra));
      } else bump(this.d.connectErrors, `HTTP_${res.statusCode}`);
      res.resume();
      req.destroy();
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.settle(c)) return;
      bump(this.d.connectErrors, errorCode(err));
    });
    ws.on('open', () => {
      if (!this.settle(c)) return;
      c.open = true;
      this.open++;
      this.d.opened++;
      if (c.channels.length) {
        this.unsubscribed++;
        ws.send(JSON.stringify({ op: 'subscribe', channels: c.channels, id: 1 }));
      }
    });
    ws.on('message', (data: Buffer) => this.onFrame(c, data));
    ws.on('close', (code: number, reason: Buffer) => {
      this.clients.delete(c);
      if (!c.open) return;
      c.open = false;
      this.open--;
      if (!c.subscribed && c.channels.length) this.unsubscribed--;
      if (this.stopping) return;
      bump(this.d.closedByServer, String(code));
      if (code === CloseCode.TRY_AGAIN_LATER) this.retryLater(index, reconnectAfterS(reason));
    });
  }

  /** Idle clients (--channels none) on the handshake-only client: no subscription, no data. */
  private connectLite(index: number, localAddress: string | undefined): void {
    const c: Client = { kill: () => conn.destroy(), channels: [], last: null, settled: false, startedAt: performance.now(), open: false, subscribed: false };
    const conn = liteConnect(this.url, localAddress, this.family, {
      open: () => {
        this.pendingLite.delete(conn);
        if (!this.settle(c)) return;
        c.open = true;
        this.open++;
        this.d.opened++;
      },
      rejected: (status, retryAfter) => {
        this.pendingLite.delete(conn);
        if (!this.settle(c)) return;
        if (status === 503) {
          this.d.refused++;
          if (retryAfter !== null) this.d.retryAfter = retryAfter;
          this.retryLater(index, retryAfter);
        } else bump(this.d.connectErrors, `HTTP_${status}`);
      },
      error: (code) => {
        this.pendingLite.delete(conn);
        this.clients.delete(c);
        if (this.settle(c)) bump(this.d.connectErrors, code === 'CLOSED_BEFORE_OPEN' && Date.now() - conn.startedAt >= this.init.handshakeTimeoutMs ? 'HANDSHAKE_TIMEOUT' : code);
      },
      closed: (code) => {
        this.clients.delete(c);
        if (!c.open) return;
        c.open = false;
        this.open--;
        if (this.stopping) return;
        bump(this.d.closedByServer, String(code));
        if (code === CloseCode.TRY_AGAIN_LATER) this.retryLater(index, null);
      },
    });
    this.pendingLite.add(conn);
    this.clients.add(c);
  }

  /** First outcome of a handshake wins; later events for it are ignored. */
  private settle(c: Client): boolean {
    if (c.settled) return false;
    c.settled = true;
    this.inFlight--;
    this.handshakes.recordValue(Math.max(1, Math.round(performance.now() - c.startedAt)));
    return true;
  }

  private onFrame(c: Client, data: Buffer): void {
    this.d.frames++;
    const one = scanEnvelope(data);
    if (one) return this.onData(c, one.channel, one.seq, one.ts, one.epoch, Date.now());
    let v: unknown;
    try {
      v = JSON.parse(data.toString('utf8'));
    } catch {
      this.d.badFrames++;
      return;
    }
    const now = Date.now();
    if (Array.isArray(v)) {
      for (const m of v) this.onMessage(c, m, now);
    } else if (v && typeof v === 'object' && 'op' in v) this.onControl(c, v as { op: unknown; code?: unknown });
    else this.onMessage(c, v, now);
  }

  private onMessage(c: Client, m: unknown, now: number): void {
    const msg = m as { channel?: unknown; epoch?: unknown; seq?: unknown; ts?: unknown } | null;
    if (!msg || typeof msg.channel !== 'string' || !Number.isSafeInteger(msg.seq) || typeof msg.ts !== 'number' || (msg.epoch !== undefined && typeof msg.epoch !== 'string')) {
      this.d.badFrames++;
      return;
    }
    this.onData(c, msg.channel, msg.seq as number, msg.ts, (msg.epoch as string | undefined) ?? null, now);
  }

  private onData(c: Client, channel: string, seq: number, ts: number, epoch: string | null, now: number): void {
    this.d.messages++;
    this.hist.recordValue(Math.max(0, now - ts));
    checkSeq((c.last ??= new Map()), channel, seq, this.seq, epoch);
  }

  private onControl(c: Client, m: { op: unknown; code?: unknown }): void {
    if (m.op === 'subscribed' && !c.subscribed) {
      c.subscribed = true;
      this.unsubscribed--;
      this.d.subscribeAcks++;
    } else if (m.op === 'error') bump(this.d.subscribeErrors, typeof m.code === 'string' ? m.code : 'UNKNOWN');
  }

  report(id: number): void {
    const cpu = process.cpuUsage(this.cpu);
    this.cpu = process.cpuUsage();
    // The histogram is in ns and includes the 10 ms sampling resolution itself.
    const lag = this.loopDelay.count ? Math.max(0, this.loopDelay.percentile(99) / 1e6 - 10) : 0;
    this.loopDelay.reset();
    const d: WorkerDelta = { ...this.d, ...this.seq, latency: encodeHistogram(this.hist), handshake: encodeHistogram(this.handshakes), cpuUserUs: cpu.user, cpuSystemUs: cpu.system, loopDelayP99Ms: Math.round(lag * 10) / 10 };
    this.hist.reset();
    this.handshakes.reset();
    this.d = Worker.zero();
    this.seq = emptySeqCounters();
    this.send({
      t: 'stats',
      id,
      at: Date.now(),
      d,
      g: {
        open: this.open,
        inFlight: this.inFlight,
        attemptedTotal: this.attemptedTotal,
        targetTotal: this.targetTotal,
        unsubscribed: this.unsubscribed,
        rssMb: Math.round(process.memoryUsage.rss() / 1048576),
      },
    });
  }

  stop(): void {
    this.stopping = true;
    clearInterval(this.timer);
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    for (const c of this.clients) c.kill();
    this.clients.clear();
  }
}

function errorCode(err: NodeJS.ErrnoException): string {
  if (err.code) return err.code;
  if (/handshake has timed out/i.test(err.message)) return 'HANDSHAKE_TIMEOUT';
  if (/closed before the connection was established/i.test(err.message)) return 'CLOSED_BEFORE_OPEN';
  return 'UNKNOWN';
}
