// The official odin-ws client: one WebSocket, subscriptions that survive reconnects, and
// continuity: every channel resumes from the last position it delivered, a seq jump is filled
// from the server's recovery window, and no message is delivered twice. No dependencies: the
// standard WebSocket (browsers, Node >= 22) or one passed in.
import { drainDelay, fullJitter, parseDrainReason, parseRetryAfter } from './backoff.js';
import { ChannelBook, type ChannelState } from './channel-book.js';
import { Emitter } from './emitter.js';
import { covers, isConcrete, parseFrame, recoveryOf, type DataMessage, type RecoveryEntry, type Reply } from './frames.js';
import { notAfter, parsePos } from './positions.js';
import {
  ClientCode,
  OdinError,
  type ClientStats,
  type CloseEvent,
  type ConnectionState,
  type OdinClientOptions,
  type OdinEvents,
  type WebSocketConstructor,
  type WebSocketLike,
} from './types.js';

const DEFAULTS = {
  pingIntervalMs: 15_000,
  pongTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  ackTimeoutMs: 10_000,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  stableAfterMs: 10_000,
  maxPending: 256,
  maxTrackedChannels: 10_000,
  maxSince: 100,
  maxHeld: 1_000,
};

/** The close code the client uses for a connection it found dead (no frame after a ping). */
export const DEAD_CONNECTION = 4000;

export interface SubscribeResult {
  readonly channels: readonly string[];
  /** The server's per-channel recovery answer, when positions or `last` were sent. */
  readonly recovery?: Readonly<Record<string, RecoveryEntry>>;
}

interface Pending {
  /** Runs in the frame handler itself: a recovery's answer must be applied before the next frame. */
  onAck?(rec: Record<string, unknown>): void;
  resolve(rec: Record<string, unknown>): void;
  reject(err: OdinError): void;
  /** The connection went before the reply; default: reject. */
  lost?(): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter {
  channels: string[];
  fresh: string[];
  resolve(r: SubscribeResult): void;
  reject(err: OdinError): void;
}

type Settings = typeof DEFAULTS & { random: () => number };

export class OdinClient {
  readonly stats: ClientStats = { connects: 0, reconnects: 0, messages: 0, replayed: 0, duplicates: 0, gaps: 0, recoveries: 0, invalid: 0, heldDropped: 0, evicted: 0 };
  private readonly s: Settings;
  private readonly events = new Emitter<OdinEvents>();
  private readonly Ctor: WebSocketConstructor | undefined;
  private readonly book: ChannelBook;
  /** What the application asked for. */
  private readonly wanted = new Set<string>();
  /** Of those, what a server confirmed at least once: resubscribed on every connect. */
  private readonly acked = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  /** Subscribes made while offline, sent on the next open. */
  private waiting: Waiter[] = [];
  private ws: WebSocketLike | null = null;
  private gen = 0;
  private current: ConnectionState = 'closed';
  private stopped = true;
  private idleClosed = false;
  private attempt = 0;
  private nextId = 1;
  private retryAfterMs: number | null = null;
  private timers: { connect?: ReturnType<typeof setTimeout>; retry?: ReturnType<typeof setTimeout>; ping?: ReturnType<typeof setInterval>; pong?: ReturnType<typeof setTimeout>; stable?: ReturnType<typeof setTimeout> } = {};

  constructor(private readonly opts: OdinClientOptions & { since?: Record<string, string> }) {
    if (typeof opts?.url !== 'string' || !/^wss?:\/\//i.test(opts.url)) throw new OdinError('CLIENT_BAD_OPTION', 'url must be a ws:// or wss:// URL string');
    const s = { ...DEFAULTS, random: opts.random ?? Math.random } as Settings;
    for (const k of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
      const v = opts[k];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new OdinError('CLIENT_BAD_OPTION', `${k} must be a non-negative number`);
      s[k] = v;
    }
    this.s = s;
    this.Ctor = opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.book = new ChannelBook(Math.max(1, s.maxTrackedChannels), () => this.stats.evicted++);
    for (const [ch, pos] of Object.entries(opts.since ?? {})) this.book.seed(ch, pos);
  }

  on<K extends keyof OdinEvents>(type: K, fn: (ev: OdinEvents[K]) => void): () => void {
    return this.events.on(type, fn);
  }

  off<K extends keyof OdinEvents>(type: K, fn: (ev: OdinEvents[K]) => void): void {
    this.events.off(type, fn);
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** The channels (patterns) subscribed. */
  get channels(): string[] {
    return [...this.wanted];
  }

  /** The last position delivered per concrete channel (save it to resume after a reload). */
  positions(): Record<string, string> {
    return Object.fromEntries(this.book.withPositions());
  }

  /** Starts connecting (and reconnecting until close()). Idempotent. */
  connect(): this {
    if (!this.stopped) return this;
    this.stopped = false;
    this.idleClosed = false;
    void this.open();
    return this;
  }

  /** Closes for good: no reconnect; pending requests fail with CLIENT_CLOSED. Idempotent. */
  close(): void {
    if (this.stopped && this.current === 'closed') return;
    this.stopped = true;
    const ws = this.ws;
    this.teardown();
    try {
      ws?.close(1000, 'client closed');
    } catch {
      /* already closing */
    }
    this.failAll(new OdinError(ClientCode.CLOSED, 'the client was closed'));
    this.setState({ state: 'closed', code: 1000 });
  }

  subscribe(channels: readonly string[]): Promise<SubscribeResult> {
    const bad = checkChannels(channels);
    if (bad) return Promise.reject(bad);
    const list = [...new Set(channels)];
    const fresh = list.filter((c) => !this.wanted.has(c));
    if (this.waiting.length + this.pending.size >= this.s.maxPending) {
      return Promise.reject(new OdinError(ClientCode.TOO_MANY_PENDING, `more than maxPending (${this.s.maxPending}) requests await a reply`));
    }
    for (const c of list) this.wanted.add(c);
    return new Promise((resolve, reject) => {
      const w: Waiter = { channels: list, fresh, resolve, reject };
      if (this.current === 'open') return this.sendSubscribe(w);
      this.waiting.push(w);
      if (this.idleClosed && !this.stopped) {
        this.idleClosed = false;
        void this.open();
      }
    });
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    const bad = checkChannels(channels);
    if (bad) throw bad;
    for (const c of channels) {
      this.wanted.delete(c);
      this.acked.delete(c);
    }
    this.book.forget((ch) => this.isWanted(ch));
    if (this.current !== 'open') return;
    await this.request({ op: 'unsubscribe', channels: [...new Set(channels)] }, () => undefined).catch((err: OdinError) => {
      // Gone with the connection: the next one does not subscribe it, which is what was asked.
      if (err.code !== ClientCode.DISCONNECTED) throw err;
    });
  }

  /** Round trip of an application ping, in ms. */
  async ping(): Promise<number> {
    const t0 = Date.now();
    await this.request({ op: 'ping' });
    return Date.now() - t0;
  }

  // ---- connection ----

  private async open(): Promise<void> {
    if (this.stopped) return;
    const gen = ++this.gen;
    this.setState({ state: 'connecting', attempt: this.attempt });
    if (!this.Ctor) {
      this.fail(new OdinError(ClientCode.NO_WEBSOCKET, 'no WebSocket: this platform has none; pass options.WebSocket'));
      this.stopped = true;
      this.setState({ state: 'closed' });
      return;
    }
    let token: string | undefined;
    try {
      const t = this.opts.token;
      token = typeof t === 'function' ? await t() : t;
      if (token !== undefined && (typeof token !== 'string' || !/^[A-Za-z0-9_.~+/=-]+$/.test(token))) throw new Error('the token must be a JWT string');
    } catch (err) {
      if (gen !== this.gen) return;
      this.fail(new OdinError(ClientCode.TOKEN, `token: ${(err as Error)?.message ?? String(err)}`));
      return this.lost(gen, 1006, 'token unavailable');
    }
    if (gen !== this.gen || this.stopped) return;
    let ws: WebSocketLike;
    try {
      ws = new this.Ctor(this.opts.url, token ? [`bearer.${token}`, 'odin.v1'] : ['odin.v1']);
    } catch (err) {
      this.fail(new OdinError('CLIENT_BAD_OPTION', `cannot open ${this.opts.url}: ${(err as Error)?.message}`));
      this.stopped = true;
      this.setState({ state: 'closed' });
      return;
    }
    this.ws = ws;
    this.retryAfterMs = null;
    watchHandshake(ws, (ms) => (this.retryAfterMs = ms));
    this.timers.connect = setTimeout(() => {
      if (gen !== this.gen) return;
      try {
        ws.close();
      } catch {
        /* not open yet */
      }
      this.lost(gen, 1006, 'connect timeout');
    }, this.s.connectTimeoutMs);
    ws.onopen = () => gen === this.gen && this.opened();
    ws.onmessage = (ev) => gen === this.gen && this.frame(ev.data);
    ws.onclose = (ev) => this.lost(gen, ev.code, ev.reason);
    ws.onerror = () => {}; // a close follows; the browser tells nothing more
  }

  private opened(): void {
    clearTimeout(this.timers.connect);
    this.stats.connects++;
    if (this.stats.connects > 1) this.stats.reconnects++;
    this.book.newConnection();
    this.setState({ state: 'open' });
    this.timers.stable = setTimeout(() => (this.attempt = 0), this.s.stableAfterMs);
    if (this.s.pingIntervalMs > 0) this.timers.ping = setInterval(() => this.heartbeat(), this.s.pingIntervalMs);
    const resub = [...this.acked].filter((c) => this.wanted.has(c));
    if (resub.length) this.resubscribe(resub);
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) this.sendSubscribe(w);
  }

  private heartbeat(): void {
    if (this.current !== 'open') return;
    this.request({ op: 'ping' }).catch(() => {});
    if (this.timers.pong) return;
    const gen = this.gen;
    this.timers.pong = setTimeout(() => {
      if (gen !== this.gen) return;
      const ws = this.ws;
      try {
        ws?.close(DEAD_CONNECTION, 'no frame after ping');
      } catch {
        /* already closing */
      }
      // A dead TCP connection may take minutes to report its close: do not wait for it.
      this.lost(gen, DEAD_CONNECTION, 'no frame after ping');
    }, this.s.pongTimeoutMs);
  }

  /** The connection `gen` ended (idempotent per connection): decide whether and when to retry. */
  private lost(gen: number, code: number, reason: string): void {
    if (gen !== this.gen) return;
    this.gen++;
    this.teardown();
    for (const [id, p] of [...this.pending]) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (p.lost) p.lost();
      else p.reject(new OdinError(ClientCode.DISCONNECTED, 'the connection closed before the reply'));
    }
    const kind = closeKind(code);
    if (kind !== 'other') this.emit('close', { code, reason, kind } satisfies CloseEvent);
    if (this.stopped) return this.setState({ state: 'closed', code, reason });
    if (code === 4001 && typeof this.opts.token !== 'function') {
      this.fail(new OdinError('TOKEN_EXPIRED', 'the token expired and options.token is not a function that can give a fresh one'));
      this.stopped = true;
      return this.setState({ state: 'closed', code, reason });
    }
    if (code === 4009 && this.wanted.size === 0 && this.waiting.length === 0) {
      // Idle with nothing to hold: stay down until the next subscribe.
      this.idleClosed = true;
      return this.setState({ state: 'closed', code, reason });
    }
    const delayMs = this.nextDelay(code, reason);
    this.setState({ state: 'reconnecting', code, reason, delayMs, attempt: this.attempt });
    this.timers.retry = setTimeout(() => void this.open(), delayMs);
  }

  private nextDelay(code: number, reason: string): number {
    const drain = code === 1001 ? parseDrainReason(reason) : null;
    if (drain !== null) return drainDelay(drain, this.s.random);
    if (code === 1013) this.attempt = Math.max(this.attempt, 1);
    const policy = { baseMs: this.s.backoffBaseMs, maxMs: this.s.backoffMaxMs };
    const jitter = fullJitter(this.attempt, policy, this.s.random);
    this.attempt = Math.min(this.attempt + 1, 52);
    return this.retryAfterMs !== null ? this.retryAfterMs + jitter : jitter;
  }

  private teardown(): void {
    for (const t of Object.values(this.timers)) {
      clearTimeout(t);
      clearInterval(t);
    }
    this.timers = {};
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = null;
  }

  // ---- requests ----

  private request(body: Record<string, unknown>, lost?: () => void, onAck?: (rec: Record<string, unknown>) => void): Promise<Record<string, unknown>> {
    const ws = this.ws;
    if (!ws || this.current !== 'open') return Promise.reject(new OdinError(ClientCode.DISCONNECTED, 'not connected'));
    if (this.pending.size >= this.s.maxPending) return Promise.reject(new OdinError(ClientCode.TOO_MANY_PENDING, `more than maxPending (${this.s.maxPending}) requests await a reply`));
    const id = this.nextId;
    this.nextId = this.nextId >= 2 ** 31 ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new OdinError(ClientCode.TIMEOUT, `no reply to ${String(body.op)} within ${this.s.ackTimeoutMs} ms`));
      }, this.s.ackTimeoutMs);
      this.pending.set(id, { resolve, reject, lost, onAck, timer });
      try {
        ws.send(JSON.stringify({ ...body, id }));
      } catch {
        /* closing: the close handler settles it */
      }
    });
  }

  private sendSubscribe(w: Waiter): void {
    const since = this.sinceFor(w.channels);
    let lost = false;
    let result: SubscribeResult;
    const onAck = (rec: Record<string, unknown>) => {
      for (const c of w.channels) if (this.wanted.has(c)) this.acked.add(c);
      result = this.applyRecovery(rec, since);
    };
    const onLost = () => {
      // Still wanted: the next connection sends it again.
      lost = true;
      if (this.waiting.length < this.s.maxPending) this.waiting.push(w);
      else w.reject(new OdinError(ClientCode.DISCONNECTED, 'the connection closed before the reply'));
    };
    this.request(this.subscribeBody(w.channels, since), onLost, onAck).then(
      () => w.resolve(result),
      (err: OdinError) => {
        if (lost) return;
        for (const c of w.fresh) this.wanted.delete(c);
        w.reject(err);
      },
    );
  }

  private resubscribe(channels: string[]): void {
    const since = this.sinceFor(channels, true);
    this.request(this.subscribeBody(channels, since), () => {}, (rec) => void this.applyRecovery(rec, since)).catch(
      (err: OdinError) => err.code !== ClientCode.DISCONNECTED && this.fail(err),
    );
  }

  private subscribeBody(channels: string[], since: Record<string, string>): Record<string, unknown> {
    const body: Record<string, unknown> = { op: 'subscribe', channels };
    if (Object.keys(since).length) body.since = since;
    if (this.opts.last && channels.some(isConcrete)) body.last = true;
    return body;
  }

  /** Positions of the tracked channels these patterns cover, most recent first, up to maxSince. */
  private sinceFor(channels: string[], reportUntracked = false): Record<string, string> {
    const since: Record<string, string> = {};
    let n = 0;
    for (const [ch, pos] of this.book.withPositions()) {
      if (!channels.some((p) => covers(p, ch))) continue;
      if (n < this.s.maxSince) {
        since[ch] = pos;
        n++;
      } else if (reportUntracked) {
        this.gap({ channel: ch, reason: 'untracked', from: pos, to: undefined, missed: undefined });
      }
    }
    return since;
  }

  private applyRecovery(rec: Record<string, unknown>, since: Record<string, string>): SubscribeResult {
    const channels = Array.isArray(rec.channels) ? rec.channels.filter((c): c is string => typeof c === 'string') : [];
    const recovery = recoveryOf(rec);
    for (const ch of Object.keys(since)) {
      const st = this.book.get(ch);
      if (!st) continue;
      const entry = recovery?.get(ch);
      if (!entry) this.unrecoverable(ch, st, 'unsupported');
      else this.onRecovery(ch, st, entry);
    }
    for (const [ch, entry] of recovery ?? []) {
      if (ch in since || !('last' in entry) || !entry.last) continue;
      const st = this.book.touch(ch);
      st.replayLeft = entry.last;
      st.lastValue = true;
    }
    return { channels, ...(recovery ? { recovery: Object.fromEntries(recovery) } : {}) };
  }

  private onRecovery(ch: string, st: ChannelState, entry: RecoveryEntry): void {
    if ('unrecoverable' in entry) return this.unrecoverable(ch, st, entry.unrecoverable);
    const n = 'replayed' in entry ? entry.replayed : entry.last;
    st.recovering = false;
    st.lastValue = !('replayed' in entry);
    st.replayLeft = st.replayTotal = n;
    if (n === 0) this.replayDone(ch, st);
  }

  private unrecoverable(ch: string, st: ChannelState, reason: string): void {
    st.recovering = false;
    st.epoch = st.seq = undefined;
    this.gap({ channel: ch, reason, from: st.pos, to: st.held[0]?.pos, missed: undefined });
    this.flushHeld(ch, st);
  }

  private replayDone(ch: string, st: ChannelState): void {
    if (!st.lastValue) {
      this.stats.recoveries++;
      this.emit('recovered', { channel: ch, replayed: st.replayTotal });
    }
    st.replayTotal = 0;
    st.lastValue = false;
    // The live numbering starts again from the next live message (replayed seqs may be another
    // server's).
    st.epoch = st.seq = undefined;
    this.flushHeld(ch, st);
  }

  private flushHeld(ch: string, st: ChannelState): void {
    const held = st.held;
    st.held = [];
    for (const m of held) this.data(m);
  }

  // ---- frames ----

  private frame(data: unknown): void {
    if (this.timers.pong) {
      clearTimeout(this.timers.pong);
      this.timers.pong = undefined;
    }
    if (typeof data !== 'string') {
      this.stats.invalid++;
      return;
    }
    for (const item of parseFrame(data)) {
      if (item.kind === 'data') this.data(item.msg);
      else if (item.kind === 'reply') this.reply(item.reply);
      else this.stats.invalid++;
    }
  }

  private reply(r: Reply): void {
    const p = typeof r.id === 'number' ? this.pending.get(r.id) : undefined;
    if (!p) {
      if (r.op === 'error') this.fail(serverError(r));
      return;
    }
    this.pending.delete(r.id as number);
    clearTimeout(p.timer);
    if (r.op === 'error') return p.reject(serverError(r));
    p.onAck?.(r.rec);
    p.resolve(r.rec);
  }

  private data(m: DataMessage): void {
    if (!this.isWanted(m.channel)) return; // in flight when it was unsubscribed
    const st = this.book.touch(m.channel);
    if (st.recovering) {
      if (st.held.length >= this.s.maxHeld) {
        st.held.shift();
        this.stats.heldDropped++;
      }
      st.held.push(m);
      return;
    }
    const replayed = st.replayLeft > 0;
    const at = parsePos(m.pos);
    if (at && notAfter(at, st.at)) {
      this.stats.duplicates++;
      if (replayed && --st.replayLeft === 0) this.replayDone(m.channel, st);
      return;
    }
    if (!replayed && m.epoch !== undefined && m.epoch === st.epoch && m.seq !== undefined && st.seq !== undefined && m.seq > st.seq + 1) {
      if (this.fillGap(m, st)) return;
      this.gap({ channel: m.channel, reason: 'seq', from: st.pos, to: m.pos, missed: m.seq - st.seq - 1 });
    }
    if (at) {
      st.pos = m.pos;
      st.at = at;
    }
    if (!replayed) {
      st.epoch = m.epoch;
      st.seq = m.seq;
    }
    this.stats.messages++;
    if (replayed) this.stats.replayed++;
    this.emit('message', { channel: m.channel, pos: m.pos, seq: m.seq, epoch: m.epoch, ts: m.ts, data: m.data, replayed });
    if (replayed && --st.replayLeft === 0) this.replayDone(m.channel, st);
  }

  /** A seq jump on a channel with a position: ask the server for what is missing. */
  private fillGap(m: DataMessage, st: ChannelState): boolean {
    if (st.pos === undefined || m.pos === undefined || this.pending.size >= this.s.maxPending) return false;
    const pattern = this.wanted.has(m.channel) ? m.channel : `${m.channel.slice(0, m.channel.indexOf(':'))}:*`;
    const since = { [m.channel]: st.pos };
    st.recovering = true;
    st.held = [m];
    this.request({ op: 'subscribe', channels: [pattern], since }, () => {}, (rec) => void this.applyRecovery(rec, since)).catch(
      (err: OdinError) => {
        if (err.code === ClientCode.DISCONNECTED || !st.recovering) return;
        this.unrecoverable(m.channel, st, 'seq');
      },
    );
    return true;
  }

  private isWanted(ch: string): boolean {
    if (this.wanted.has(ch)) return true;
    const i = ch.indexOf(':');
    return i > 0 && this.wanted.has(`${ch.slice(0, i)}:*`);
  }

  // ---- events ----

  private gap(ev: OdinEvents['gap']): void {
    this.stats.gaps++;
    this.emit('gap', ev);
  }

  private fail(err: OdinError): void {
    this.events.emit('error', err);
  }

  private setState(ev: OdinEvents['state']): void {
    this.current = ev.state;
    this.emit('state', ev);
  }

  private emit<K extends keyof OdinEvents>(type: K, ev: OdinEvents[K]): void {
    const err = this.events.emit(type, ev);
    if (err !== undefined) this.fail(new OdinError('CLIENT_LISTENER', `a ${String(type)} listener threw: ${(err as Error)?.message ?? String(err)}`));
  }

  private failAll(err: OdinError): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const w of this.waiting) w.reject(err);
    this.waiting = [];
  }
}

function checkChannels(channels: unknown): OdinError | null {
  if (!Array.isArray(channels) || channels.length === 0 || !channels.every((c) => typeof c === 'string' && c.length > 0 && c.length <= 200)) {
    return new OdinError('CLIENT_BAD_ARGUMENT', 'channels must be a non-empty array of "<stream>:<token>" or "<stream>:*" strings');
  }
  return null;
}

function serverError(r: Reply): OdinError {
  const code = typeof r.rec.code === 'string' ? r.rec.code : ClientCode.BAD_FRAME;
  const message = typeof r.rec.message === 'string' ? r.rec.message : 'server error';
  const detail = Array.isArray(r.rec.channels) ? { channels: r.rec.channels } : undefined;
  return new OdinError(code, message, detail);
}

function closeKind(code: number): CloseEvent['kind'] {
  switch (code) {
    case 1001:
      return 'going_away';
    case 1008:
      return 'policy';
    case 1013:
      return 'try_again_later';
    case 4001:
      return 'token_expired';
    case 4008:
      return 'slow_consumer';
    case 4009:
      return 'idle';
    default:
      return 'other';
  }
}

/**
 * The HTTP status of a refused handshake is invisible to the standard WebSocket API (browsers,
 * Node's global). The `ws` package shows it as 'unexpected-response': read Retry-After there.
 */
function watchHandshake(ws: WebSocketLike, onRetryAfter: (ms: number) => void): void {
  const node = ws as unknown as { once?: (ev: string, fn: (req: unknown, res: { statusCode?: number; headers?: Record<string, unknown> }) => void) => void; terminate?: () => void };
  if (typeof node.once !== 'function' || typeof node.terminate !== 'function') return;
  node.once('unexpected-response', (_req, res) => {
    const ms = res?.statusCode === 503 || res?.statusCode === 429 ? parseRetryAfter(res.headers?.['retry-after']) : null;
    if (ms !== null) onRetryAfter(ms);
    node.terminate!();
  });
}
