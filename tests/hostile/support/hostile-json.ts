// fast-check arbitraries for well-formed JSON of the wrong shape: every JSON type, objects whose
// `toString`/`valueOf`/`toJSON` are not functions, `__proto__` keys, huge and non-finite numbers,
// lone surrogates, nested arrays. Values are produced as JSON TEXT, so keys such as `__proto__`
// reach the server exactly as an attacker writes them (no JS object in between).
import fc from 'fast-check';

const HOSTILE_KEYS = ['toString', 'valueOf', 'toJSON', '__proto__', 'constructor', 'hasOwnProperty', 'then', 'length', 'op', 'id', 'channels', 'since', 'last', '0'];
const ODD_LITERALS = ['1e400', '-1e400', '1e308', '-0', '123456789012345678901234567890', '0.1e-400', '"\\ud800"', '"\\u0000"', '""', '"trades:"', '":ODIN1"', '"trades:*:*"', '"trades:ODIN1\\n"'];

export const VALID_CHANNELS = ['trades:ODIN1', 'prices:ODIN2', 'trades:*', 'prices:*', 'trades:T-1.x_2'];

const key = fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 8 }));

/** Any JSON value as text, biased towards the hostile shapes above. */
export const hostileValue: fc.Arbitrary<string> = fc.letrec<{ value: string; obj: string; arr: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? 'null'),
    fc.constantFrom(...ODD_LITERALS),
    fc.constantFrom(...VALID_CHANNELS).map((c) => JSON.stringify(c)),
    tie('obj'),
    tie('arr'),
  ),
  obj: fc.array(fc.tuple(key, tie('value')), { maxLength: 4 }).map((kv) => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  arr: fc.array(tie('value'), { maxLength: 4 }).map((a) => `[${a.join(',')}]`),
})).value;

const op = fc.oneof(
  { arbitrary: fc.constantFrom('"subscribe"', '"unsubscribe"', '"ping"'), weight: 4 },
  { arbitrary: fc.constantFrom('"SUBSCRIBE"', '"pong"', '""', '"subscribe "'), weight: 1 },
  { arbitrary: hostileValue, weight: 1 },
);
const channels = fc.oneof(hostileValue, fc.array(fc.oneof(fc.constantFrom(...VALID_CHANNELS).map((c) => JSON.stringify(c)), hostileValue), { maxLength: 6 }).map((a) => `[${a.join(',')}]`));

// `since`: hostile values, or objects keyed by (mostly) valid channels with hostile or valid positions.
const position = fc.oneof(hostileValue, fc.constantFrom('"p0:1"', '"p99:5"', '"x:1e3"', '"e1:-1"', '"p0:99999999999999999"'));
const since = fc.oneof(
  hostileValue,
  fc.array(fc.tuple(fc.oneof(fc.constantFrom(...VALID_CHANNELS, '__proto__', 'trades:OTHER'), key), position), { maxLength: 4 }).map((kv) => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
);
const last = fc.oneof(hostileValue, fc.constantFrom('true', 'false'));

/** A request object with each field present, absent, repeated or of the wrong type. */
const request = fc
  .record({
    op: fc.option(op, { nil: undefined }),
    id: fc.option(hostileValue, { nil: undefined }),
    channels: fc.option(channels, { nil: undefined }),
    since: fc.option(since, { nil: undefined, freq: 3 }),
    last: fc.option(last, { nil: undefined, freq: 3 }),
    extra: fc.option(fc.tuple(key, hostileValue), { nil: undefined }),
  })
  .map(({ op: o, id, channels: c, since: si, last: la, extra }) => {
    const parts: string[] = [];
    if (o !== undefined) parts.push(`"op":${o}`);
    if (id !== undefined) parts.push(`"id":${id}`);
    if (c !== undefined) parts.push(`"channels":${c}`);
    if (si !== undefined) parts.push(`"since":${si}`);
    if (la !== undefined) parts.push(`"last":${la}`);
    if (extra) parts.push(`${JSON.stringify(extra[0])}:${extra[1]}`);
    return `{${parts.join(',')}}`;
  });

/** One client text frame: mostly requests, some bare values and some non-JSON text. */
export const hostileFrame: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: request, weight: 6 },
  { arbitrary: hostileValue, weight: 2 },
  { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
);

/** The frames that killed a shard before the schema (issue 16). */
export const CRASH_FRAMES = [
  '{"op":"subscribe","channels":[{"toString":1}]}',
  '{"op":"subscribe","channels":[[{"toString":1}]]}',
  '{"op":"unsubscribe","channels":[{"toString":1,"valueOf":1}]}',
  '{"op":"subscribe","channels":[{"__proto__":{"toString":1}}]}',
];

/** Frames the fuzz found throwing inside zod's length checks (a `length` that is not a number). */
export const LENGTH_FRAMES = [
  '{"op":"ping","id":{"length":{"toString":{}}}}',
  '{"op":"subscribe","channels":{"length":{"toString":{}}},"id":1}',
  '{"op":"unsubscribe","channels":{"length":{"valueOf":[]}},"id":2}',
];
