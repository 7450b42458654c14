// Replies count against the slow-consumer cap (issue 17, item 2): 10 raw clients that never read
// and keep the shard writing replies (pongs, RATE_LIMITED, BAD_CHANNEL) are closed, counted, and
// the shard's memory stays bounded; a witness on the same shard keeps its channel in order.
//
// Two ways to keep a shard writing: faster than the rate limit (closed 1008 once the decaying
// strike count passes its bound; it used to reset on every accepted frame, so a client at 3x the
// limit was never closed), and within it (closed 4008 once its unread replies pass
// WS_CLIENT_BUFFER_BYTES; replies used to bypass the cap).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { RawConn, json, text } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed, metricSumWith, metrics } from './support/witness.js';

const CLIENTS = 10;
/** Shard RSS may grow by at most this over its baseline while the flood runs. */
const RSS_BOUND_MB = 150; // measured: +63..78 MB at the peak (V8 heap from parsing the flood), flat after the closes

interface Flood {
  stop(): void;
}

/** Writes `frame()` `perTick` times every 10 ms to a socket it never reads, until it goes. */
function flood(socket: net.Socket, frame: () => Buffer, perTick: number): Flood {
  const timer = setInterval(() => {
    if (socket.destroyed) return clearInterval(timer);
    if (socket.writableLength > 1 << 20) return; // the server stopped reading us: don't grow here
    socket.write(Buffer.concat(Array.from({ length: perTick }, frame)));
  }, 10);
  socket.on('error', () => {});
  return { stop: () => clearInterval(timer) };
}

async function run(env: Record<string, string>, frame: () => Buffer, perTick: number, reason: string) {
  const srv = await startServer({ env: { WS_SHARDS: '1', FEED_RATE: '20', ...env } });
  const cleanup: Array<() => void> = [];
  try {
    const witness: TestClient = await connectWitness(srv);
    cleanup.push(() => witness.close());
    await until(async () => (await getHealth(srv.healthUrl)).body.shards[0].rss_mb > 0, 'shard stats');
    const baseline = (await getHealth(srv.healthUrl)).body.shards[0].rss_mb;
    const pid = (await getHealth(srv.healthUrl)).body.shards[0].pid;
    const conns = await Promise.all(Array.from({ length: CLIENTS }, () => RawConn.open(srv.port)));
    for (const c of conns) {
      c.socket.pause(); // never read: the shard's replies pile up in the kernel, then in the shard
      const f = flood(c.socket, frame, perTick);
      cleanup.push(() => (f.stop(), c.destroy()));
    }
    let peak = baseline;
    const h = await until(async () => {
      const { body } = await getHealth(srv.healthUrl);
      peak = Math.max(peak, body.shards[0].rss_mb);
      return body.system.total_connections === 1 ? body : null;
    }, `all ${CLIENTS} flooding clients closed`, 30_000, 200);
    expect(h.shards[0]).toMatchObject({ pid, restarts: 0 });
    expect(metricSumWith(await metrics(srv), 'odin_ws_client_closes_total', `reason="${reason}"`)).toBe(CLIENTS);
    expect(peak - baseline).toBeLessThan(RSS_BOUND_MB);
    await expectWitnessServed(srv, witness);
    return { baseline, peak };
  } finally {
    for (const f of cleanup) f();
    await srv.stop();
  }
}

describe('reply flood from clients that never read', () => {
  it('closes clients that keep sending faster than the limit with 1008, however they interleave', async () => {
    // 3 frames per 10 ms = 300/s against a limit of 100/s: pings and invalid frames mixed.
    let i = 0;
    const frame = () => (i++ % 2 ? json({ op: 'ping', id: i }) : text('not json'));
    await run({ WS_CLIENT_OPS_PER_SEC: '100' }, frame, 3, 'rate_limit');
  });

  it('closes clients within the limit whose unread replies pass the cap with 4008', async () => {
    // Each refusal lists 10 bad channels of 100 chars: ~1.1 KB of reply per request.
    const bad = Array.from({ length: 10 }, (_, k) => `nope:${String(k).padStart(95, 'x')}`);
    const frame = () => json({ op: 'subscribe', channels: bad, id: 'x'.repeat(64) });
    await run({ WS_CLIENT_OPS_PER_SEC: '100000', WS_CLIENT_BUFFER_BYTES: '65536' }, frame, 20, 'slow');
  });
});
