// Process faults under load: a shard SIGKILLed while it fans out is restarted and the other
// shards' clients never notice; SIGTERM to the front while every client is receiving closes each
// one with 1001 and the front exits 0. (The broker restart fault lives in the Kafka suites.)
import { describe, expect, it } from 'vitest';
import { TestClient, assertNoGaps } from '../support/client.js';
import { getHealth, startServer, until } from '../support/server.js';
import { expectWitnessServed } from './support/witness.js';

const LOAD = { FEED_RATE: '40', FEED_PAYLOAD_BYTES: '512', WS_CPU_LIMIT: '1000' };

async function connectMany(url: string, n: number, channels: (i: number) => string[]): Promise<TestClient[]> {
  const out: TestClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await TestClient.connect(url);
    await c.subscribe(channels(i));
    out.push(c);
  }
  return out;
}

describe('faults under load', () => {
  it('restarts a SIGKILLed shard; the other shards and their clients are untouched', async () => {
    const srv = await startServer({ env: { ...LOAD, WS_SHARDS: '3' } });
    const clients: TestClient[] = [];
    try {
      clients.push(...(await connectMany(srv.wsUrl, 60, (i) => (i % 2 ? ['trades:*'] : ['prices:ODIN1', 'trades:ODIN2']))));
      await until(() => clients.every((c) => c.messages.length >= 10), 'every client receiving');
      const before = (await until(async () => {
        const { body } = await getHealth(srv.healthUrl);
        return body.system.total_connections === 60 ? body : null;
      }, 'all counted')) as { shards: Array<{ pid: number; connections: number; restarts: number }> };
      const victim = before.shards[1];
      // The kernel spreads connections by hash; the admission ledger keeps shards near the mean.
      expect(Math.abs(victim.connections - 20)).toBeLessThanOrEqual(4);

      process.kill(victim.pid, 'SIGKILL');
      // Exactly the victim's clients lose their connection (1006: no close frame from a dead process).
      await until(() => clients.filter((c) => c.closeCode !== null).length >= victim.connections, "the victim's clients closed");
      const lost = clients.filter((c) => c.closeCode !== null);
      const kept = clients.filter((c) => c.closeCode === null);
      expect(lost.map((c) => c.closeCode)).toEqual(Array(victim.connections).fill(1006));

      const after = await until(async () => {
        const { body } = await getHealth(srv.healthUrl);
        const s = body.shards[1];
        return s.up && s.restarts === 1 && s.pid !== victim.pid ? body : null;
      }, 'shard 1 restarted');
      expect(after.shards.map((s: { pid: number }) => s.pid)).toEqual([before.shards[0].pid, after.shards[1].pid, before.shards[2].pid]);
      expect(after.shards[0].restarts + after.shards[2].restarts).toBe(0);
      expect(after.system.total_connections).toBe(60 - victim.connections);

      const marks = kept.map((c) => c.messages.length);
      await until(() => kept.every((c, i) => c.messages.length >= marks[i] + 20), 'the other shards keep delivering');
      for (const c of kept) expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });

      // The restarted shard is the least loaded: it takes the next clients and serves them.
      const fresh = await connectMany(srv.wsUrl, 3, () => ['trades:ODIN3']);
      clients.push(...fresh);
      await until(() => fresh.every((c) => c.messages.length >= 5), 'restarted shard serves');
      expect((await getHealth(srv.healthUrl)).body.shards[1].connections).toBe(3);
      await expectWitnessServed(srv, kept[0]);
    } finally {
      for (const c of clients) c.close();
      await srv.stop();
    }
  });

  it('on SIGTERM under load closes every client with 1001 and exits 0', async () => {
    const srv = await startServer({ env: { ...LOAD, WS_SHARDS: '2', WS_DRAIN_TIMEOUT_MS: '8000' } });
    const clients = await connectMany(srv.wsUrl, 120, (i) => (i % 3 ? ['trades:*', 'prices:*'] : ['prices:ODIN4']));
    await until(() => clients.every((c) => c.messages.length >= 10), 'every client receiving');
    // Still under load when the signal lands: deliveries continue right up to it.
    const marks = clients.map((c) => c.messages.length);
    await until(() => clients.every((c, i) => c.messages.length > marks[i]), 'deliveries in flight');

    const exit = srv.stop(); // SIGTERM
    const codes = await Promise.all(clients.map((c) => c.closed));
    expect(codes).toEqual(Array(clients.length).fill(1001));
    expect(await exit).toBe(0);
    // Whatever a client got before 1001 had no gap.
    for (const c of clients) expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
    // The last lines may still be in the pipe when 'exit' fires.
    await until(() => srv.logs.some((l) => l.msg === 'stopped'), "the front's 'stopped' line");
    expect(srv.logs.map((l) => l.msg)).toContain('draining');
  });
});
