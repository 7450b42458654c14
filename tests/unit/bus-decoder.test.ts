// The shard's bus decoder: the same batches whatever the chunking, and linear in its input.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchDecoder, encodeBatch, encodeSegment, type BusMessage } from '../../app/common/ipc.js';

const segment = fc
  .record({ token: fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/), stream: fc.constantFrom('trades', 'prices'), payload: fc.uint8Array({ maxLength: 300 }) })
  .map((s) => ({ channel: `${s.stream}:${s.token}`, payload: Buffer.from(s.payload) }));
const frames = fc.array(fc.array(segment, { maxLength: 8 }), { minLength: 1, maxLength: 12 });

const plain = (batches: BusMessage[][]) => batches.map((b) => b.map((m) => ({ channel: m.channel, stream: m.stream, wildcard: m.wildcard, payload: m.payload.toString('hex') })));

function decode(chunks: Buffer[]) {
  const out: BusMessage[][] = [];
  const d = new BatchDecoder();
  for (const c of chunks) d.push(c, (b) => out.push(b));
  return plain(out);
}

describe('BatchDecoder', () => {
  it('decodes chunked input exactly as the whole input, with frames split anywhere', () => {
    fc.assert(
      fc.property(frames, fc.array(fc.nat(), { maxLength: 40 }), (fs, cuts) => {
        const whole = Buffer.concat(fs.map((segs) => encodeBatch(segs.map((s) => encodeSegment(s.channel, s.payload)))));
        const at = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const c of [...at, whole.length]) {
          chunks.push(whole.subarray(prev, c)); // empty chunks included
          prev = c;
        }
        const expected = decode([whole]);
        expect(expected).toHaveLength(fs.length);
        expect(expected.map((b) => b.length)).toEqual(fs.map((s) => s.length));
        expect(decode(chunks)).toEqual(expected);
        // byte by byte, the worst case
        expect(decode(Array.from(whole, (_, i) => whole.subarray(i, i + 1)))).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('copies each byte a bounded number of times, however small the chunks (no concat per chunk)', () => {
    const big = encodeBatch(Array.from({ length: 3000 }, (_, i) => encodeSegment(`trades:T${i % 50}`, Buffer.alloc(2100, 120))));
    const d = new BatchDecoder();
    const realConcat = Buffer.concat;
    let copied = 0;
    Buffer.concat = ((list: readonly Uint8Array[], len?: number) => {
      const out = realConcat(list, len);
      copied += out.length;
      return out;
    }) as typeof Buffer.concat;
    let got = 0;
    try {
      for (let o = 0; o < big.length; o += 65536) d.push(big.subarray(o, o + 65536), (b) => (got += b.length));
    } finally {
      Buffer.concat = realConcat;
    }
    expect(got).toBe(3000);
    expect(copied).toBeLessThanOrEqual(2 * big.length);
  });
});
