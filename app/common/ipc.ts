// Front <-> shard protocol. Control messages use Node's IPC channel (JSON, and it carries the
// relayed socket handles). Bus data uses a dedicated pipe (fd 4 in the shard) with a length-prefixed
// binary framing, so message bytes cross once and are never re-escaped or re-parsed.

export const BUS_FD = 4;

/** Front -> shard. */
export type ToShard =
  | { t: 'init'; id: number; config: unknown } // first message: the parsed config (never via env)
  | { t: 'listen'; port: number } // bind the public port (0: pick one; the others then join it)
  | { t: 'grant'; issued: number; relay: number; gen: number; canRelay: boolean; full: boolean; multi: boolean; refuse: string | null; draining: boolean }
  | { t: 'conn'; at: number } // with a handle: a connection another shard relayed at `at` (ms; serve it, never relay again)
  | { t: 'interest-ack'; seq: number } // the front applied `interest` batch seq
  | { t: 'metrics-req'; id: number }
  | { t: 'stats-req' } // answer with a fresh `stats` now (for /health)
  | { t: 'hb'; at: number } // liveness: answer from the event loop at once
  | { t: 'http-res'; id: number; status: number; type: string; body: string }
  | { t: 'drain'; deadlineMs: number };

/** Shard -> front. */
export type FromShard =
  // Its 'message' listener is attached: only now may the front send `init`. An ESM child can
  // lose a message sent right after fork (nodejs/node#34785): the shard then never started.
  | { t: 'booted' }
  | { t: 'ready' }
  | { t: 'listening'; port: number }
  | { t: 'load'; held: number; open: number; reserved: number; consumed: number; issued: number; gen: number; saturated: boolean } // admission report (see front/admission.ts)
  | { t: 'hb-ack'; at: number }
  | { t: 'relay'; at: number } // with a handle: an unread connection for another shard, accepted at `at` (ms)
  | { t: 'relay-failed' } // a relayed handle arrived without its socket
  | { t: 'relay-got'; n: number } // n relayed connections arrived (the front closes its copies)
  // Channels whose local subscriber count went 0 -> 1 (add) or 1 -> 0 (remove), coalesced per
  // event-loop turn; the next batch waits for this one's interest-ack (app/shard/interest-link.ts).
  | { t: 'interest'; seq: number; add: string[]; remove: string[] }
  | { t: 'stats'; stats: ShardStats }
  | { t: 'metrics-res'; id: number; metrics: unknown }
  | { t: 'http-req'; id: number; kind: 'health' | 'metrics'; detail: boolean }
  // A client's subscribe asked for recovery (`since`) or the last value; the front answers with a
  // replay frame on the bus pipe, in order with the batches (see encodeReplay).
  | { t: 'recover'; rid: number; items: RecoverItem[] };

/** One channel of a recovery request: everything after `since`, or (last) its latest message. */
export interface RecoverItem {
  channel: string;
  since?: string;
  last?: boolean;
}

/** Per channel, what a replay frame carries (the client's `recovery` entry, plus `after`). */
export interface RecoverOutcome {
  replayed?: number;
  last?: number;
  unrecoverable?: string;
  /** The position after which live messages are due (the shard drops those at or before it). */
  after?: string;
}

/** Channel restrictions from an auth token; null/undefined = every channel allowed. */
export interface ChannelClaims {
  channels?: string[];
  /** The token's `exp` (seconds since the epoch); the shard closes the client after it. */
  exp?: number;
}

export interface ShardStats {
  connections: number;
  channels: number;
  deliveries: number;
  busBatches: number;
  busMessages: number;
  slowConsumers: number;
  /** Upgrades this shard refused, by reason (summed by the front for /health). */
  refused: Record<string, number>;
  /** Connections this shard passed to another one for balance. */
  relayed: number;
  /** The same by cause (see AdmissionGate.relayCause). */
  relayedBy: Record<string, number>;
  /** Worst quarter-second p99 event-loop delay in the last stats interval (ms, beyond the 10 ms sampling period). */
  loopLagMs: number;
  /** Worst quarter-second p99 age of the bus batches when delivered, in the last stats interval (ms). */
  deliveryLagMs: number;
  /** Refusing new upgrades because loopLagMs or deliveryLagMs passed WS_SATURATION_LAG_MS. */
  saturated: boolean;
  /** Worst quarter-second share of real time spent writing bus batches to clients, in the last stats interval. */
  fanoutShare: number;
  /** Clients past which probation refuses upgrades (null: no cut taken). */
  ceiling: number | null;
  /** Connections the shard ended, by reason (slow, budget, rate_limit, internal_error, ping_timeout, idle, overload). */
  closes: Record<string, number>;
  /** Bytes queued for all of this shard's clients, against WS_SHARD_BUFFER_BYTES. */
  bufferedBytes: number;
  rssMb: number;
  cpu: number; // cores used since the previous report
}

/** A message as the bus encodes it once: its channel and its serialised envelope. */
export interface BusMessage {
  readonly channel: string;
  readonly stream: string;
  /** `<stream>:*`, the wildcard channel that also receives this message. */
  readonly wildcard: string;
  readonly payload: Buffer;
}

/**
 * Encodes one message's segment: u16 channel length, channel, u32 payload length, payload.
 * Done once per message; a batch for a shard is a header plus the segments it needs.
 */
export function encodeSegment(channel: string, payload: Buffer): Buffer {
  const head = segmentHead(channel);
  const seg = Buffer.allocUnsafe(head.length + 4 + payload.length);
  head.copy(seg, 0);
  seg.writeUInt32LE(payload.length, head.length);
  payload.copy(seg, head.length + 4);
  return seg;
}

/** A segment's channel header (u16 length + UTF-8 bytes); the bus caches one per channel. */
export function segmentHead(channel: string): Buffer {
  const ch = Buffer.from(channel, 'utf8');
  const head = Buffer.allocUnsafe(2 + ch.length);
  head.writeUInt16LE(ch.length, 0);
  ch.copy(head, 2);
  return head;
}

/**
 * The bus's clock: CLOCK_MONOTONIC (libuv's hrtime) in ms, the same for every process on the host
 * and immune to wall-clock steps. Wall-clock stamps would make a shard started after an NTP step
 * see every batch as seconds old, and its saturation guard refuse everyone.
 */
export const busClockMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Batch frame: u32 body length, u32 count, f64 flush time (busClockMs), then the segments. */
export function encodeBatch(segments: readonly Buffer[], flushedAtMs = busClockMs()): Buffer {
  let len = 12;
  for (const s of segments) len += s.length;
  const out = Buffer.allocUnsafe(4 + len);
  out.writeUInt32LE(len, 0);
  out.writeUInt32LE(segments.length, 4);
  // When the bus flushed it: the shard's delivery latency (bus -> client write) is measured from it.
  out.writeDoubleLE(flushedAtMs, 8);
  let off = 16;
  for (const s of segments) {
    s.copy(out, off);
    off += s.length;
  }
  return out;
}

/** In a frame's count field: the frame is a replay (see encodeReplay), not a batch. */
const REPLAY_MARK = 0xffffffff;

/**
 * Replay frame: u32 body length, u32 REPLAY_MARK, u32 segment count, u32 meta length, the meta
 * (JSON: rid and per-channel outcomes), then the segments. It travels on the bus pipe so that
 * every batch written after it reaches the shard after it.
 */
export function encodeReplay(rid: number, outcomes: Record<string, RecoverOutcome>, messages: ReadonlyArray<{ channel: string; json: string }>): Buffer {
  const meta = Buffer.from(JSON.stringify({ rid, outcomes }));
  const segs = messages.map((m) => encodeSegment(m.channel, Buffer.from(m.json)));
  let len = 12 + meta.length;
  for (const s of segs) len += s.length;
  const out = Buffer.allocUnsafe(4 + len);
  out.writeUInt32LE(len, 0);
  out.writeUInt32LE(REPLAY_MARK, 4);
  out.writeUInt32LE(segs.length, 8);
  out.writeUInt32LE(meta.length, 12);
  meta.copy(out, 16);
  let off = 16 + meta.length;
  for (const s of segs) {
    s.copy(out, off);
    off += s.length;
  }
  return out;
}

export type ReplayHandler = (rid: number, outcomes: Record<string, RecoverOutcome>, messages: BusMessage[]) => void;

/**
 * Incremental decoder for the bus pipe: feed chunks, get whole batches. Linear in its input: the
 * chunks of an incomplete frame are only collected, and joined once the frame is complete.
 */
export class BatchDecoder {
  private parts: Buffer[] = [];
  private have = 0;
  /** Where replay frames go (the shard sets it; a decoder without one skips them). */
  onReplay: ReplayHandler | null = null;
  /** Bytes of the frame being collected (4 + body), 0 while its length is not yet known. */
  private need = 0;

  push(chunk: Buffer, onBatch: (msgs: BusMessage[], flushedAtMs: number) => void): void {
    if (this.have === 0) return this.scan(chunk, onBatch);
    this.parts.push(chunk);
    this.have += chunk.length;
    if (this.need === 0) {
      if (this.have < 4) return;
      this.need = 4 + this.peekLength();
    }
    if (this.have < this.need) return;
    const buf = Buffer.concat(this.parts, this.have);
    this.parts = [];
    this.have = this.need = 0;
    this.scan(buf, onBatch);
  }

  /** Decodes every whole frame in `buf` and keeps the incomplete tail for the next chunks. */
  private scan(buf: Buffer, onBatch: (msgs: BusMessage[], flushedAtMs: number) => void): void {
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32LE(off);
      if (buf.length - off < 4 + len) break;
      const body = buf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
      if (body.readUInt32LE(0) === REPLAY_MARK) this.replay(body);
      else onBatch(this.decodeBody(body), body.readDoubleLE(4));
    }
    if (off === buf.length) return;
    const rest = buf.subarray(off);
    this.parts = [rest];
    this.have = rest.length;
    this.need = rest.length >= 4 ? 4 + rest.readUInt32LE(0) : 0;
  }

  /** The frame length from the first 4 collected bytes, which may span chunks. */
  private peekLength(): number {
    const h = Buffer.allocUnsafe(4);
    let n = 0;
    for (const p of this.parts) {
      n += p.copy(h, n, 0, Math.min(p.length, 4 - n));
      if (n === 4) break;
    }
    return h.readUInt32LE(0);
  }

  private replay(body: Buffer): void {
    const metaLen = body.readUInt32LE(8);
    const meta = JSON.parse(body.toString('utf8', 12, 12 + metaLen)) as { rid: number; outcomes: Record<string, RecoverOutcome> };
    this.onReplay?.(meta.rid, meta.outcomes, this.segments(body, body.readUInt32LE(4), 12 + metaLen));
  }

  private decodeBody(body: Buffer): BusMessage[] {
    return this.segments(body, body.readUInt32LE(0), 12);
  }

  private segments(body: Buffer, n: number, start: number): BusMessage[] {
    const out: BusMessage[] = new Array(n);
    let off = start;
    for (let i = 0; i < n; i++) {
      const chLen = body.readUInt16LE(off);
      const channel = body.toString('utf8', off + 2, off + 2 + chLen);
      off += 2 + chLen;
      const pLen = body.readUInt32LE(off);
      off += 4;
      const payload = body.subarray(off, off + pLen);
      off += pLen;
      // No per-channel cache: distinct Kafka keys are unbounded, and deriving the two names per
      // message measured no slower than a cache lookup (a bounded Map was slower with many keys).
      const stream = channel.slice(0, channel.indexOf(':'));
      out[i] = { channel, stream, wildcard: `${stream}:*`, payload };
    }
    return out;
  }
}
