// The shard's budget for all client output buffers (issue 17, item 5): clients that stop reading
// each stay under their own cap (WS_CLIENT_BUFFER_BYTES) but together pass the shard's budget
// (WS_SHARD_BUFFER_BYTES): the largest holders are closed first with 4008, counted as `budget`,
// long before any reaches its own cap; the witness on the same shard keeps its channel.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { RawConn, json } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed, metricSumWith, metrics } from './support/witness.js';

const MiB = 1 << 20;
const HOLDERS = 3;

describe('per-shard output budget', () => {
  let srv: RunningServer;
  let witness: TestClient;
  beforeAll(async () => {
    srv = await startServer({
      env: { WS_SHARDS: '1', FEED_RATE: '100', FEED_PAYLOAD_BYTES: '8192', WS_CLIENT_BUFFER_BYTES: String(16 * MiB), WS_SHARD_BUFFER_BYTES: String(4 * MiB) },
    });
    witness = await connectWitness(srv);
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });
  const closes = async (reason: string) => metricSumWith(await metrics(srv), 'odin_ws_client_closes_total', `reason="${reason}"`);

  it('closes the largest holders with 4008 once the shard is over budget', async () => {
    const conns = await Promise.all(Array.from({ length: HOLDERS }, () => RawConn.open(srv.port)));
    try {
      for (const c of conns) {
        c.socket.pause();
        c.send(json({ op: 'subscribe', channels: ['trades:*', 'prices:*'], id: 1 }));
      }
      await until(async () => (await closes('budget')) === HOLDERS, 'every holder closed by the budget', 30_000, 200);
      expect(await closes('slow')).toBe(0); // none got near its own 16 MiB cap
      const h = await until(async () => {
        const { body } = await getHealth(srv.healthUrl);
        return body.system.total_connections === 1 ? body : null;
      }, 'holders released');
      expect(h.shards[0].restarts).toBe(0);
      expect(h.shards[0].slow_consumers).toBe(HOLDERS); // 4008 closes, whichever limit caused them
      await expectWitnessServed(srv, witness, 20);
    } finally {
      for (const c of conns) c.destroy();
    }
  });
});
