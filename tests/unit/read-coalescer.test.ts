import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { BusMessage } from '../../app/common/ipc.js';
import { ReadCoalescer } from '../../app/shard/read-coalescer.js';

const msg = (channel: string, n: number): BusMessage => ({ channel, stream: channel.split(':')[0], wildcard: `${channel.split(':')[0]}:*`, payload: Buffer.from(String(n)) });

describe('ReadCoalescer', () => {
  it('publishes the batches of one read as one batch, in order, with every stamp', () => {
    const out: Array<{ msgs: string[]; stamps: readonly number[] }> = [];
    const c = new ReadCoalescer(100, (msgs, stamps) => out.push({ msgs: msgs.map((m) => m.payload.toString()), stamps }));
    c.add([msg('t:A', 1), msg('t:B', 2)], 10);
    c.add([msg('t:A', 3)], 11);
    expect(out).toEqual([]);
    c.flush();
    expect(out).toEqual([{ msgs: ['1', '2', '3'], stamps: [10, 11] }]);
    c.flush(); // nothing left: no empty publish
    expect(out).toHaveLength(1);
  });

  it('a lone batch goes out as it came (light load)', () => {
    const seen: BusMessage[][] = [];
    const c = new ReadCoalescer(100, (msgs) => seen.push(msgs));
    const b = [msg('t:A', 1)];
    c.add(b, 1);
    c.flush();
    expect(seen[0]).toBe(b);
  });

  it('never merges past its bound, never loses or reorders a message (any batch sizes)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 40 }), fc.array(fc.boolean(), { maxLength: 40 }), (max, sizes, flushes) => {
        const got: number[] = [];
        const stamps: number[] = [];
        const c = new ReadCoalescer(max, (msgs, s) => {
          // A single batch larger than the bound still goes out whole; merges stay within it.
          if (s.length > 1) expect(msgs.length).toBeLessThanOrEqual(max);
          for (const m of msgs) got.push(Number(m.payload.toString()));
          stamps.push(...s);
        });
        let n = 0;
        sizes.forEach((size, i) => {
          c.add(Array.from({ length: size }, () => msg('t:A', n++)), i);
          if (flushes[i]) c.flush();
        });
        c.flush();
        expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
        expect(stamps).toEqual(sizes.map((_, i) => i));
      }),
    );
  });
});
