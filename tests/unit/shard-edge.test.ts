import { describe, expect, it } from 'vitest';
import { createRequestParser, describe as describeValue } from '../../app/protocol/client-requests.js';
import { Sweeper, type Swept } from '../../app/shard/sweeper.js';

const parse = createRequestParser({ streams: new Set(['trades', 'prices']), maxChannels: 3 });

describe('client request schema', () => {
  it('accepts the three ops, echoing a numeric or string id', () => {
    expect(parse('{"op":"ping","id":3}')).toEqual({ ok: true, req: { op: 'ping', id: 3 } });
    expect(parse('{"op":"subscribe","channels":["trades:ODIN1","prices:*"],"id":"a"}')).toEqual({ ok: true, req: { op: 'subscribe', channels: ['trades:ODIN1', 'prices:*'], id: 'a' } });
    expect(parse('{"op":"unsubscribe","channels":["trades:X"]}')).toMatchObject({ ok: true, req: { op: 'unsubscribe' } });
  });

  it.each([
    ['not json', 'BAD_JSON', undefined],
    ['[1]', 'BAD_REQUEST', undefined],
    ['"ping"', 'BAD_REQUEST', undefined],
    ['null', 'BAD_REQUEST', undefined],
    ['{"op":"ping","id":1e400}', 'BAD_REQUEST', undefined],
    ['{"op":"ping","id":{"toString":1}}', 'BAD_REQUEST', undefined],
    [`{"op":"ping","id":"${'x'.repeat(65)}"}`, 'BAD_REQUEST', undefined],
    ['{"op":{"toString":1},"id":7}', 'BAD_REQUEST', 7],
    ['{"__proto__":{"op":"ping"}}', 'BAD_REQUEST', undefined],
    ['{"op":"toString","id":7}', 'UNKNOWN_OP', 7],
    ['{"op":"__proto__"}', 'UNKNOWN_OP', undefined],
    ['{"op":"subscribe","channels":"trades:ODIN1","id":1}', 'BAD_CHANNEL', 1],
    ['{"op":"subscribe","channels":[],"id":1}', 'BAD_CHANNEL', 1],
    ['{"op":"subscribe","channels":{"length":1,"0":"trades:A"}}', 'BAD_CHANNEL', undefined],
    ['{"op":"subscribe","channels":["a:1","b:2","c:3","d:4"]}', 'TOO_MANY_CHANNELS', undefined],
    // zod's length checks used to run on these, and throw
    ['{"op":"ping","id":{"length":{"toString":{}}}}', 'BAD_REQUEST', undefined],
    ['{"op":"subscribe","channels":{"length":{"toString":{}}},"id":1}', 'BAD_CHANNEL', 1],
    ['{"op":"subscribe","channels":{"length":{"valueOf":[]}},"id":1}', 'BAD_CHANNEL', 1],
  ])('%s -> %s', (text, code, id) => {
    const r = parse(text);
    expect(r).toMatchObject({ ok: false, code });
    if (!r.ok) expect(r.id).toBe(id);
  });

  it('lists bad channels by type, never by calling into them', () => {
    const r = parse('{"op":"subscribe","channels":[{"toString":1},[[{"toString":1}]],null,7,true,"nope:X","trades:ODIN1"]}');
    expect(r).toEqual({ ok: false, code: 'TOO_MANY_CHANNELS', id: undefined, detail: { limit: 3 } });
    const r2 = parse('{"op":"subscribe","channels":[{"toString":1},[[{"toString":1}]],"nope:X"]}');
    expect(r2).toMatchObject({ ok: false, code: 'BAD_CHANNEL', detail: { channels: ['<object>', '<array>', 'nope:X'] } });
    expect(describeValue('y'.repeat(500))).toHaveLength(100);
  });
});

describe('Sweeper output budget', () => {
  const holders = (sizes: number[], order: number[]): Swept[] => sizes.map((b) => ({ buffered: b, shed: () => order.push(b), sweep() {} }));
  const watched = (s: Sweeper, cs: Swept[]) => {
    for (const c of cs) s.watch(c);
    return s;
  };

  it('sheds the largest holders first, until the rest fit under 90% of the budget', () => {
    const order: number[] = [];
    const cs = holders([100, 500, 300, 50], order);
    const s = watched(new Sweeper(() => cs, { pingMs: 0, idleMs: 0, budgetBytes: 400 }), cs);
    expect(s.enforceBudget()).toBe(2); // 950 -> 450 (> 360) -> 150
    expect(order).toEqual([500, 300]);
    expect(s.buffered).toBe(950);
  });

  it('sheds nobody within the budget', () => {
    const order: number[] = [];
    const cs = holders([100, 200], order);
    const s = watched(new Sweeper(() => cs, { pingMs: 0, idleMs: 0, budgetBytes: 300 }), cs);
    expect(s.enforceBudget()).toBe(0);
    expect(order).toEqual([]);
  });

  it('looks only at clients a write left backlogged, and forgets each once its buffer is empty', () => {
    let reads = 0;
    const c = { b: 700, get buffered() { reads++; return this.b; }, shed() {}, sweep() {} };
    const idle = Array.from({ length: 1000 }, () => ({ get buffered() { reads++; return 0; }, shed() {}, sweep() {} }));
    const s = new Sweeper(() => [c, ...idle], { pingMs: 0, idleMs: 0, budgetBytes: 1 << 20 });
    s.watch(c);
    s.enforceBudget();
    expect(s.buffered).toBe(700);
    expect(reads).toBe(1); // the 1,000 idle clients cost nothing
    c.b = 0;
    s.enforceBudget();
    s.enforceBudget();
    expect(reads).toBe(2); // seen empty once, then no longer scanned
    c.b = 300;
    s.watch(c); // written to again, with bytes left queued
    s.enforceBudget();
    expect(s.buffered).toBe(300);
  });

  it('runs each client liveness check on its own period, not every budget tick', () => {
    let sweeps = 0;
    const c: Swept = { buffered: 0, shed() {}, sweep: () => void sweeps++ };
    const s = new Sweeper(() => [c], { pingMs: 1000, idleMs: 0, budgetBytes: 1 << 20 });
    const t0 = Date.now();
    s.tick(t0 + 100);
    s.tick(t0 + 200);
    expect(sweeps).toBe(0);
    s.tick(t0 + 260);
    expect(sweeps).toBe(1);
  });
});

describe('Client containment', () => {
  it('closes only the client whose frame made the handler throw, with 1011, and counts it', async () => {
    const { EventEmitter } = await import('node:events');
    const { Client } = await import('../../app/shard/client.js');
    const ws = Object.assign(new EventEmitter(), { OPEN: 1, readyState: 1, closed: [] as number[], close(code: number) { this.closed.push(code); }, terminate() {}, ping() {}, pong() {} });
    const socket = { writableLength: 0, write() { return true; } };
    const closes: string[] = [];
    const faults: unknown[] = [];
    const ctx = {
      hub: { subscribe() {}, unsubscribe() {} },
      parse: () => {
        throw new TypeError('Cannot convert object to primitive value');
      },
      maxChannels: 10,
      opsPerSec: 10,
      bufferLimit: 1 << 20,
      gate: () => null,
      onClose: (r: string) => closes.push(r),
      onError: () => {},
      onFault: (e: unknown) => faults.push(e),
      auth: null,
      expiry: { add() {}, delete() {} },
    };
    new Client(ws as never, socket as never, ctx as never, undefined);
    expect(() => ws.emit('message', Buffer.from('{"op":"ping"}'), false)).not.toThrow();
    expect(ws.closed).toEqual([1011]);
    expect(closes).toEqual(['internal_error']);
    expect(faults).toHaveLength(1);
    ws.emit('message', Buffer.from('{"op":"ping"}'), false); // a closed client ignores the rest
    expect(closes).toEqual(['internal_error']);
  });
});
