// One client connection in a shard: protocol v1 requests, subscriptions, the rate limit, the
// liveness checks the shard's sweep runs, and the output cap that every byte written to the
// client (data, replies, errors, pongs) counts against.
import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { CloseCode, ErrorCode, ErrorMessage } from '../common/errors.js';
import type { BusMessage, ChannelClaims, RecoverItem } from '../common/ipc.js';
import { parsePosition, type Position } from '../bus/recovery-window.js';
import type { Replay } from './recovery-link.js';
import { RecoveryFilter } from './recovery-filter.js';
import type { RequestId, createRequestParser } from '../protocol/client-requests.js';
import { arrayFrame, textFrame } from './frame.js';
import type { Hub, Subscriber } from './hub.js';
import type { Authenticator } from '../auth/auth.js';
import type { ExpirySweep, Expiring } from '../auth/expiry-sweep.js';

/** Why the server ended a connection (a label of odin_ws_client_closes_total). */
export type CloseReason = 'slow' | 'budget' | 'rate_limit' | 'internal_error' | 'ping_timeout' | 'idle' | 'overload';

export interface ClientContext {
  readonly hub: Hub;
  readonly parse: ReturnType<typeof createRequestParser>;
  readonly maxChannels: number;
  readonly opsPerSec: number;
  readonly bufferLimit: number;
  /** Resolves once the front has registered this shard's interest in the channel. */
  gate(channel: string): Promise<void> | null;
  /** Asks the front for what the client missed (subscribe with since/last). */
  recover(items: RecoverItem[], arrive: (r: Replay) => void): Promise<Replay>;
  onClose(reason: CloseReason): void;
  onError(code: ErrorCode): void;
  /** A write left bytes queued for this client: the shard's output budget must count it. */
  backlogged(c: Client): void;
  /** Checks `refresh` tokens; null when auth is off. */
  readonly auth: Pick<Authenticator, 'verifyToken' | 'clockToleranceS'> | null;
  /** Closes clients whose token expired (one shared sweep per shard). */
  readonly expiry: Pick<ExpirySweep, 'add' | 'delete'>;
  onFault(err: unknown): void;
}

type Id = RequestId | undefined;
const POS_KEY = Buffer.from('"pos":"');
/** Replayed messages go out in frames of about this size (a JSON array each). */
const REPLAY_FRAME_BYTES = 64 << 10;

/** The `pos` the bus wrote into a message's envelope (its first `"pos":"`: data comes after it). */
export function positionOf(payload: Buffer): Position | null {
  const i = payload.indexOf(POS_KEY);
  if (i < 0) return null;
  const start = i + POS_KEY.length;
  const end = payload.indexOf(0x22, start);
  return end < 0 ? null : parsePosition(payload.toString('latin1', start, end));
}
const SLOW_GRACE_MS = 1000;
/** Every client's reply chain starts here: one settled promise for all of them. */
const SETTLED: Promise<void> = Promise.resolve();
const POLICY_GRACE_MS = 1000;
/** Refused requests (net of the decay) after which the client is closed with 1008. */
export const MAX_STRIKES = 100;
/** Strikes forgiven per second: a client must stay within the limit, not merely pause once. */
export const STRIKE_DECAY_PER_S = 1;

export class Client implements Subscriber, Expiring {
  hubEpoch = 0;
  hubLast = -1;
  hubDue: number[] = [];
  filtered = false;
  private readonly subs = new Set<string>();
  /** Only while a recovery is in progress (see RecoveryFilter). */
  private rec: RecoveryFilter | null = null;
  private closed = false;
  private closing = false;
  private readonly bucketCap: number;
  private tokens: number;
  private refilledAt = Date.now();
  private strikes = 0;
  private struckAt = Date.now();
  private replies: Promise<void> = SETTLED;
  expiresAtMs = Infinity;
  private pingAt = Date.now();
  private pongAt = this.pingAt;
  private idleSince = this.pingAt;

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly ctx: ClientContext,
    private claims: ChannelClaims | undefined,
  ) {
    // A request naming the most channels a client may hold must fit a full bucket.
    this.bucketCap = Math.max(ctx.opsPerSec * 2, ctx.maxChannels);
    this.tokens = this.bucketCap;
    ws.on('message', (data, isBinary) => this.contain(() => this.onMessage(data, isBinary)));
    ws.on('ping', (data) => this.contain(() => this.onPing(data)));
    ws.on('pong', () => (this.pongAt = Date.now()));
    this.watchExpiry(claims?.exp);
  }

  /** Bytes the shard holds for this client (the output budget sheds the largest first). */
  get buffered(): number {
    return this.closed ? 0 : this.socket.writableLength;
  }

  deliver(frame: Buffer): boolean {
    if (this.closed) return false;
    if (!this.fits(frame.length)) {
      this.dropSlow('slow');
      return false;
    }
    this.socket.write(frame);
    this.noteBacklog();
    return true;
  }

  deliverSome(msgs: readonly BusMessage[]): number {
    const out: Buffer[] = [];
    const r = this.rec;
    for (const m of msgs) {
      if (r) {
        if (r.deaf.has(m.channel)) continue; // the replay in flight has it
        if (r.holding.has(m.channel)) {
          // Later than the replay that arrived: it goes out right after it.
          r.held.push(m);
          r.heldBytes += m.payload.length;
          if (r.heldBytes > this.ctx.bufferLimit) this.dropSlow('slow');
          continue;
        }
        const a = r.after.get(m.channel);
        if (a) {
          const p = positionOf(m.payload);
          if (p && p.origin === a.origin && p.offset <= a.offset) continue; // replayed or held already
          r.after.delete(m.channel);
        }
      }
      out.push(m.payload);
    }
    this.refilter();
    if (!out.length) return 0;
    return this.deliver(out.length === 1 ? textFrame(out[0]) : arrayFrame(out)) ? out.length : 0;
  }

  private refilter(): void {
    this.filtered = this.rec?.active ?? false;
    if (this.rec?.empty) this.rec = null;
  }

  private recovery(): RecoveryFilter {
    return (this.rec ??= new RecoveryFilter());
  }

  /** Disposed: closed by either side or dropped. */
  get gone(): boolean {
    return this.closed;
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

  /** The shard's one sweep timer: reap connections that stopped answering pings, and idlers. */
  sweep(now: number, pingMs: number, idleMs: number): void {
    if (this.closed) return;
    if (pingMs > 0) {
      if (this.pingAt > this.pongAt && now - this.pingAt >= pingMs) {
        this.ctx.onClose('ping_timeout');
        this.dispose();
        this.ws.terminate(); // a dead peer would never complete a close handshake
        return;
      }
      if (now - this.pingAt >= pingMs) {
        this.pingAt = now;
        if (this.fits(2)) {
          this.ws.ping();
          this.noteBacklog();
        }
      }
    }
    if (idleMs > 0 && this.subs.size === 0 && now - this.idleSince >= idleMs) {
      this.ctx.onClose('idle');
      this.closeAndReap(CloseCode.IDLE_TIMEOUT, 'idle: no subscription');
    }
  }

  /** Closed by the shard's output budget: it holds the most while the shard is over budget. */
  shed(): void {
    if (!this.closed) this.dropSlow('budget');
  }

  /** Shed on probation: the shard took on more than it can carry; the client should come back after `retryAfterMs`. */
  shedForOverload(retryAfterMs: number): void {
    if (this.closed) return;
    this.ctx.onClose('overload');
    this.closeAndReap(CloseCode.TRY_AGAIN_LATER, JSON.stringify({ reason: 'overload', reconnect_after_ms: retryAfterMs }));
  }

  /** Most writes leave nothing queued (the kernel took it all): only a backlog is handed to the budget. */
  private noteBacklog(): void {
    if (this.socket.writableLength > 0) this.ctx.backlogged(this);
  }

  /** Writing `bytes` keeps the client within its cap (one frame may always go to an empty buffer). */
  private fits(bytes: number): boolean {
    const queued = this.socket.writableLength;
    return queued === 0 || queued + bytes <= this.ctx.bufferLimit;
  }

  /** An exception while handling one client's frame ends that client (1011), never the shard. */
  private contain(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.ctx.onFault(err);
      if (this.closed) return;
      this.ctx.onClose('internal_error');
      try {
        this.closeAndReap(CloseCode.INTERNAL_ERROR, 'internal error');
      } catch {
        this.ws.terminate();
      }
    }
  }

  private dropSlow(reason: 'slow' | 'budget'): void {
    this.ctx.onClose(reason);
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

  /** Close now; a peer that does not answer the close handshake is cut off after a grace period. */
  private closeAndReap(code: number, reason: string): void {
    this.close(code, reason);
    setTimeout(() => this.ws.terminate(), POLICY_GRACE_MS).unref();
  }

  /** Rate-limit abuse: stop reading requests now, answer what was accepted, then close 1008. */
  private closeForPolicy(): void {
    this.closing = true;
    this.ctx.onClose('rate_limit');
    this.replies = this.replies
      .then(() => this.closeAndReap(CloseCode.POLICY, 'request rate limit exceeded'))
      .catch(() => {});
  }

  private onPing(data: Buffer): void {
    if (this.closed || this.closing || !this.admit(1)) return;
    if (this.fits(2 + data.length)) {
      this.ws.pong(data);
      this.noteBacklog();
    }
    else this.dropSlow('slow');
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.closed || this.closing) return;
    // One token before the frame is even parsed, so a flood costs no more than its refusals.
    if (!this.admit(1)) return;
    if (isBinary) return this.error(ErrorCode.BINARY_UNSUPPORTED, undefined);
    const parsed = this.ctx.parse(data.toString());
    if (!parsed.ok) return this.error(parsed.code, parsed.id, parsed.detail);
    const req = parsed.req;
    if (req.op === 'ping') return this.reply({ op: 'pong', id: req.id });
    if (req.op === 'refresh') return this.refresh(req.token, req.id);
    // A request costs one token per channel it names: interest churn is what costs the front.
    // A `since` entry costs like a channel: each is a lookup in the front and up to a replay, and
    // one `<stream>:*` may cover as many entries as WS_MAX_CHANNELS.
    const cost = Math.max(req.channels.length, req.op === 'subscribe' ? (req.since?.size ?? 0) : 0);
    if (cost > 1 && !this.admit(cost - 1)) return;
    if (req.op === 'subscribe') return this.subscribe([...new Set(req.channels)], req.id, req.since, req.last);
    return this.unsubscribe([...new Set(req.channels)], req.id);
  }

  private subscribe(list: string[], id: Id, since?: ReadonlyMap<string, string>, last?: boolean): void {
    const forbidden = list.filter((c) => !this.allowed(c));
    if (forbidden.length) return this.error(ErrorCode.FORBIDDEN_CHANNEL, id, { channels: forbidden.slice(0, 10) });
    const fresh = list.filter((c) => !this.subs.has(c));
    if (this.subs.size + fresh.length > this.ctx.maxChannels) {
      return this.error(ErrorCode.TOO_MANY_CHANNELS, id, { limit: this.ctx.maxChannels });
    }
    const items: RecoverItem[] = [];
    for (const [channel, pos] of since ?? []) items.push({ channel, since: pos });
    if (last) for (const ch of list) if (!ch.endsWith(':*') && !since?.has(ch)) items.push({ channel: ch, last: true });
    // From now until the replay is out, nothing of these channels reaches the client: every
    // message it holds back is in the window the front answers from.
    if (items.length) {
      const r = this.recovery();
      for (const it of items) {
        r.deaf.set(it.channel, (r.deaf.get(it.channel) ?? 0) + 1);
        r.after.delete(it.channel);
      }
    }
    this.refilter();
    const gates: Promise<void>[] = [];
    for (const ch of fresh) {
      this.subs.add(ch);
      this.ctx.hub.subscribe(this, ch);
      const g = this.ctx.gate(ch);
      if (g) gates.push(g);
    }
    const body: Record<string, unknown> = { op: 'subscribed', channels: list, id };
    if (!items.length) return this.reply(body, gates);
    this.recoverThenReply(body, gates, items);
  }

  /**
   * In request order: once the front routes the channels here, ask it for the replay; then the
   * reply (with `recovery`), the replayed messages, and only then live ones again.
   */
  private recoverThenReply(body: Record<string, unknown>, gates: Promise<void>[], items: RecoverItem[]): void {
    let arrived = false;
    // The filter lives while these channels are deaf (it is dropped only when empty).
    const undeaf = () => {
      const r = this.recovery();
      for (const it of items) {
        const n = (r.deaf.get(it.channel) ?? 1) - 1;
        if (n > 0) r.deaf.set(it.channel, n);
        else r.deaf.delete(it.channel);
      }
    };
    // Synchronously when the replay frame is decoded: what follows it on the bus pipe is later
    // than the replay, so from here those channels are held, not dropped.
    const arrive = (r: Replay) => {
      arrived = true;
      undeaf();
      const f = this.recovery();
      for (const it of items) {
        f.holding.add(it.channel);
        const o = r.outcomes[it.channel];
        const after = o?.after === undefined ? null : parsePosition(o.after);
        if (after && this.holds(it.channel)) f.after.set(it.channel, after);
      }
      this.refilter();
    };
    const step = this.replies
      .then(() => Promise.all(gates))
      .then(() => (this.closed ? null : this.ctx.recover(items, arrive)))
      .then((r) => {
        if (r && !this.closed) this.finishRecovery(body, items, r);
      })
      .finally(() => {
        if (!arrived) undeaf();
        const f = this.recovery();
        for (const it of items) f.holding.delete(it.channel);
        // What waited behind the replay, in order (re-held if another replay still waits).
        const held = f.held;
        f.held = [];
        f.heldBytes = 0;
        this.refilter();
        if (held.length && !this.closed) this.deliverSome(held);
      });
    this.replies = step.catch((err) => this.ctx.onFault(err));
  }

  private finishRecovery(body: Record<string, unknown>, items: RecoverItem[], r: Replay): void {
    const recovery: Record<string, unknown> = {};
    for (const it of items) {
      const o = r.outcomes[it.channel] ?? { unrecoverable: 'not_ready' };
      recovery[it.channel] = o.unrecoverable !== undefined ? { unrecoverable: o.unrecoverable } : o.replayed !== undefined ? { replayed: o.replayed } : { last: o.last ?? 0 };
    }
    body.recovery = recovery;
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (!this.deliver(textFrame(Buffer.from(JSON.stringify(body))))) return;
    let chunk: Buffer[] = [];
    let size = 0;
    const flush = () => {
      if (chunk.length) this.deliver(arrayFrame(chunk));
      chunk = [];
      size = 0;
    };
    for (const m of r.messages) {
      if (!this.holds(m.channel)) continue;
      chunk.push(m.payload);
      size += m.payload.length;
      if (size >= REPLAY_FRAME_BYTES) flush();
    }
    flush();
  }

  /** Subscribed to the channel itself or to its `<stream>:*`. */
  private holds(channel: string): boolean {
    return this.subs.has(channel) || this.subs.has(`${channel.slice(0, channel.indexOf(':'))}:*`);
  }

  private unsubscribe(list: string[], id: Id): void {
    for (const ch of list) {
      if (this.subs.delete(ch)) this.ctx.hub.unsubscribe(this, ch);
      this.rec?.after.delete(ch);
    }
    this.refilter();
    if (this.subs.size === 0) this.idleSince = Date.now();
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
  /** `token` was checked by the request schema (a non-empty string of bounded length). */
  private refresh(token: string, id: Id): void {
    const auth = this.ctx.auth;
    if (!auth) return this.error(ErrorCode.AUTH_DISABLED, id);
    // Filled in once the token is checked; reply() sends it in request order.
    const body: Record<string, unknown> = {};
    const checked = auth
      .verifyToken(token)
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

  /** Token bucket (WS_CLIENT_OPS_PER_SEC, burst 2x); a refusal is a strike. */
  private admit(cost: number): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.bucketCap, this.tokens + ((now - this.refilledAt) / 1000) * this.ctx.opsPerSec);
    this.refilledAt = now;
    if (this.tokens >= cost) {
      this.tokens -= cost;
      return true;
    }
    // Strikes decay with time instead of resetting on the next accepted request, so a client that
    // keeps sending faster than the limit is closed however it interleaves its requests.
    this.strikes = Math.max(0, this.strikes - ((now - this.struckAt) / 1000) * STRIKE_DECAY_PER_S) + 1;
    this.struckAt = now;
    if (this.strikes > MAX_STRIKES) this.closeForPolicy();
    else this.error(ErrorCode.RATE_LIMITED, undefined, { limit_per_s: this.ctx.opsPerSec });
    return false;
  }

  private error(code: ErrorCode, id: Id, extra?: Record<string, unknown>): void {
    this.ctx.onError(code);
    this.reply({ op: 'error', code, message: ErrorMessage[code], ...extra, id });
  }

  /** Replies keep request order even when a subscribe waits for the front's ack. */
  private reply(body: Record<string, unknown>, gates: Promise<void>[] = []): void {
    const send = () => {
      if (!this.closed && this.ws.readyState === this.ws.OPEN) this.deliver(textFrame(Buffer.from(JSON.stringify(body))));
    };
    const next = gates.length ? this.replies.then(() => Promise.all(gates)).then(send) : this.replies.then(send);
    this.replies = next.catch((err) => this.ctx.onFault(err)); // one failed send must not stall every later reply
  }
}
