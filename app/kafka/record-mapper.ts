// One Kafka record -> one SourceMessage, or the reason it is rejected. Pure: the pool counts and
// logs the rejections; a bad record never reaches the bus and never throws.
import type { SourceMessage } from '../common/contracts.js';
import { TOKEN_RE, streamOfTopic } from '../common/channel.js';

export const REJECT_REASONS = ['no_key', 'bad_key', 'not_json', 'not_object', 'oversized', 'unknown_topic'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** The fields of a record the mapping reads (kafkajs' KafkaMessage has them). */
export interface RawRecord {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Milliseconds since the epoch, as a decimal string ("-1" when the producer set none). */
  readonly timestamp: string;
  /** The record's offset in its partition, as a decimal string. */
  readonly offset: string;
}

export type Mapped = { ok: true; message: SourceMessage } | { ok: false; reason: RejectReason };


export function createRecordMapper(opts: { streams: readonly string[]; maxRecordBytes: number; now?: () => number }) {
  const streams = new Set(opts.streams);
  const now = opts.now ?? Date.now;
  const streamOf = new Map<string, string | null>();

  const stream = (topic: string) => {
    let s = streamOf.get(topic);
    if (s === undefined) {
      const candidate = streamOfTopic(topic);
      s = streams.has(candidate) ? candidate : null;
      streamOf.set(topic, s);
    }
    return s;
  };

  return function map(topic: string, partition: number, record: RawRecord): Mapped {
    const s = stream(topic);
    if (s === null) return { ok: false, reason: 'unknown_topic' };
    if (record.key === null || record.key.length === 0) return { ok: false, reason: 'no_key' };
    if (record.key.length > 64) return { ok: false, reason: 'bad_key' };
    const token = record.key.toString('latin1');
    if (!TOKEN_RE.test(token)) return { ok: false, reason: 'bad_key' };
    const value = record.value;
    if (value === null || value.length === 0) return { ok: false, reason: 'not_json' };
    if (value.length > opts.maxRecordBytes) return { ok: false, reason: 'oversized' };
    const data = value.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return { ok: false, reason: 'not_json' };
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, reason: 'not_object' };
    const ts = Number(record.timestamp);
    // The message's position: the same on every server for this record (a channel's records share
    // a partition, since they share a key).
    const offset = Number(record.offset);
    return { ok: true, message: { stream: s, token, ts: Number.isFinite(ts) && ts > 0 ? ts : now(), data, origin: `p${partition}`, offset } };
  };
}
