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

describe('micro-batcher, adaptive', () => {
  const turn = () => new Promise((r) => setImmediate(r));

  it('hands on a lone item at the end of the turn even with a 10 s timeout', async () => {
    const batches: string[][] = [];
    const b = createMicroBatcher<string>({ maxSize: 50, maxDelayMs: 10_000, sink: (x) => void batches.push(x) });
    const g = b.group();
    g.push('a');
    g.push('b'); // same turn: joins
    expect(batches).toEqual([]);
    await g.done();
    expect(batches).toEqual([['a', 'b']]);
    b.stop();
  }, 5_000);

  it('fills batches to maxSize while arrivals are dense', async () => {
    const batches: number[][] = [];
    const b = createMicroBatcher<number>({ maxSize: 50, maxDelayMs: 10_000, sink: (x) => void batches.push(x) });
    b.group().push(-1);
    await turn(); // the lone one went out
    for (let i = 0; i < 520; i++) {
      b.group().push(i); // one item per group, spread over many turns, as partitions arrive
      if (i % 7 === 0) await turn();
    }
    expect(batches.map((x) => x.length)).toEqual([1, ...Array(10).fill(50)]);
    expect(b.pending).toBe(20); // waiting for the window's end or a full batch
    b.stop();
    expect(batches.at(-1)).toHaveLength(20);
  }, 5_000);
});
