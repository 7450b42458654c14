// WS_DRAIN_NOTICE_MS: on SIGTERM the server first answers 503 to /health and new upgrades while
// its existing clients are still served; only after the notice are they closed with 1001.
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { SERVER, startServer, until, type RunningServer } from '../support/server.js';

let srv: RunningServer | null = null;
afterEach(async () => {
  await srv?.stop();
  srv = null;
});

describe('drain notice', () => {
  it('keeps serving existing clients while /health and upgrades say draining, then closes them with 1001', async () => {
    srv = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '50', FEED_TOKENS: 'A,B', WS_DRAIN_NOTICE_MS: '4000', WS_DRAIN_TIMEOUT_MS: '3000' } });
    const clients = await Promise.all([1, 2, 3, 4].map(() => TestClient.connect(srv!.wsUrl)));
    for (const c of clients) await c.subscribe(['trades:*']);
    await until(() => clients.every((c) => c.messages.length > 0), 'every client streaming');
    const exit = srv.stop();

    // The balancer's view: draining.
    const health = await until(async () => {
      const r = await fetch(srv!.healthUrl);
      return r.status === 503 ? r : null;
    }, 'health 503 during the notice');
    expect((await health.json()).status).toBe('draining');
    const refused = await TestClient.connect(srv.wsUrl).catch((e) => e);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);

    // The clients' view: nothing happened yet; messages keep coming after the 503 was seen.
    expect(clients.every((c) => c.closeCode === null)).toBe(true);
    const marks = clients.map((c) => c.messages.length);
    await until(() => clients.every((c, i) => c.messages.length > marks[i] + 10), 'clients still served during the notice');
    expect(clients.every((c) => c.closeCode === null)).toBe(true);

    expect(await Promise.all(clients.map((c) => c.closed))).toEqual([1001, 1001, 1001, 1001]);
    expect(await exit).toBe(0);
    const draining = srv.logs.find((l) => l.msg === 'draining');
    expect(draining?.notice_ms).toBe(4000);
  });

  it('rejects a notice that is not a whole number of milliseconds in range', () => {
    for (const bad of ['-1', '1.5', 'soon', '600001']) {
      const r = spawnSync(process.execPath, [SERVER], { env: { ...process.env, KAFKA_BROKERS: '', WS_DRAIN_NOTICE_MS: bad }, encoding: 'utf8', timeout: 20_000 });
      expect(r.status, bad).toBe(2);
      expect(r.stderr).toContain(`WS_DRAIN_NOTICE_MS=${JSON.stringify(bad)}`);
    }
  });
});
