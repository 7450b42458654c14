// One client connection in a shard: protocol v1 requests, subscriptions, rate limit, and the
// slow-consumer policy on the write path.
import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { parseChannel } from '../common/channel.js';
import { CloseCode, ErrorCode, ErrorMessage } from '../common/errors.js';
import type { ChannelClaims } from '../common/ipc.js';
import type { Hub, Subscriber } from './hub.js';
import type { Authenticator } from '../auth/auth.js';
import type { ExpirySweep, Expiring } from '../auth/expiry-sweep.js';
import { refreshToken } from '../protocol/refresh.js';

export interface ClientContext {
  readonly hub: Hub;
  readonly streams: ReadonlySet<string>;
  readonly maxChannels: number;
  readonly opsPerSec: number;
  readonly bufferLimit: number;
  /** Resolves once the front knows this shard wants the channel (first local subscriber). */
  gate(channel: string): Promise<void> | null;
  onSlow(): void;
  onError(code: ErrorCode): void;
  /** Checks `refresh` tokens; null when auth is off. */
  readonly auth: Pick<Authenticator, 'verifyToken' | 'clockToleranceS'> | null;
  /** Closes clients whose token expired (one shared sweep per shard). */
  readonly expiry: Pick<ExpirySweep, 'add' | 'delete'>;
}

type Id = number | string | undefined;
const SLOW_GRACE_MS = 1000;
const POLICY_GRACE_MS = 1000;
const MAX_RATE_DEBT = 100; // consecutive limited ops before the client is closed (policy)

export class Client implements Subscriber, Expiring {
  hubEpoch = 0;
  hubLast = -1;
  hubDue: number[] = [];
  private readonly subs = new Set<string>();
  private closed = false;
  private closing = false;
  private tokens: number;
  private refilledAt = Date.now();
  private debt = 0;
  private replies: Promise<void> = Promise.resolve();
  expiresAtMs = Infinity;

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly ctx: ClientContext,
    private claims: ChannelClaims | undefined,
  ) {
    this.tokens = ctx.opsPerSec * 2;
    this.watchExpiry(claims?.exp);
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
  }

  deliver(frame: Buffer): boolean {
    if (this.closed) return false;
    // Checked before writing, so a slow client never holds more than the cap (or one frame when
    // its buffer is empty): the frame that would pass it is not queued at all.
    const queued = this.socket.writableLength;
    if (queued > 0 && queued + frame.length > this.ctx.bufferLimit) {
      this.dropSlow();
      return false;
    }
    this.socket.write(frame);
    return true;
  }

  /** Leaves every channel; called once the socket is gone or the client is dropped. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.expiry.delete(this);
    for (const ch of this.subs) this.ctx.hub.unsubscribe(this, ch);
    this.subs.clear();
  }

  close(code: number, reason: string): void {
    this.dispose();
    this.ws.close(code, reason);
  }

  private dropSlow(): void {
    this.ctx.onSlow();
    this.close(CloseCode.SLOW_CONSUMER, 'slow consumer');
    // The close frame queues behind the backlog (at most the cap). A client that is still reading
    // gets it and learns why; one that made no progress for a grace period is cut off, which
    // frees its buffers. ws's own close timeout bounds the slow readers.
    let left = this.socket.writableLength;
    const reaper = setInterval(() => {
      const now = this.socket.writableLength;
      if (now >= left) this.ws.terminate();
      left = now;
    }, SLOW_GRACE_MS);
    reaper.unref();
    this.socket.once('close', () => clearInterval(reaper));
  }

  /** Rate-limit abuse: stop reading requests now, answer what was accepted, then close 1008. */
  private closeForPolicy(): void {
    this.closing = true;
    this.replies = this.replies
      .then(() => {
        this.close(CloseCode.POLICY, 'request rate limit exceeded');
        // An abuser need not answer the close handshake; don't keep parsing its flood for ws's
        // 30 s close timeout.
        setTimeout(() => this.ws.terminate(), POLICY_GRACE_MS).unref();
      })
      .catch(() => {});
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed || this.closing) return;
    if (!this.takeToken()) return;
    if (isBinary) return this.error(ErrorCode.BINARY_UNSUPPORTED, undefined);
    let req: unknown;
    try {
      req = JSON.parse(data.toString());
    } catch {
      return this.error(ErrorCode.BAD_JSON, undefined);
    }
    if (!req || typeof req !== 'object' || Array.isArray(req)) return this.error(ErrorCode.BAD_REQUEST, undefined);
    const { op, id, channels } = req as Record<string, unknown>;
    if (id !== undefined && !(typeof id === 'number' && Number.isFinite(id)) && !(typeof id === 'string' && id.length <= 64)) {
      return this.error(ErrorCode.BAD_REQUEST, undefined);
    }
    const rid = id as Id;
    if (typeof op !== 'string') return this.error(ErrorCode.BAD_REQUEST, rid);
    switch (op) {
      case 'ping':
        return this.reply({ op: 'pong', id: rid });
      case 'subscribe':
        return this.subscribe(channels, rid);
      case 'unsubscribe':
        return this.unsubscribe(channels, rid);
      case 'refresh':
        return this.refresh((req as Record<string, unknown>).token, rid);
      default:
        return this.error(ErrorCode.UNKNOWN_OP, rid);
    }
  }

  private validChannels(channels: unknown, id: Id): string[] | null {
    if (!Array.isArray(channels) || channels.length === 0 || channels.length > this.ctx.maxChannels) {
      this.error(channels && Array.isArray(channels) && channels.length > this.ctx.maxChannels ? ErrorCode.TOO_MANY_CHANNELS : ErrorCode.BAD_CHANNEL, id);
      return null;
    }
    const bad = channels.filter((c) => !parseChannel(c, this.ctx.streams));
    if (bad.length) {
      this.error(ErrorCode.BAD_CHANNEL, id, { channels: bad.slice(0, 10).map((c) => String(c).slice(0, 100)) });
      return null;
    }
    return [...new Set(channels as string[])];
  }

  private subscribe(channels: unknown, id: Id): void {
    const list = this.validChannels(channels, id);
    if (!list) return;
    const forbidden = list.filter((c) => !this.allowed(c));
    if (forbidden.length) return this.error(ErrorCode.FORBIDDEN_CHANNEL, id, { channels: forbidden.slice(0, 10) });
    const fresh = list.filter((c) => !this.subs.has(c));
    if (this.subs.size + fresh.length > this.ctx.maxChannels) {
      return this.error(ErrorCode.TOO_MANY_CHANNELS, id, { limit: this.ctx.maxChannels });
    }
    const gates: Promise<void>[] = [];
    for (const ch of fresh) {
      this.subs.add(ch);
      this.ctx.hub.subscribe(this, ch);
      const g = this.ctx.gate(ch);
      if (g) gates.push(g);
    }
    this.reply({ op: 'subscribed', channels: list, id }, gates);
  }

  private unsubscribe(channels: unknown, id: Id): void {
    const list = this.validChannels(channels, id);
    if (!list) return;
    for (const ch of list) {
      if (this.subs.delete(ch)) this.ctx.hub.unsubscribe(this, ch);
    }
    this.reply({ op: 'unsubscribed', channels: list, id });
  }

  /** Closes the client once `exp` (seconds) + the clock tolerance has passed; none = never. */
  private watchExpiry(exp: number | undefined): void {
    if (exp === undefined) {
      this.expiresAtMs = Infinity;
      this.ctx.expiry.delete(this);
      return;
    }
    this.expiresAtMs = (exp + (this.ctx.auth?.clockToleranceS ?? 0)) * 1000;
    this.ctx.expiry.add(this);
  }

  /** Called by the expiry sweep. */
  expire(): void {
    if (!this.closed) this.close(CloseCode.TOKEN_EXPIRED, 'token expired');
  }

  /**
   * `{"op":"refresh","token":"<jwt>"}`: a new token under the same rules as at connect, whose
   * `channels` claim must still allow every channel held; on success its claims (and `exp`)
   * replace the old ones. A refused refresh changes nothing (the old token still runs out).
   */
  private refresh(token: unknown, id: Id): void {
    const auth = this.ctx.auth;
    if (!auth) return this.error(ErrorCode.AUTH_DISABLED, id);
    const valid = refreshToken.safeParse(token);
    if (!valid.success) return this.error(ErrorCode.BAD_REQUEST, id);
    // Filled in once the token is checked; reply() sends it in request order.
    const body: Record<string, unknown> = {};
    const checked = auth
      .verifyToken(valid.data)
      .catch(() => ({ ok: false, code: ErrorCode.TOKEN_INVALID }) as const)
      .then((v) => {
        if (this.closed) return;
        if (!v.ok) return this.refused(body, v.code, id);
        const held = [...this.subs].filter((c) => !this.allowed(c, v.claims));
        if (held.length) return this.refused(body, ErrorCode.FORBIDDEN_CHANNEL, id, { channels: held.slice(0, 10) });
        this.claims = v.claims;
        this.watchExpiry(v.claims.exp);
        Object.assign(body, { op: 'refreshed', exp: v.claims.exp, id });
      });
    this.reply(body, [checked]);
  }

  private refused(body: Record<string, unknown>, code: ErrorCode, id: Id, extra?: Record<string, unknown>): void {
    this.ctx.onError(code);
    Object.assign(body, { op: 'error', code, message: ErrorMessage[code], ...extra, id });
  }

  private allowed(channel: string, claims = this.claims): boolean {
    const allow = claims?.channels;
    if (!allow) return true;
    const stream = channel.slice(0, channel.indexOf(':'));
    return allow.includes(channel) || (!channel.endsWith(':*') && allow.includes(`${stream}:*`));
  }

  private takeToken(): boolean {
    const now = Date.now();
    const cap = this.ctx.opsPerSec * 2;
    this.tokens = Math.min(cap, this.tokens + ((now - this.refilledAt) / 1000) * this.ctx.opsPerSec);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.debt = 0;
      return true;
    }
    if (++this.debt > MAX_RATE_DEBT) {
      this.closeForPolicy();
    } else {
      this.error(ErrorCode.RATE_LIMITED, undefined, { limit_per_s: this.ctx.opsPerSec });
    }
    return false;
  }

  private error(code: ErrorCode, id: Id, extra?: Record<string, unknown>): void {
    this.ctx.onError(code);
    this.reply({ op: 'error', code, message: ErrorMessage[code], ...extra, id });
  }

  /** Replies keep request order even when a subscribe waits for the front's ack. */
  private reply(body: Record<string, unknown>, gates: Promise<void>[] = []): void {
    const send = () => {
      if (!this.closed && this.ws.readyState === this.ws.OPEN) this.ws.send(JSON.stringify(body));
    };
    const next = gates.length ? this.replies.then(() => Promise.all(gates)).then(send) : this.replies.then(send);
    this.replies = next.catch(() => {}); // one failed send must not stall every later reply
  }
}
