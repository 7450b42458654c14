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
// shard is over its limit it closes the newest clients it admitted within the probation window
// (1013 with a reconnect hint); a client it has served longer is never shed.
describe('saturation probation', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '1', FEED_RATE: '20', WS_SATURATION_LAG_MS: '100', WS_SATURATION_PROBATION_MS: '2000', WS_SHARD_LIVENESS_MS: '10000' } });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('sheds the newest clients on probation with 1013 while over the limit, never one past probation', async () => {
    const veteran = await TestClient.connect(srv.wsUrl);
    await veteran.subscribe(['trades:ODIN1']);
    await sleep(2300); // past its probation (and the shard's start-up second)
    const fresh: TestClient[] = [];
    const reasons = new Map<TestClient, string>();
    for (let i = 0; i < 3; i++) {
      const c = await TestClient.connect(srv.wsUrl);
      c.ws.once('close', (_code, reason) => reasons.set(c, reason.toString()));
      await c.subscribe(['trades:ODIN1']);
      fresh.push(c);
    }
    const { body: h0 } = await getHealth(srv.healthUrl);
    process.kill(h0.shards[0].pid, 'SIGSTOP');
    await sleep(1200);
    process.kill(h0.shards[0].pid, 'SIGCONT');
    await until(() => fresh[2].closeCode !== null, 'the newest client shed', 5000);
    expect(fresh[2].closeCode).toBe(1013);
    expect(JSON.parse(reasons.get(fresh[2])!)).toEqual({ reason: 'overload', reconnect_after_ms: 5000 });
    const before = veteran.messages.length;
    await until(() => veteran.messages.length > before + 3, 'the veteran still receives');
    expect(veteran.closeCode).toBeNull();
    expect(assertNoGaps(veteran.messages)).toEqual({ gaps: 0, dups: 0 });
    // Every shed counted once (a close may still be on its way to the client: wait for both to agree).
    const overloadCloses = async () => {
      const metrics = await (await fetch(srv.healthUrl.replace(/\/health$/, '/metrics'))).text();
      return Number(/^odin_ws_client_closes_total\{[^}]*reason="overload"[^}]*\} (\d+)/m.exec(metrics)?.[1]);
    };
    await until(async () => (await overloadCloses()) === fresh.filter((c) => c.closeCode !== null).length, 'closes counted');
    const shed = fresh.filter((c) => c.closeCode !== null);
    for (const c of shed) expect(c.closeCode).toBe(1013);
    // Newest first: a client still open is older than every shed one.
    const firstShed = fresh.findIndex((c) => c.closeCode !== null);
    expect(fresh.slice(firstShed).every((c) => c.closeCode === 1013)).toBe(true);
    veteran.close();
    for (const c of fresh) c.close();
  });
});
