import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, assertNoGaps } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';

describe('sharded fan-out on the embedded feed', () => {
  let srv: RunningServer;
  const clients: TestClient[] = [];
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '3', FEED_RATE: '20', FEED_TOKENS: 'AAA,BBB,CCC' } });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await srv?.stop();
  });

  it('spreads sequential connections over the shards near the mean (SO_REUSEPORT + relays)', async () => {
    const n = 150;
    for (let i = 0; i < n; i++) clients.push(await TestClient.connect(srv.wsUrl));
    const h = await until(async () => {
      const { body } = await getHealth(srv.healthUrl);
      return body.system.total_connections === n ? body : null;
    }, 'all connections counted');
    const counts = h.shards.map((s: { connections: number }) => s.connections);
    expect(counts).toHaveLength(3);
    expect(counts.reduce((a: number, b: number) => a + b, 0)).toBe(n);
    // The kernel hashes connections over the shards; a shard above the mean by more than the
    // tolerance (max(2, 1% of the mean)) relays new ones. The front sees a shard's count through
    // its reports (at most every 5 ms) and answers within 2 ms: connections that land in that lag
    // are not balanced yet. Measured on a quiet machine, 20 runs of this test's 150 sequential
    // connects: largest deviation 0-4 (median 2); under the suite's parallel load, 5 once. Hence
    // the tolerance plus 4: a shard twice that far out means the balance is not working.
    for (const c of counts) expect(Math.abs(c - n / 3)).toBeLessThanOrEqual(6);
    expect(h.mode).toBe('multi');
    expect(h.system.source).toBe('embedded');
  });

  it('delivers each subscribed channel in seq order with no gap, and nothing else', async () => {
    const [exact, wild, both, other] = clients;
    expect((await exact.subscribe(['trades:AAA'])).op).toBe('subscribed');
    expect((await wild.subscribe(['prices:*'])).channels).toEqual(['prices:*']);
    await both.subscribe(['trades:BBB', 'trades:*']);
    await other.subscribe(['prices:CCC']);

    await until(() => [exact, wild, both, other].every((c) => c.messages.length >= 40), 'messages on every client', 20_000);

    expect(new Set(exact.messages.map((m) => m.channel))).toEqual(new Set(['trades:AAA']));
    expect(new Set(wild.messages.map((m) => m.channel))).toEqual(new Set(['prices:AAA', 'prices:BBB', 'prices:CCC']));
    expect(new Set(other.messages.map((m) => m.channel))).toEqual(new Set(['prices:CCC']));
    // trades:BBB arrives once even though both subscriptions match it.
    expect(new Set(both.messages.map((m) => m.channel))).toEqual(new Set(['trades:AAA', 'trades:BBB', 'trades:CCC']));
    for (const c of [exact, wild, both, other]) expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });

    const m = exact.messages[0];
    expect(typeof m.ts).toBe('number');
    expect(m.data).toHaveProperty('price');
    // Messages of one tick arrive coalesced: a wildcard subscriber gets arrays.
    expect(wild.frames).toBeLessThan(wild.messages.length);
  });

  it('stops delivering after unsubscribe and answers ping', async () => {
    const c = clients[0];
    expect((await c.request({ op: 'unsubscribe', channels: ['trades:AAA'] })).op).toBe('unsubscribed');
    const pong = await c.request({ op: 'ping' });
    expect(pong.op).toBe('pong');
    const before = c.messages.length;
    // The feed ticks every 50 ms; two pings later nothing new may have arrived.
    await c.request({ op: 'ping' });
    await new Promise((r) => setTimeout(r, 300));
    expect(c.messages.length).toBe(before);
  });

  it('sends bus traffic only to shards with a subscriber (targeted dispatch)', async () => {
    // A fresh server: three clients (wherever the kernel puts them); only the first subscribes.
    const s = await startServer({ env: { WS_SHARDS: '3', FEED_RATE: '20' } });
    try {
      const cs = [await TestClient.connect(s.wsUrl), await TestClient.connect(s.wsUrl), await TestClient.connect(s.wsUrl)];
      await cs[0].subscribe(['trades:ODIN1']);
      await until(() => cs[0].messages.length >= 10, 'deliveries to the subscriber');
      const { body } = await until(async () => {
        const h = await getHealth(s.healthUrl);
        return h.body.shards.some((x: { bus_messages: number }) => x.bus_messages >= 10) ? h : null;
      }, 'shard stats');
      const shards = body.shards as Array<{ connections: number; bus_messages: number }>;
      expect(shards.reduce((a, x) => a + x.connections, 0)).toBe(3);
      const fed = shards.filter((x) => x.bus_messages > 0);
      expect(fed).toHaveLength(1); // only the subscriber's shard gets bus traffic
      expect(fed[0].bus_messages).toBeGreaterThanOrEqual(10);
      expect(body.bus.messages).toBeGreaterThan(fed[0].bus_messages); // the feed made more than it needed
      for (const c of cs) c.close();
    } finally {
      await s.stop();
    }
  });

  it('serves aggregated Prometheus metrics from every process', async () => {
    const text = await (await fetch(srv.metricsUrl)).text();
    expect(text).toMatch(/odin_ws_deliveries_total\{shard="\d"\} [1-9]/);
    expect(text).toMatch(/odin_ws_connections\{shard="2"\} \d+/);
    expect(text).toContain('odin_ws_rejected_total');
    expect(text).toContain('odin_ws_bus_batch_size_bucket');
  });

  it('logs one start line per feature', () => {
    const msgs = srv.logs.map((l) => l.msg);
    for (const m of ['sharded mode enabled', 'broadcast batching enabled', 'resource guard enabled', 'listening']) expect(msgs).toContain(m);
    expect(msgs.some((m) => String(m).startsWith('embedded feed started'))).toBe(true);
    expect(srv.logs.find((l) => l.msg === 'broadcast batching enabled')).toMatchObject({ batch_size: 100 });
  });
});
