// KAFKA_* environment variables -> a typed, frozen config for the consumer pool. Returns problems
// instead of throwing so the server can report them together with its own config errors.
import { z } from 'zod';
import { streamOfTopic } from '../common/channel.js';

export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly topics: readonly string[];
  readonly group: string;
  readonly batchSize: number;
  readonly batchTimeoutMs: number;
  readonly maxRecordBytes: number;
  readonly fromBeginning: boolean;
  /** Streams the server serves; a topic's last dot-separated part must be one of them. */
  readonly streams: readonly string[];
}

export type KafkaConfigResult =
  | { ok: true; value: KafkaConfig | null } // null: KAFKA_BROKERS unset, the server uses its embedded feed
  | { ok: false; problems: string[] };

export const DEFAULT_TOPICS = ['odin.trades', 'odin.prices'] as const;

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;
const GROUP = /^[A-Za-z0-9._-]{1,249}$/;
const HOST_PORT = /^([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*):(\d{1,5})$/;

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);

function intIn(name: string, min: number, max: number, dflt: number) {
  return z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v.trim() === '') return dflt;
      const n = Number(v);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer ${min}..${max}, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return n;
    });
}

function schema(streams: readonly string[], defaultGroup: string) {
  return z.object({
    KAFKA_BROKERS: z
      .string()
      .optional()
      .transform((v, ctx) => {
        const brokers = list(v ?? '');
        for (const b of brokers) {
          const m = HOST_PORT.exec(b);
          const port = m ? Number(m[3]) : 0;
          if (!m || port < 1 || port > 65535) {
            ctx.addIssue({ code: 'custom', message: `KAFKA_BROKERS: ${JSON.stringify(b)} is not host:port (comma-separated list)` });
          }
        }
        return brokers;
      }),
    KAFKA_TOPICS: z
      .string()
      .optional()
      .transform((v, ctx) => {
        const topics = v === undefined || v.trim() === '' ? [...DEFAULT_TOPICS] : list(v);
        if (topics.length === 0) ctx.addIssue({ code: 'custom', message: 'KAFKA_TOPICS: no topic given' });
        for (const t of topics) {
          if (!TOPIC.test(t)) {
            ctx.addIssue({ code: 'custom', message: `KAFKA_TOPICS: ${JSON.stringify(t)} is not a valid topic name` });
          } else if (!streams.includes(streamOfTopic(t))) {
            ctx.addIssue({
              code: 'custom',
              message: `KAFKA_TOPICS: topic ${t} maps to stream ${JSON.stringify(streamOfTopic(t))}, which is not one of the streams ${streams.join(',')}`,
            });
          }
        }
        if (new Set(topics).size !== topics.length) ctx.addIssue({ code: 'custom', message: 'KAFKA_TOPICS: a topic is listed twice' });
        // A channel's positions are offsets in ONE topic's partition: two topics of one stream
        // would give it positions that cannot be compared.
        const byStream = new Map<string, string>();
        for (const t of topics) {
          const s = streamOfTopic(t);
          const other = byStream.get(s);
          if (other && other !== t) ctx.addIssue({ code: 'custom', message: `KAFKA_TOPICS: topics ${other} and ${t} both map to stream ${s}; give each stream one topic` });
          byStream.set(s, t);
        }
        return topics;
      }),
    KAFKA_CONSUMER_GROUP: z
      .string()
      .optional()
      .transform((v, ctx) => {
        const g = v === undefined || v.trim() === '' ? defaultGroup : v.trim();
        if (!GROUP.test(g)) ctx.addIssue({ code: 'custom', message: `KAFKA_CONSUMER_GROUP: ${JSON.stringify(g)} must match ${GROUP.source}` });
        return g;
      }),
    KAFKA_BATCH_SIZE: intIn('KAFKA_BATCH_SIZE', 1, 10_000, 50),
    KAFKA_BATCH_TIMEOUT_MS: intIn('KAFKA_BATCH_TIMEOUT_MS', 1, 10_000, 10),
    KAFKA_MAX_RECORD_BYTES: intIn('KAFKA_MAX_RECORD_BYTES', 2, 8 * 1024 * 1024, 65_536),
    KAFKA_FROM_BEGINNING: z
      .string()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined || v.trim() === '') return false;
        const s = v.trim().toLowerCase();
        if (['true', '1', 'yes'].includes(s)) return true;
        if (['false', '0', 'no'].includes(s)) return false;
        ctx.addIssue({ code: 'custom', message: `KAFKA_FROM_BEGINNING must be true or false, got ${JSON.stringify(v)}` });
        return z.NEVER;
      }),
  });
}

/**
 * Parses the KAFKA_* variables. The group defaults to `ws-server-<env>` (env from ODIN_ENV, else
 * NODE_ENV, else `development`); every server instance that must see every record needs its own.
 */
export function parseKafkaConfig(env: Record<string, string | undefined>, streams: readonly string[]): KafkaConfigResult {
  const environment = (env.ODIN_ENV || env.NODE_ENV || 'development').trim();
  const parsed = schema(streams, `ws-server-${environment}`).safeParse(env);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((i) => i.message) };
  }
  const v = parsed.data;
  if (v.KAFKA_BROKERS.length === 0) return { ok: true, value: null };
  return {
    ok: true,
    value: Object.freeze({
      brokers: Object.freeze(v.KAFKA_BROKERS),
      topics: Object.freeze(v.KAFKA_TOPICS),
      group: v.KAFKA_CONSUMER_GROUP,
      batchSize: v.KAFKA_BATCH_SIZE,
      batchTimeoutMs: v.KAFKA_BATCH_TIMEOUT_MS,
      maxRecordBytes: v.KAFKA_MAX_RECORD_BYTES,
      fromBeginning: v.KAFKA_FROM_BEGINNING,
      streams: Object.freeze([...streams]),
    }),
  };
}
