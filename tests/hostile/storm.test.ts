// Connection storms: thousands of connects and disconnects below capacity are all served and
// leave no connection counted behind; above capacity every attempt is refused with 503 +
// Retry-After while the established clients keep receiving with no gap.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, assertNoGaps } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { storm } from './support/storm.js';
import { connectWitness, expectWitnessServed } from './support/witness.js';

// Capacity here is the connection limit: the CPU guard is set out of reach so a 2-core test
// machine running both sides of the storm does not turn "below capacity" into "at capacity".
const NO_CPU_GUARD = { WS_CPU_LIMIT: '1000' };

describe('connection storm below capacity', () => {
  let srv: RunningServer;
  let witness: TestClient;
  beforeAll(async () => {
    srv = await startServer({ env: { ...NO_CPU_GUARD, WS_SHARDS: '2', FEED_RATE: '20', WS_MAX_CONNECTIONS: '2000' } });
    witness = await connectWitness(srv);
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });

  it('serves 3,000 connects/disconnects of every kind and counts none of them afterwards', async () => {
    const r = await storm(srv.wsUrl, { total: 3000, concurrency: 64, kinds: ['ping-close', 'ping-drop', 'open-close', 'abandon'] });
    expect(r.failures).toEqual([]);
    expect(r.refused).toEqual({});
    expect(r.served).toBe(2250); // three kinds in four are WebSocket clients; each one was served
    expect(r.abandoned).toBe(750);

    const h = await until(async () => {
      const { body } = await getHealth(srv.healthUrl);
      return body.system.total_connections === 1 && body.shards.every((s: { connections: number }) => s.connections <= 1) ? body : null;
    }, 'every storm connection uncounted again');
    expect(h.system.rejected).toBe(0);
    expect(h.shards.map((s: { restarts: number }) => s.restarts)).toEqual([0, 0]);
    await expectWitnessServed(srv, witness);
  });
});

describe('connection storm above capacity', () => {
  const CAP = 60;
  let srv: RunningServer;
  let witness: TestClient;
  const holders: TestClient[] = [];
  beforeAll(async () => {
    srv = await startServer({ env: { ...NO_CPU_GUARD, WS_SHARDS: '2', FEED_RATE: '20', WS_MAX_CONNECTIONS: String(CAP), WS_RETRY_AFTER_S: '9' } });
    witness = await connectWitness(srv);
    for (let i = 1; i < CAP; i++) {
      const c = await TestClient.connect(srv.wsUrl);
      await c.subscribe([i % 2 ? 'prices:ODIN2' : 'trades:ODIN3']);
      holders.push(c);
    }
  });
  afterAll(async () => {
    for (const c of holders) c.close();
    witness?.close();
    await srv?.stop();
  });

  it('refuses 1,500 attempts with 503 + Retry-After while the established clients keep receiving', async () => {
    const marks = holders.map((c) => c.messages.length);
    const r = await storm(srv.wsUrl, { total: 1500, concurrency: 64, kinds: ['ping-close', 'abandon'] });
    expect(r.failures).toEqual([]);
    expect(r.served).toBe(0);
    expect(r.refused).toEqual({ 503: 750 });
    expect([...r.retryAfter]).toEqual(['9']);

    const { body } = await getHealth(srv.healthUrl);
    expect(body.system.total_connections).toBe(CAP);
    // Abandoned attempts may be refused before or after the client went away; all are counted.
    expect(body.system.rejected_by_reason.max_connections).toBeGreaterThanOrEqual(750);
    expect(body.system.rejected_by_reason.max_connections).toBeLessThanOrEqual(1500);
    await until(() => holders.every((c, i) => c.messages.length >= marks[i] + 5), 'every established client still receiving');
    for (const c of holders) {
      expect(c.closeCode).toBeNull();
      expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
    }
    await expectWitnessServed(srv, witness);

    // Capacity freed is capacity usable again.
    holders.pop()!.close();
    await until(async () => (await getHealth(srv.healthUrl)).body.system.total_connections === CAP - 1, 'slot freed');
    const again = await TestClient.connect(srv.wsUrl);
    expect((await again.request({ op: 'ping' })).op).toBe('pong');
    holders.push(again);
  });

  it('admits a client as soon as /health shows a slot freed at the maximum (no refusal in between)', async () => {
    const refused: number[] = [];
    for (let i = 0; i < 25; i++) {
      holders.shift()!.close();
      // Polled without pause: the first answer showing the room comes right after the report.
      await until(async () => (await getHealth(srv.healthUrl)).body.system.total_connections === CAP - 1, 'slot freed', 15_000, 0);
      try {
        holders.push(await TestClient.connect(srv.wsUrl));
      } catch {
        refused.push(i);
        await until(() => TestClient.connect(srv.wsUrl).then((c) => holders.push(c)), 'admitted in the end');
      }
    }
    expect(refused).toEqual([]);
  });
});
