// Server-side pings and the idle timeout (issue 16, abuse limits): a raw socket that never
// answers pings is cut off, a connection that holds no channel is closed with 4009, each counted
// by reason; a well-behaved client (it pongs, it subscribes) is never touched.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { Op, RawConn, json } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed, metricSumWith, metrics } from './support/witness.js';

const PING_MS = 400;
const IDLE_MS = 1500;

describe('liveness: pings and idle timeout', () => {
  let srv: RunningServer;
  let witness: TestClient;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '1', FEED_RATE: '20', WS_PING_INTERVAL_MS: String(PING_MS), WS_IDLE_TIMEOUT_MS: String(IDLE_MS) } });
    witness = await connectWitness(srv);
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });
  const closes = async (reason: string) => metricSumWith(await metrics(srv), 'odin_ws_client_closes_total', `reason="${reason}"`);

  it('reaps a raw socket that never answers pings, and keeps a client that does', async () => {
    const dead = await RawConn.open(srv.port);
    dead.send(json({ op: 'subscribe', channels: ['trades:ODIN2'], id: 1 })); // not idle: only the pings matter
    await until(() => dead.reader.frames.some((f) => f.opcode === Op.PING), 'the server pings');
    await until(() => dead.isClosed, 'the server cuts off the socket that never pongs', 10_000);
    expect(await closes('ping_timeout')).toBe(1);
    // The witness (a ws client: it answers pings) lived through many ping periods.
    expect(witness.closeCode).toBeNull();
    await until(async () => (await getHealth(srv.healthUrl)).body.system.total_connections === 1, 'only the witness left');
    await expectWitnessServed(srv, witness);
  });

  it('closes a connection that never subscribes with 4009, and not one that does', async () => {
    const idle = await TestClient.connect(srv.wsUrl);
    const busy = await TestClient.connect(srv.wsUrl);
    await busy.subscribe(['prices:ODIN1']);
    expect(await Promise.race([idle.closed, new Promise((r) => setTimeout(() => r('still open'), IDLE_MS * 5))])).toBe(4009);
    expect(await closes('idle')).toBe(1);
    expect(busy.closeCode).toBeNull();
    // Unsubscribing from everything starts the idle clock again.
    await busy.request({ op: 'unsubscribe', channels: ['prices:ODIN1'] });
    expect(await Promise.race([busy.closed, new Promise((r) => setTimeout(() => r('still open'), IDLE_MS * 5))])).toBe(4009);
    expect(await closes('idle')).toBe(2);
    await expectWitnessServed(srv, witness);
  });
});
