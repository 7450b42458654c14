// Front <-> shard protocol. Control messages use Node's IPC channel (JSON, and it carries the
// relayed socket handles). Bus data uses a dedicated pipe (fd 4 in the shard) with a length-prefixed
// binary framing, so message bytes cross once and are never re-escaped or re-parsed.

export const BUS_FD = 4;

/** Front -> shard. */
export type ToShard =
  | { t: 'init'; id: number; config: unknown } // first message: the parsed config (never via env)
  | { t: 'listen'; port: number } // bind the public port (0: pick one; the others then join it)
  | { t: 'grant'; issued: number; relay: number; gen: number; canRelay: boolean; refuse: string | null; draining: boolean }
  | { t: 'conn' } // with a handle: a connection another shard relayed (serve it, never relay again)
  | { t: 'sub-ack'; ch: string }
  | { t: 'metrics-req'; id: number }
  | { t: 'stats-req' } // answer with a fresh `stats` now (for /health)
  | { t: 'http-res'; id: number; status: number; type: string; body: string }
  | { t: 'drain'; deadlineMs: number };

/** Shard -> front. */
export type FromShard =
  | { t: 'ready' }
  | { t: 'listening'; port: number }
  | { t: 'load'; held: number; open: number; consumed: number; issued: number; gen: number } // admission report (see front/admission.ts)
  | { t: 'relay' } // with a handle: an unread connection for another shard
  | { t: 'relay-failed' } // a relayed handle arrived without its socket
  | { t: 'relay-got'; n: number } // n relayed connections arrived (the front closes its copies)
  | { t: 'sub'; ch: string } // local subscriber count 0 -> 1
  | { t: 'unsub'; ch: string } // local subscriber count 1 -> 0
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

/** Batch frame: u32 body length, u32 count, then the segments. */
export function encodeBatch(segments: readonly Buffer[]): Buffer {
  let len = 4;
  for (const s of segments) len += s.length;
  const out = Buffer.allocUnsafe(4 + len);
  out.writeUInt32LE(len, 0);
  out.writeUInt32LE(segments.length, 4);
  let off = 8;
  for (const s of segments) {
    s.copy(out, off);
    off += s.length;
  }
  return out;
}

/** Incremental decoder for the bus pipe: feed chunks, get whole batches. */
export class BatchDecoder {
  private buf: Buffer = Buffer.alloc(0);
  /** channel -> its stream and wildcard, so the hot path allocates them once per channel. */
  private readonly names = new Map<string, { stream: string; wildcard: string }>();

  push(chunk: Buffer, onBatch: (msgs: BusMessage[]) => void): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32LE(0);
      if (this.buf.length < 4 + len) break;
      const body = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      onBatch(this.decodeBody(body));
    }
  }

  private decodeBody(body: Buffer): BusMessage[] {
    const n = body.readUInt32LE(0);
    const out: BusMessage[] = new Array(n);
    let off = 4;
    for (let i = 0; i < n; i++) {
      const chLen = body.readUInt16LE(off);
      const channel = body.toString('utf8', off + 2, off + 2 + chLen);
      off += 2 + chLen;
      const pLen = body.readUInt32LE(off);
      off += 4;
      const payload = body.subarray(off, off + pLen);
      off += pLen;
      let names = this.names.get(channel);
      if (!names) {
        const stream = channel.slice(0, channel.indexOf(':'));
        names = { stream, wildcard: `${stream}:*` };
        this.names.set(channel, names);
      }
      out[i] = { channel, stream: names.stream, wildcard: names.wildcard, payload };
    }
    return out;
  }
}
