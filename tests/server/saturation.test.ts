// Admission by measured saturation: every shard's event loop is held up (SIGSTOP, as a runaway
// task or a long GC pause would), so each one's next second-long sample sees the delay. New
// upgrades are then refused at once with 503 + Retry-After and counted as `saturated`; the client
// already connected keeps receiving in order; once the loops are back, upgrades are admitted again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TestClient, assertNoGaps } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One upgrade attempt: 'open', or the HTTP status and Retry-After of its refusal. */
function attempt(url: string): Promise<{ status: number; retryAfter?: string; body?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body }));
    });
    ws.once('error', () => resolve({ status: 0 }));
  });
}

describe('saturation admission', () => {
  let srv: RunningServer;
  let witness: TestClient;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '20', WS_SATURATION_LAG_MS: '100', WS_SHARD_LIVENESS_MS: '10000' } });
    witness = await TestClient.connect(srv.wsUrl);
    await witness.subscribe(['trades:ODIN1']);
    // Past every shard's first stats sample (its start-up second is not judged): 20 msg/s x 1.5 s.
    await until(() => witness.messages.length >= 30, 'the witness receives for a while');
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });

  it('refuses upgrades with 503 saturated while the loops are behind, keeps the admitted client, then admits again', async () => {
    const { body: h0 } = await getHealth(srv.healthUrl);
    expect(h0.system.saturated_shards).toBe(0);
    const pids: number[] = h0.shards.map((s: { pid: number }) => s.pid);
    for (const p of pids) process.kill(p, 'SIGSTOP');
    await sleep(1200); // longer than the shards' 1 s sampling period: every sample after it is late
    for (const p of pids) process.kill(p, 'SIGCONT');
    // Each shard's next sample (within its 1 s interval) sees the stall: try until one refusal.
    let refused: Awaited<ReturnType<typeof attempt>> | null = null;
    const end = Date.now() + 5000;
    while (!refused && Date.now() < end) {
      const r = await attempt(srv.wsUrl);
      if (r.status === 503) refused = r;
      else await sleep(20);
    }
    expect(refused).not.toBeNull();
    expect(refused!.retryAfter).toMatch(/^\d+$/);
    expect(JSON.parse(refused!.body!)).toMatchObject({ reason: 'saturated' });
    // The loops are idle again: the next samples clear the verdict and upgrades go through.
    await until(async () => (await attempt(srv.wsUrl)).status === 101, 'admitted again', 10_000, 200);
    const { body: h1 } = await getHealth(srv.healthUrl);
    expect(h1.system.rejected_by_reason.saturated).toBeGreaterThanOrEqual(1);
    expect(h1.system.saturation_lag_ms).toBe(100);
    const before = witness.messages.length;
    await until(() => witness.messages.length > before + 3, 'the witness still receives');
    expect(assertNoGaps(witness.messages)).toEqual({ gaps: 0, dups: 0 });
    expect(witness.closeCode).toBeNull();
  });
});

// Probation: load that arrives after admission cannot be refused at the handshake, so while a
// shard's fan-out is more than it can carry it closes the newest clients it admitted within the
// probation window (1013 with a reconnect hint); a client it has served longer is never shed, and
// a shard that is only stalled (not fanning out) sheds nobody.
describe('saturation probation', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    // A lag limit far below what a shard takes to write a bus batch to 3,000 clients, so the
    // fan-out is over it as soon as the load is there; the probation window outlasts the test.
    srv = await startServer({
      env: { WS_SHARDS: '1', FEED_RATE: '200', WS_SATURATION_LAG_MS: '10', WS_SATURATION_PROBATION_MS: '60000', WS_SHARD_LIVENESS_MS: '10000', WS_RETRY_AFTER_S: '7' },
    });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  const overloadCloses = async () => {
    const metrics = await (await fetch(srv.metricsUrl)).text();
    return Number(/^odin_ws_client_closes_total\{[^}]*reason="overload"[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? 0);
  };

  it('a stalled shard refuses upgrades but sheds nobody: its fan-out is not what held it back', async () => {
    const c = await TestClient.connect(srv.wsUrl);
    await c.subscribe(['trades:ODIN1']);
    await until(() => c.messages.length >= 300, 'receiving past the shard\'s start-up second'); // 200 msg/s
    const { body: h0 } = await getHealth(srv.healthUrl);
    process.kill(h0.shards[0].pid, 'SIGSTOP');
    await sleep(1200);
    process.kill(h0.shards[0].pid, 'SIGCONT');
    await until(() => srv.logs.some((l) => l.msg === 'saturated: refusing new upgrades'), 'the stall seen');
    await until(() => srv.logs.some((l) => l.msg === 'no longer saturated'), 'the stall over', 10_000);
    expect(c.closeCode).toBeNull();
    expect(await overloadCloses()).toBe(0);
    const { body: h1 } = await getHealth(srv.healthUrl);
    expect(h1.shards[0].ceiling).toBeNull(); // no cut taken
    expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
    c.close();
  });

  it('sheds the newest clients on probation with 1013 when its fan-out is behind, never the one past probation', async () => {
    const veteran = await TestClient.connect(srv.wsUrl);
    await veteran.subscribe(['trades:ODIN1']);
    // Past probation (60 s) is too long to wait: the veteran is the one the shard has served
    // longest, so it is the last a newest-first shed could reach. The load arrives after
    // admission, as it does in production: idle clients connect (nothing to refuse), then all
    // subscribe at once, and the shard's writes to them take more than its lag limit.
    const load: WebSocket[] = [];
    const codes = new Map<WebSocket, number>();
    const deadline = Date.now() + 30_000;
    while (load.length < 3000 && Date.now() < deadline) {
      const ws = await openIdle(srv.wsUrl).catch(() => null);
      if (!ws) {
        await sleep(100); // refused: a GC pause over the tight limit, say; it clears within a second
        continue;
      }
      ws.once('close', (code) => codes.set(ws, code));
      load.push(ws);
    }
    expect(load.length).toBe(3000);
    for (const ws of load) subscribeMuted(ws, ['trades:ODIN1']);
    const shedLine = await until(() => srv.logs.find((l) => l.msg === 'saturated: shed the newest clients on probation (1013)'), 'a shed', 20_000);
    expect(shedLine.fanout_share).toBeGreaterThan(0.5); // it cut for its fan-out, as measured
    // The decision is in /health: the ceiling the cut set, and the share that led to it.
    const shard = await until(async () => {
      const s = (await getHealth(srv.healthUrl)).body.shards[0];
      return s.ceiling !== null && s;
    }, 'the ceiling in /health');
    expect(shard.ceiling).toBeLessThan(load.length + 1);
    expect(shard.fanout_share).toBeGreaterThan(0);
    // Read what the muted clients were sent: the shed ones get their 1013.
    for (const ws of load) (ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const shedCount = await until(async () => {
      const n = await overloadCloses();
      return n > 0 && [...codes.values()].filter((c) => c === 1013).length === n && n;
    }, 'every shed seen by its client and counted once', 20_000);
    expect(shedCount).toBeGreaterThan(0);
    // Newest first: the clients shed are the last ones admitted.
    const firstShed = load.findIndex((ws) => codes.get(ws) === 1013);
    expect(firstShed).toBeGreaterThan(0);
    expect(load.slice(firstShed).every((ws) => codes.get(ws) === 1013)).toBe(true);
    const before = veteran.messages.length;
    await until(() => veteran.messages.length > before + 3, 'the veteran still receives');
    expect(veteran.closeCode).toBeNull();
    expect(assertNoGaps(veteran.messages)).toEqual({ gaps: 0, dups: 0 });
    veteran.close();
    for (const ws of load) ws.terminate();
  });
});

async function openIdle(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', () => reject(new Error('refused')));
    ws.once('error', reject);
  });
  return ws;
}

/** Subscribes, then stops reading: load on the shard's writes, none on the test's CPU. */
function subscribeMuted(ws: WebSocket, channels: string[]): void {
  ws.send(JSON.stringify({ op: 'subscribe', channels, id: 1 }));
  (ws as unknown as { _socket: { pause(): void } })._socket.pause();
}
