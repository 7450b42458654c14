import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { TestClient, assertNoGaps } from '../support/client.js';
import { SERVER, getHealth, startServer, until } from '../support/server.js';

describe('configuration at the edge', () => {
  it('exits 2 before listening and names every invalid field', () => {
    const r = spawnSync(process.execPath, [SERVER, '--shards', 'zero'], {
      env: { ...process.env, KAFKA_BROKERS: '', WS_MAX_CONNECTIONS: '-5', WS_ADDR: 'nope' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--shards="zero"');
    expect(r.stderr).toContain('WS_MAX_CONNECTIONS="-5"');
    expect(r.stderr).toContain('WS_ADDR="nope"');
    expect(r.stdout).not.toContain('listening');
  });

  it('rejects an unknown flag with the list of accepted ones', () => {
    const r = spawnSync(process.execPath, [SERVER, '--shard', '3'], { env: { ...process.env, KAFKA_BROKERS: '' }, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--shard.*accepted flags:.*--shards/s);
  });
});

describe('/metrics exposure', () => {
  it('serves /metrics and the detailed /health only to WS_METRICS_ALLOW; others get only the status', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '1', WS_METRICS_ALLOW: '203.0.113.0/24' } });
    try {
      const res = await fetch(srv.metricsUrl);
      expect(res.status).toBe(403);
      const { status, body } = await getHealth(srv.healthUrl);
      expect(status).toBe(200);
      expect(body).toEqual({ status: 'ok' });
    } finally {
      await srv.stop();
    }
    const allowed = await startServer({ env: { WS_SHARDS: '1' } });
    try {
      const { status, body } = await getHealth(allowed.healthUrl);
      expect(status).toBe(200);
      expect(body.version).toBe('dev');
      expect(body.shards[0].pid).toBeGreaterThan(0);
      expect((await fetch(allowed.metricsUrl)).status).toBe(200);
    } finally {
      await allowed.stop();
    }
  });

  it('rejects a malformed CIDR at start', () => {
    const r = spawnSync(process.execPath, [SERVER, '--metrics-allow', '10.0.0.0/33'], { env: { ...process.env, KAFKA_BROKERS: '' }, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--metrics-allow="10.0.0.0/33"');
  });
});

describe('shutdown and shard faults', () => {
  it('on SIGTERM turns health 503, closes every client with 1001 and exits 0', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '2', WS_DRAIN_TIMEOUT_MS: '5000' } });
    const clients = await Promise.all([1, 2, 3, 4].map(() => TestClient.connect(srv.wsUrl)));
    await until(async () => (await getHealth(srv.healthUrl)).body.system.total_connections === 4, 'clients counted');
    const code = srv.stop();
    const closes = await Promise.all(clients.map((c) => c.closed));
    expect(closes).toEqual([1001, 1001, 1001, 1001]);
    expect(await code).toBe(0);
    expect(srv.logs.map((l) => l.msg)).toContain('draining');
  });

  it('answers 503 on /health and to upgrades while draining', async () => {
    // A client that never answers the close handshake keeps the shard draining for a while.
    const srv = await startServer({ env: { WS_SHARDS: '1', WS_DRAIN_TIMEOUT_MS: '3000' } });
    const c = await TestClient.connect(srv.wsUrl);
    c.ws.pause(); // our side stops reading, so the close handshake stalls until the deadline
    srv.proc.kill('SIGTERM');
    const res = await until(async () => {
      const r = await fetch(srv.healthUrl);
      return r.status === 503 ? r : null;
    }, 'health 503 while draining');
    expect((await res.json()).status).toBe('draining');
    const refused = await TestClient.connect(srv.wsUrl).catch((e) => e);
    expect(refused.status).toBe(503);
    expect(await srv.stop()).toBe(0);
  });

  it('restarts a SIGKILLed shard while clients on the other shards keep receiving with no gap', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '3', FEED_RATE: '20' } });
    try {
      // The kernel picks each client's shard: open enough that the victim has some.
      const cs = await Promise.all(Array.from({ length: 12 }, () => TestClient.connect(srv.wsUrl)));
      for (const c of cs) await c.subscribe(['trades:*']);
      const before = (await getHealth(srv.healthUrl)).body;
      const victim = before.shards.find((s: { connections: number }) => s.connections > 0);
      process.kill(victim.pid, 'SIGKILL');
      const victims: TestClient[] = [];
      await until(async () => {
        const { body } = await getHealth(srv.healthUrl);
        const s = body.shards[victim.id];
        return s.restarts === 1 && s.up && s.pid !== victim.pid;
      }, 'victim shard restarted');
      for (const c of cs) if (c.ws.readyState !== c.ws.OPEN) victims.push(c);
      expect(victims).toHaveLength(victim.connections);
      for (const v of victims) expect(await v.closed).toBe(1006);
      const after = (await getHealth(srv.healthUrl)).body;
      expect(after.shards.reduce((a: number, s: { restarts: number }) => a + s.restarts, 0)).toBe(1);
      expect(srv.proc.exitCode).toBeNull();

      const others = cs.filter((c) => !victims.includes(c));
      const marks = others.map((c) => c.messages.length);
      await until(() => others.every((c, i) => c.messages.length > marks[i] + 20), 'others keep receiving');
      for (const c of others) expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });

      // The restarted shard takes new clients again and serves them.
      const fresh = await Promise.all(Array.from({ length: 12 }, () => TestClient.connect(srv.wsUrl)));
      for (const f of fresh) await f.subscribe(['prices:ODIN1']);
      await until(() => fresh.every((f) => f.messages.length >= 3), 'every new client served');
      expect((await getHealth(srv.healthUrl)).body.shards[victim.id].connections).toBeGreaterThan(0);
      for (const c of [...cs, ...fresh]) c.close();
    } finally {
      await srv.stop();
    }
  });
});
