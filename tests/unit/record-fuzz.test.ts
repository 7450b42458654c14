// Kafka records are external input: fuzz the mapping at the edge. Whatever the key, value and
// timestamp bytes, mapping never throws, rejects with a known reason, and what it accepts always
// makes a valid envelope once the bus splices it in (the bus never re-encodes `data`).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { REJECT_REASONS, createRecordMapper } from '../../app/kafka/record-mapper.js';

const map = createRecordMapper({ streams: ['trades', 'prices'], maxRecordBytes: 4096, now: () => 1 });
const reasons = new Set<string>(REJECT_REASONS);
const bytes = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));
const jsonText = fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null'));
const value = fc.oneof(bytes, jsonText, fc.constant(null), fc.string().map((s) => Buffer.from(s)), fc.constant(Buffer.from('{"a":1}')));
const key = fc.oneof(bytes, fc.constant(null), fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/).map((s) => Buffer.from(s)), fc.string().map((s) => Buffer.from(s)));
const topic = fc.oneof(fc.constantFrom('odin.trades', 'prices', 'x.y.trades', 'other'), fc.string());
const timestamp = fc.oneof(fc.constant('-1'), fc.string(), fc.integer().map(String), fc.double().map(String));

describe('Kafka record mapping (fuzz)', () => {
  it('never throws; rejects with a known reason; accepted data always splices into valid JSON', () => {
    fc.assert(
      fc.property(topic, key, value, timestamp, (t, k, v, ts) => {
        const r = map(t, 0, { key: k, value: v, timestamp: ts, offset: '0' });
        if (!r.ok) {
          expect(reasons.has(r.reason)).toBe(true);
          return;
        }
        const m = r.message;
        expect(Number.isFinite(m.ts)).toBe(true);
        const envelope = `{"channel":${JSON.stringify(`${m.stream}:${m.token}`)},"epoch":"e","seq":1,"pos":"${m.origin}:${m.offset}","ts":${m.ts},"data":${m.data}}`;
        const parsed = JSON.parse(envelope);
        expect(parsed.data).toEqual(JSON.parse(v!.toString('utf8')));
        expect(typeof parsed.data === 'object' && parsed.data !== null && !Array.isArray(parsed.data)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
