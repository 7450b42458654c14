// Protocol v1 client requests, validated at the shard's edge. Every field of every op is checked
// for its type before anything reads it, so nothing downstream ever sees a client-built value it
// did not expect (an object whose `toString` is a number, `__proto__` keys, 1e400 ids, ...).
// Refusals carry only values that are already known to be strings or numbers.
import { z } from 'zod';
import { parseChannel } from '../common/channel.js';
import { ErrorCode } from '../common/errors.js';
import { MAX_TOKEN_CHARS } from '../auth/jwt-auth.js';

// No .min()/.max() here: zod 4 runs its length checks even after the type check failed, whenever
// the value has a `length` property, and compares that property with a number, so
// `{"length":{"toString":1}}` made z.string().max() throw (found by
// tests/hostile/protocol-fuzz.test.ts). A refinement runs only on a value of the right type.

/** `id` is optional and echoed: a finite number or a string of at most 64 chars. */
export const RequestId = z.union([z.number(), z.string().refine((s) => s.length <= 64, 'at most 64 chars')]);
export type RequestId = z.infer<typeof RequestId>;

/** A refresh token: a non-empty string of bounded length (checked as a refinement, see above). */
const RefreshToken = z.string().refine((t) => t.length >= 1 && t.length <= MAX_TOKEN_CHARS, `1 to ${MAX_TOKEN_CHARS} chars`);

const Envelope = z.object({ op: z.string(), id: RequestId.optional() });

export interface RequestLimits {
  readonly streams: ReadonlySet<string>;
  readonly maxChannels: number;
}

/** The requests protocol v1 accepts, as zod schemas for the given streams and channel limit. */
export function requestSchemas(limits: RequestLimits) {
  const channel = z.string().refine((c) => parseChannel(c, limits.streams) !== null, 'not <known stream>:<token|*>');
  const channels = z.array(channel).refine((a) => a.length >= 1 && a.length <= limits.maxChannels, `1 to ${limits.maxChannels} channels`);
  return z.discriminatedUnion('op', [
    z.object({ op: z.literal('ping'), id: RequestId.optional() }),
    z.object({
      op: z.literal('subscribe'),
      id: RequestId.optional(),
      channels,
      // Checked by checkSince() (before this schema sees it) and passed in as a Map.
      since: z.instanceof(Map<string, string>).optional(),
      last: z.boolean().optional(),
    }),
    z.object({ op: z.literal('unsubscribe'), id: RequestId.optional(), channels }),
    z.object({ op: z.literal('refresh'), id: RequestId.optional(), token: RefreshToken }),
  ]);
}
export type ClientRequest = z.infer<ReturnType<typeof requestSchemas>>;

export type Parsed =
  | { ok: true; req: ClientRequest }
  | { ok: false; code: ErrorCode; id: RequestId | undefined; detail?: Record<string, unknown> };

const MAX_LISTED = 10;
const MAX_LISTED_CHARS = 100;

/**
 * Parses one text frame. The checks run in the order of the error codes' precedence (BAD_JSON,
 * BAD_REQUEST, UNKNOWN_OP, TOO_MANY_CHANNELS / BAD_CHANNEL) so each refusal names the first thing
 * wrong; the channel list is checked by the same zod schema the happy path uses.
 */
export function createRequestParser(limits: RequestLimits): (text: string) => Parsed {
  const schema = requestSchemas(limits);
  const known = new Set(['ping', 'subscribe', 'unsubscribe', 'refresh']);
  return (text) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { ok: false, code: ErrorCode.BAD_JSON, id: undefined };
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, code: ErrorCode.BAD_REQUEST, id: undefined };
    const rec = value as Record<string, unknown>;
    const id = RequestId.optional().safeParse(own(rec, 'id'));
    if (!id.success) return { ok: false, code: ErrorCode.BAD_REQUEST, id: undefined };
    const env = Envelope.safeParse({ op: own(rec, 'op'), id: id.data });
    if (!env.success) return { ok: false, code: ErrorCode.BAD_REQUEST, id: id.data };
    if (!known.has(env.data.op)) return { ok: false, code: ErrorCode.UNKNOWN_OP, id: id.data };
    if (env.data.op === 'refresh') {
      const r = schema.safeParse({ op: 'refresh', id: id.data, token: own(rec, 'token') });
      return r.success ? { ok: true, req: r.data } : { ok: false, code: ErrorCode.BAD_REQUEST, id: id.data, detail: { field: 'token' } };
    }
    const r = schema.safeParse({ op: env.data.op, id: id.data, channels: own(rec, 'channels') });
    if (!r.success) return channelRefusal(own(rec, 'channels'), limits, id.data);
    if (r.data.op !== 'subscribe') return { ok: true, req: r.data };
    const last = own(rec, 'last');
    if (last !== undefined && typeof last !== 'boolean') return { ok: false, code: ErrorCode.BAD_REQUEST, id: id.data, detail: { field: 'last' } };
    const rawSince = own(rec, 'since');
    if (rawSince === undefined) return { ok: true, req: { ...r.data, last: last as boolean | undefined } };
    const since = checkSince(rawSince, r.data.channels, limits);
    if (!since.ok) return { ok: false, code: ErrorCode.BAD_SINCE, id: id.data, detail: since.detail };
    return { ok: true, req: { ...r.data, since: since.value, last: last as boolean | undefined } };
  };
}

/** A position as messages carry it in `pos`: `<origin>:<offset>`. */
export const POSITION_RE = /^[A-Za-z0-9_-]{1,40}:\d{1,16}$/;

/**
 * `since`: an object of at most maxChannels entries, each a concrete channel the request names or
 * covers with its `<stream>:*`, mapped to a position. Keys and values are checked for their type
 * before use; the bad keys are listed as BAD_CHANNEL lists channels.
 */
function checkSince(
  v: unknown,
  channels: readonly string[],
  limits: RequestLimits,
): { ok: true; value: Map<string, string> } | { ok: false; detail: Record<string, unknown> } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, detail: { field: 'since' } };
  const keys = Object.keys(v);
  if (keys.length === 0 || keys.length > limits.maxChannels) return { ok: false, detail: { field: 'since', limit: limits.maxChannels } };
  const named = new Set(channels);
  const out = new Map<string, string>();
  const bad: string[] = [];
  for (const key of keys) {
    const pos = (v as Record<string, unknown>)[key];
    const ch = parseChannel(key, limits.streams);
    const covered = ch !== null && !key.endsWith(':*') && (named.has(key) || named.has(`${key.slice(0, key.indexOf(':'))}:*`));
    if (covered && typeof pos === 'string' && POSITION_RE.test(pos)) out.set(key, pos);
    else if (bad.length < MAX_LISTED) bad.push(describe(key));
  }
  return bad.length ? { ok: false, detail: { channels: bad } } : { ok: true, value: out };
}

/** Only own properties: a `__proto__` or inherited name must never stand in for a field. */
function own(rec: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

function channelRefusal(channels: unknown, limits: RequestLimits, id: RequestId | undefined): Parsed {
  if (Array.isArray(channels) && channels.length > limits.maxChannels) {
    return { ok: false, code: ErrorCode.TOO_MANY_CHANNELS, id, detail: { limit: limits.maxChannels } };
  }
  if (!Array.isArray(channels) || channels.length === 0) return { ok: false, code: ErrorCode.BAD_CHANNEL, id };
  const bad = channels.filter((c) => parseChannel(c, limits.streams) === null);
  return { ok: false, code: ErrorCode.BAD_CHANNEL, id, detail: { channels: bad.slice(0, MAX_LISTED).map(describe) } };
}

/** A refused channel as the client can recognise it: strings (cut short) as-is, others by type. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return v.length > MAX_LISTED_CHARS ? v.slice(0, MAX_LISTED_CHARS) : v;
  if (v === null) return '<null>';
  if (Array.isArray(v)) return '<array>';
  return `<${typeof v}>`;
}
