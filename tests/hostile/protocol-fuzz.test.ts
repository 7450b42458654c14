// Well-formed JSON of the wrong types at every op and field (issue 16): no frame may restart a
// shard or cut off anyone but its sender. Runs against a real 2-shard server: a fuzzing client
// and a witness on EACH shard; every frame must get exactly one well-formed reply, the fuzzing
// connections must stay open (no 1011), and the witnesses keep their channel in seq order.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../app/common/errors.js';
import { TestClient } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { CRASH_FRAMES, LENGTH_FRAMES, hostileFrame } from './support/hostile-json.js';
import { clientsOnEveryShard } from './support/placement.js';
import { expectWitnessServed, metricSum, metrics } from './support/witness.js';

const REPLY_OPS = new Set(['subscribed', 'unsubscribed', 'pong', 'error']);
const CODES = new Set<string>(Object.values(ErrorCode));

describe('protocol fuzz', () => {
  let srv: RunningServer;
  let witnesses: TestClient[] = [];
  let fuzzers: TestClient[] = [];
  let pids: number[];
  beforeAll(async () => {
    // No rate limit in the way: every fuzzed frame is parsed and answered.
    srv = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '20', WS_CLIENT_OPS_PER_SEC: '100000' } });
    // A witness and a fuzzer on each shard.
    const placed = await clientsOnEveryShard(srv, 2);
    witnesses = placed.map((p) => p[0]);
    fuzzers = placed.map((p) => p[1]);
    for (const [i, w] of witnesses.entries()) {
      expect((await w.subscribe([i ? 'prices:ODIN2' : 'trades:ODIN1'])).op).toBe('subscribed');
      await until(() => w.messages.length >= 2, 'witness receives');
    }
    pids = (await getHealth(srv.healthUrl)).body.shards.map((s: any) => s.pid);
  });
  afterAll(async () => {
    for (const c of [...witnesses, ...fuzzers]) c.close();
    await srv?.stop();
  });

  let sync = 0;
  /** Sends the frames, then a ping; resolves with the replies up to (not including) its pong. */
  async function exchange(c: TestClient, frames: readonly string[]): Promise<Array<Record<string, unknown>>> {
    const from = c.replies.length;
    for (const f of frames) c.ws.send(f);
    const id = `sync-${++sync}`;
    c.ws.send(JSON.stringify({ op: 'ping', id }));
    // Bounded, and the failure names only the frames (a dump of every reply helps nobody).
    await until(() => c.replies.some((r) => r.op === 'pong' && r.id === id) || c.closeCode !== null, `pong after ${JSON.stringify(frames).slice(0, 2000)}`, 10_000, 5);
    expect(c.closeCode, `closed after ${JSON.stringify(frames).slice(0, 2000)}`).toBeNull();
    const got = c.replies.slice(from);
    return got.slice(0, got.findIndex((r) => r.op === 'pong' && r.id === id));
  }

  function expectWellFormed(replies: Array<Record<string, unknown>>, frames: readonly string[]): void {
    expect(replies.length, `one reply per frame for ${JSON.stringify(frames)}`).toBe(frames.length);
    for (const r of replies) {
      expect(REPLY_OPS.has(r.op as string), JSON.stringify(r)).toBe(true);
      if (r.op === 'error') expect(CODES.has(r.code as string), JSON.stringify(r)).toBe(true);
      if (r.id !== undefined) expect(['number', 'string']).toContain(typeof r.id);
    }
  }

  async function expectShardsUnharmed(): Promise<void> {
    const h = (await getHealth(srv.healthUrl)).body;
    expect(h.shards.map((s: any) => ({ pid: s.pid, restarts: s.restarts, up: s.up }))).toEqual(pids.map((pid) => ({ pid, restarts: 0, up: true })));
    for (const f of fuzzers) expect(f.closeCode).toBeNull();
    for (const w of witnesses) await expectWitnessServed(srv, w, 3);
  }

  it('answers the frames that used to kill a shard with BAD_CHANNEL, listing them by type', async () => {
    for (const f of fuzzers) {
      const replies = await exchange(f, CRASH_FRAMES);
      expect(replies.map((r) => r.code)).toEqual(CRASH_FRAMES.map(() => 'BAD_CHANNEL'));
      expect(replies.map((r) => r.channels)).toEqual([['<object>'], ['<array>'], ['<object>'], ['<object>']]);
    }
    // Strings among the bad channels are listed as sent; the valid ones are not listed.
    const [r] = await exchange(fuzzers[0], ['{"op":"subscribe","channels":["trades:ODIN1","nope:X",7,null,"trades:"],"id":"x"}']);
    expect(r).toMatchObject({ op: 'error', code: 'BAD_CHANNEL', id: 'x', channels: ['nope:X', '<number>', '<null>', 'trades:'] });
    await expectShardsUnharmed();
  });

  it('answers objects with a hostile `length` where a string or array is expected', async () => {
    const replies = await exchange(fuzzers[0], LENGTH_FRAMES);
    expect(replies.map((r) => [r.code, r.id])).toEqual([['BAD_REQUEST', undefined], ['BAD_CHANNEL', 1], ['BAD_CHANNEL', 2]]);
    await expectShardsUnharmed();
  });

  it('survives arbitrary JSON values, wrong types and hostile objects in every op and field', async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(hostileFrame, { minLength: 1, maxLength: 12 }), async (frames) => {
        runs++;
        for (const f of fuzzers) expectWellFormed(await exchange(f, frames), frames);
      }),
      { numRuns: 300, interruptAfterTimeLimit: 25_000, endOnFailure: true },
    );
    expect(runs).toBeGreaterThan(20);
    expect(metricSum(await metrics(srv), 'odin_ws_client_closes_total')).toBe(0);
    await expectShardsUnharmed();
  });
});
