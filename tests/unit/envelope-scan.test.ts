// The generator's envelope fast path: on the bytes the bus really writes it reads the same
// channel/epoch/seq/ts as JSON.parse; on anything else it either agrees with JSON.parse or
// declines (null), so the caller's full parse decides. It never invents a message.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchDecoder } from '../../app/common/ipc.js';
import { scanEnvelope } from '../../app/loadtest/envelope-scan.js';
import { makeBus, TestTarget } from './support/bus-fixtures.js';

const busFrames = () => {
  const t = new TestTarget(0);
  t.wild.add('trades:*');
  const out: Buffer[] = [];
  const decoder = new BatchDecoder();
  t.write = (b: Buffer) => decoder.push(b, (msgs) => out.push(...msgs.map((m) => Buffer.from(m.payload))));
  return { bus: makeBus([t]), out };
};

describe('generator envelope scan', () => {
  it('reads what JSON.parse reads from every message the bus writes with an integer ts', () => {
    const { bus, out } = busFrames();
    const data = fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? 'null');
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.nat({ max: Number.MAX_SAFE_INTEGER }), data, fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/), (offset, ts, text, token) => {
        out.length = 0;
        bus.dispatch([{ stream: 'trades', token, ts, data: text, origin: 'p0', offset }]);
        bus.flush();
        expect(out).toHaveLength(1);
        const v = JSON.parse(out[0].toString());
        expect(scanEnvelope(out[0])).toEqual({ channel: v.channel, epoch: v.epoch, seq: v.seq, ts: v.ts });
      }),
      { numRuns: 300 },
    );
    bus.stop();
  });

  it('declines a ts that is not a plain integer, a batch, a control frame and other envelopes', () => {
    const { bus, out } = busFrames();
    bus.dispatch([{ stream: 'trades', token: 'X', ts: 1.5, data: '{}', origin: 'p0', offset: 1 }]);
    bus.flush();
    expect(out).toHaveLength(1);
    expect(scanEnvelope(out[0])).toBeNull();
    bus.stop();
    const good = '{"channel":"trades:X","epoch":"e-1","seq":3,"pos":"p0:9","ts":17,"data":{}}';
    expect(scanEnvelope(Buffer.from(good))).toEqual({ channel: 'trades:X', epoch: 'e-1', seq: 3, ts: 17 });
    for (const s of [
      `[${good}]`,
      '{"op":"subscribed","id":1}',
      '{"channel":"trades:X","seq":3,"ts":17,"data":{}}',
      good.replace('"seq":3', '"seq":03'),
      good.replace('"seq":3', '"seq": 3'),
      good.replace('"ts":17', '"ts":99999999999999999'),
      good.replace('trades:X', 'trades:\\u0058'),
      good.replace('"data":{}}', '"data":}'),
      good.slice(0, -2),
    ]) expect(scanEnvelope(Buffer.from(s)), s).toBeNull();
  });

  it('on any mutation of a real envelope, agrees with JSON.parse or declines', () => {
    const good = Buffer.from('{"channel":"trades:X","epoch":"e-1","seq":3,"pos":"p0:9","ts":17,"data":{"p":1}}');
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), (edits) => {
        const b = Buffer.from(good);
        for (const [i, byte] of edits) b[i] = byte;
        const got = scanEnvelope(b);
        if (got === null) return;
        let v: Record<string, unknown> | null = null;
        try {
          v = JSON.parse(b.toString('latin1'));
        } catch {
          // Only the payload is left unchecked: the envelope fields it read must still be the
          // original bytes' fields apart from edits inside data.
          expect(edits.some(([i]) => i >= good.indexOf('"data":') + 7)).toBe(true);
          return;
        }
        expect(got).toEqual({ channel: v!.channel, epoch: v!.epoch, seq: v!.seq, ts: v!.ts });
      }),
      { numRuns: 2000 },
    );
  });
});
