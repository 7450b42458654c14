// The official odin-ws client: one WebSocket, subscriptions that survive reconnects, and
// continuity: every channel resumes from the last position it delivered, a seq jump is filled
// from the server's recovery window, and no message is delivered twice. No dependencies: the
// standard WebSocket (browsers, Node >= 22) or one passed in.
import { drainDelay, fullJitter, parseDrainReason } from './backoff.js';
import { ChannelBook } from './channel-book.js';
import { Continuity, type SubscribeResult } from './continuity.js';
import { Emitter } from './emitter.js';
import { isConcrete, parseFrame, type Reply } from './frames.js';
import { checkChannels, closeKind, isWsUrl, serverError, watchHandshake } from './wire.js';
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
  private readonly flow: Continuity;
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
    if (typeof opts?.url !== 'function' && !isWsUrl(opts?.url)) throw new OdinError('CLIENT_BAD_OPTION', 'url must be a ws:// or wss:// URL string, or a function returning one');
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
    this.flow = new Continuity(this.book, s, {
      stats: this.stats,
      emit: (type, ev) => this.emit(type, ev),
      isWanted: (ch) => this.isWanted(ch),
      refill: (ch, since, onAck, onFail) => this.refill(ch, since, onAck, onFail),
    });
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
      return this.halt(new OdinError(ClientCode.NO_WEBSOCKET, 'no WebSocket: this platform has none; pass options.WebSocket'));
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
    let url: unknown;
    try {
      url = typeof this.opts.url === 'function' ? this.opts.url() : this.opts.url;
      if (!isWsUrl(url)) throw new Error('not a ws:// or wss:// URL');
      ws = new this.Ctor(url, token ? [`bearer.${token}`, 'odin.v1'] : ['odin.v1']);
    } catch (err) {
      return this.halt(new OdinError('CLIENT_BAD_OPTION', `cannot open ${String(url)}: ${(err as Error)?.message}`));
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
      return this.halt(new OdinError('TOKEN_EXPIRED', 'the token expired and options.token is not a function that can give a fresh one'), code, reason);
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
    const since = this.flow.sinceFor(w.channels);
    let lost = false;
    let result: SubscribeResult;
    const onAck = (rec: Record<string, unknown>) => {
      for (const c of w.channels) if (this.wanted.has(c)) this.acked.add(c);
      result = this.flow.applyRecovery(rec, since);
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
    const since = this.flow.sinceFor(channels, true);
    this.request(this.subscribeBody(channels, since), () => {}, (rec) => void this.flow.applyRecovery(rec, since)).catch(
      (err: OdinError) => err.code !== ClientCode.DISCONNECTED && this.fail(err),
    );
  }

  private subscribeBody(channels: string[], since: Record<string, string>): Record<string, unknown> {
    const body: Record<string, unknown> = { op: 'subscribe', channels };
    if (Object.keys(since).length) body.since = since;
    if (this.opts.last && channels.some(isConcrete)) body.last = true;
    return body;
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
      if (item.kind === 'data') this.flow.data(item.msg);
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

  /** A gap-filling subscribe of one channel, under the pattern the application holds it by. */
  private refill(ch: string, since: Record<string, string>, onAck: (rec: Record<string, unknown>) => void, onFail: () => void): boolean {
    if (this.current !== 'open' || this.pending.size >= this.s.maxPending) return false;
    const pattern = this.wanted.has(ch) ? ch : `${ch.slice(0, ch.indexOf(':'))}:*`;
    this.request({ op: 'subscribe', channels: [pattern], since }, () => {}, onAck).catch((err: OdinError) => {
      if (err.code !== ClientCode.DISCONNECTED) onFail();
    });
    return true;
  }

  private isWanted(ch: string): boolean {
    if (this.wanted.has(ch)) return true;
    const i = ch.indexOf(':');
    return i > 0 && this.wanted.has(`${ch.slice(0, i)}:*`);
  }

  // ---- events ----

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

  /** Stops for good on a condition retrying cannot fix; every request still waiting fails with it. */
  private halt(err: OdinError, code?: number, reason?: string): void {
    this.stopped = true;
    this.teardown();
    this.failAll(err);
    this.fail(err);
    this.setState({ state: 'closed', ...(code !== undefined ? { code, reason } : {}) });
  }

  private failAll(err: OdinError): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      // Never confirmed: not subscribed (a later connect() must not send them).
      for (const c of w.fresh) this.wanted.delete(c);
      w.reject(err);
    }
  }
}
