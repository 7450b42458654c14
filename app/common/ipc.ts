// Front <-> shard protocol. Control messages use Node's IPC channel (JSON, and it carries the
// relayed socket handles). Bus data uses a dedicated pipe (fd 4 in the shard) with a length-prefixed
// binary framing, so message bytes cross once and are never re-escaped or re-parsed.

export const BUS_FD = 4;

/** Front -> shard. */
export type ToShard =
  | { t: 'init'; id: number; config: unknown } // first message: the parsed config (never via env)
  | { t: 'listen'; port: number } // bind the public port (0: pick one; the others then join it)
  | { t: 'grant'; issued: number; relay: number; gen: number; canRelay: boolean; full: boolean; multi: boolean; refuse: string | null; draining: boolean }
  | { t: 'conn' } // with a handle: a connection another shard relayed (serve it, never relay again)
  | { t: 'interest-ack'; seq: number } // the front applied `interest` batch seq
  | { t: 'metrics-req'; id: number }
  | { t: 'stats-req' } // answer with a fresh `stats` now (for /health)
  | { t: 'hb'; at: number } // liveness: answer from the event loop at once
  | { t: 'http-res'; id: number; status: number; type: string; body: string }
  | { t: 'drain'; deadlineMs: number };

/** Shard -> front. */
export type FromShard =
  | { t: 'ready' }
  | { t: 'listening'; port: number }
  | { t: 'load'; held: number; open: number; reserved: number; consumed: number; issued: number; gen: number } // admission report (see front/admission.ts)
  | { t: 'hb-ack'; at: number }
  | { t: 'relay' } // with a handle: an unread connection for another shard
  | { t: 'relay-failed' } // a relayed handle arrived without its socket
  | { t: 'relay-got'; n: number } // n relayed connections arrived (the front closes its copies)
  // Channels whose local subscriber count went 0 -> 1 (add) or 1 -> 0 (remove), coalesced per
  // event-loop turn; the next batch waits for this one's interest-ack (app/shard/interest-link.ts).
  | { t: 'interest'; seq: number; add: string[]; remove: string[] }
  | { t: 'stats'; stats: ShardStats }
  | { t: 'metrics-res'; id: number; metrics: unknown }
  | { t: 'http-req'; id: number; kind: 'health' | 'metrics'; detail: boolean };

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
  /** p99 event-loop delay over the last stats interval (ms). */
  loopLagMs: number;
  /** Connections the shard ended, by reason (slow, budget, rate_limit, internal_error, ping_timeout, idle). */
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

/** Batch frame: u32 body length, u32 count, f64 flush time (ms since the epoch), then the segments. */
export function encodeBatch(segments: readonly Buffer[], flushedAtMs = performance.timeOrigin + performance.now()): Buffer {
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

/**
 * Incremental decoder for the bus pipe: feed chunks, get whole batches. Linear in its input: the
 * chunks of an incomplete frame are only collected, and joined once the frame is complete.
 */
export class BatchDecoder {
  private parts: Buffer[] = [];
  private have = 0;
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
      onBatch(this.decodeBody(body), body.readDoubleLE(4));
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

  private decodeBody(body: Buffer): BusMessage[] {
    const n = body.readUInt32LE(0);
    const out: BusMessage[] = new Array(n);
    let off = 12;
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
