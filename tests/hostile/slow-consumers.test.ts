// Slow consumers under a high feed rate: a client that stops reading (or reads far slower than
// its channels produce) is closed with 4008 once its unsent bytes would pass
// WS_CLIENT_BUFFER_BYTES, is counted, and its connection and subscriptions are released, while a
// witness on the SAME shard keeps receiving with no gap.
//
// Sizing: 10 channels x 100 msg/s x ~8 KiB is ~8 MB/s for a `*` subscriber. Loopback kernel
// buffers (tcp_wmem max 4 MiB on the sender, the receiver's window) absorb a few MB before Node's
// writableLength grows at all, so a client that stops reading fills them within a second or two;
// the cap (64 KiB) is then crossed within a few ticks.
import type WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { RawConn, json } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed, metricSum, metrics } from './support/witness.js';

const ALL = ['trades:*', 'prices:*'];

describe('slow consumers', () => {
  let srv: RunningServer;
  let witness: TestClient;
  const cleanup: Array<() => void> = [];
  beforeAll(async () => {
    srv = await startServer({
      env: { WS_SHARDS: '1', FEED_RATE: '100', FEED_PAYLOAD_BYTES: '8192', WS_CLIENT_BUFFER_BYTES: '65536' },
    });
    witness = await connectWitness(srv, 'trades:ODIN1');
  });
  afterEach(() => {
    for (const f of cleanup.splice(0)) f();
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });

  const slowCount = async () => metricSum(await metrics(srv), 'odin_ws_slow_consumers_total');

  /** Only the witness is left: connection count and channels (the dropped client's are gone). */
  async function expectOnlyWitnessLeft(slowSoFar: number): Promise<void> {
    const h = await until(async () => {
      const { body } = await getHealth(srv.healthUrl);
      return body.system.total_connections === 1 && body.shards[0].channels === 1 && body.shards[0].slow_consumers === slowSoFar ? body : null;
    }, 'dropped client released and counted in /health');
    expect(h.shards[0].restarts).toBe(0);
    expect(await slowCount()).toBe(slowSoFar); // the witness was never dropped
  }

  it('drops a raw client that never reads after the upgrade', async () => {
    const c = await RawConn.open(srv.port);
    cleanup.push(() => c.destroy());
    c.socket.pause(); // from here on, nothing is read: the kernel buffers fill, then Node's
    c.send(json({ op: 'subscribe', channels: ALL, id: 1 }));
    await until(async () => (await slowCount()) === 1, 'odin_ws_slow_consumers_total reaches 1', 20_000);
    await expectOnlyWitnessLeft(1);
    await expectWitnessServed(srv, witness, 20);
  });

  it('drops a ws client whose socket is paused; it sees the close once it reads again', async () => {
    const c = await TestClient.connect(srv.wsUrl);
    cleanup.push(() => c.ws.terminate());
    await c.subscribe(ALL);
    const socket = (c.ws as WebSocket & { _socket: import('node:net').Socket })._socket;
    socket.pause();
    await until(async () => (await slowCount()) === 2, 'second slow consumer counted', 20_000);
    await expectOnlyWitnessLeft(2);
    socket.resume();
    // The server waited one grace period for progress, then cut the connection, dropping what
    // Node still held for it, close frame included: in practice 1006. (4008 if the close frame had
    // already reached the kernel's buffers.) The next test shows a client still reading gets 4008.
    expect([4008, 1006]).toContain(await c.closed);
    await expectWitnessServed(srv, witness, 20);
  });

  it('closes a client that reads too slowly with 4008, which it receives', async () => {
    const c = await TestClient.connect(srv.wsUrl);
    cleanup.push(() => c.ws.terminate());
    await c.subscribe(ALL);
    // Read at most one chunk (<= 64 KiB) per 20 ms: a few MB/s against ~8 MB/s produced.
    const socket = (c.ws as WebSocket & { _socket: import('node:net').Socket })._socket;
    socket.on('data', () => {
      socket.pause();
      setTimeout(() => socket.resume(), 20);
    });
    expect(await c.closed).toBe(4008);
    expect(c.messages.length).toBeGreaterThan(0);
    await expectOnlyWitnessLeft(3);
    await expectWitnessServed(srv, witness, 20);
  });
});
