// The envelope the bus writes byte by byte (no string per message): for any offset, timestamp
// and JSON object text it is valid JSON with exactly the source's values, and the recovery
// window keeps the same text.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecoveryWindow } from '../../app/bus/recovery-window.js';
import { BatchDecoder } from '../../app/common/ipc.js';
import { makeBus, TestTarget } from './support/bus-fixtures.js';

describe('bus envelope', () => {
  it('is the source record as JSON: channel, epoch, seq, pos, ts, data unchanged', () => {
    const window = new RecoveryWindow({ windowMs: 60_000, maxMessages: 1000, maxBytes: 1 << 24, maxReplayBytes: 1 << 24 }, { floor: () => -1 });
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    const payloads: string[] = [];
    const decoder = new BatchDecoder();
    t.write = (b: Buffer) => decoder.push(b, (msgs) => payloads.push(...msgs.map((m) => m.payload.toString())));
    const bus = makeBus([t], {}, window);
    const data = fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }).map((o) => JSON.stringify(o));
    const ts = fc.oneof(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.double({ min: 1, max: 1e15, noNaN: true }));
    let seq = 0;
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), ts, data, fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/), (offset, when, text, origin) => {
        payloads.length = 0;
        bus.dispatch([{ stream: 'trades', token: 'X', ts: when, data: text, origin, offset }]);
        bus.flush();
        seq++;
        expect(payloads).toHaveLength(1);
        const v = JSON.parse(payloads[0]);
        expect(v).toEqual({ channel: 'trades:X', epoch: v.epoch, seq, pos: `${origin}:${offset}`, ts: when, data: JSON.parse(text) });
        const kept = window.last('trades:X');
        expect(kept.kind === 'last' && kept.messages[0]).toBe(payloads[0]);
      }),
      { numRuns: 300 },
    );
    bus.stop();
  });
});
