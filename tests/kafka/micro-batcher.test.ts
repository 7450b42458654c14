// The micro-batcher on its own: size and timer flushes, and which groups learn of a failed flush.
import { describe, expect, it } from 'vitest';
import { createMicroBatcher } from '../../app/kafka/micro-batcher.js';

describe('micro-batcher', () => {
  it('flushes synchronously when a batch is full and never hands on more than maxSize', () => {
    const batches: number[][] = [];
    const b = createMicroBatcher<number>({ maxSize: 3, maxDelayMs: 60_000, sink: (x) => void batches.push(x) });
    const g = b.group();
    for (let i = 0; i < 7; i++) g.push(i);
    expect(batches).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    expect(b.pending).toBe(1);
    b.stop();
    expect(batches[2]).toEqual([6]);
  });

  it('flushes a partial batch on the timer and only then settles the group', async () => {
    const batches: string[][] = [];
    const b = createMicroBatcher<string>({ maxSize: 50, maxDelayMs: 5, sink: (x) => void batches.push(x) });
    const g = b.group();
    g.push('a');
    g.push('b');
    expect(batches).toEqual([]);
    await g.done();
    expect(batches).toEqual([['a', 'b']]);
    await b.group().done(); // an empty group is done at once
  });

  it('merges groups into one batch and rejects only the groups whose items the sink refused', async () => {
    const seen: string[][] = [];
    let refuse = true;
    const b = createMicroBatcher<string>({
      maxSize: 3,
      maxDelayMs: 60_000,
      sink: (x) => {
        seen.push(x);
        if (refuse) {
          refuse = false;
          throw new Error('refused');
        }
      },
    });
    const p1 = b.group();
    const p2 = b.group();
    const p3 = b.group();
    p1.push('p1-a');
    p2.push('p2-a');
    p1.push('p1-b'); // full: [p1-a, p2-a, p1-b] is refused
    p1.push('p1-c');
    p3.push('p3-a');
    b.flush(); // [p1-c, p3-a] is accepted
    await expect(p1.done()).rejects.toThrow('refused');
    await expect(p2.done()).rejects.toThrow('refused');
    await expect(p3.done()).resolves.toBeUndefined();
    expect(seen).toEqual([
      ['p1-a', 'p2-a', 'p1-b'],
      ['p1-c', 'p3-a'],
    ]);
  });
});
