// The accept path: every shard listens on the public port (SO_REUSEPORT), so connection setup
// never passes through one process; the admission ledger keeps shards balanced and the capacity
// exact whatever shard the kernel picked.
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { getHealth, listeners, startServer, until } from '../support/server.js';

/** Opens `n` connections, `parallel` at a time; resolves with the open sockets and failures. */
async function burst(url: string, n: number, parallel: number): Promise<{ open: WebSocket[]; failed: number; statuses: number[] }> {
  const open: WebSocket[] = [];
  const statuses: number[] = [];
  let failed = 0;
  let next = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(url, { handshakeTimeout: 10_000 });
      ws.once('open', () => (open.push(ws), resolve()));
      ws.once('unexpected-response', (_q, res) => (statuses.push(res.statusCode ?? 0), failed++, resolve()));
      ws.once('error', () => (failed++, resolve()));
    });
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        await one();
      }
    }),
  );
  return { open, failed, statuses };
}

describe('accept path (SO_REUSEPORT)', () => {
  it('every shard listens on the port itself; a burst of 3,000 is spread within 2% of the mean', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '3' } });
    try {
      expect(listeners(srv.port)).toBe(3);
      const { open, failed } = await burst(srv.wsUrl, 3000, 100);
      expect(failed).toBe(0);
      const body = await until(async () => {
        const { body } = await getHealth(srv.healthUrl);
        return body.system.total_connections === 3000 ? body : null;
      }, 'all counted');
      const counts = body.shards.map((s: { connections: number }) => s.connections);
      const mean = 1000;
      for (const c of counts) expect(Math.abs(c - mean), JSON.stringify({ counts, relayed: body.system.relayed })).toBeLessThanOrEqual(0.02 * mean + 4);
      expect(body.system.relayed).toBeLessThan(3000);
      const byCause = body.system.relayed_by_cause as Record<string, number>;
      expect(Object.keys(byCause).sort()).toEqual(['balance', 'fd_limit', 'no_credit']);
      expect(Object.values(byCause).reduce((a, b) => a + b, 0)).toBe(body.system.relayed);
      for (const ws of open) ws.terminate();
    } finally {
      await srv.stop();
    }
  });

  it('never holds more than WS_MAX_CONNECTIONS under a burst, whatever shard the kernel picked; every free slot stays usable', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '3', WS_MAX_CONNECTIONS: '200' } });
    try {
      const { open, failed, statuses } = await burst(srv.wsUrl, 260, 40);
      // Under a burst a shard whose credit share ran out may refuse while a top-up is in flight
      // (never the reverse): at most the cap is admitted, each refusal is a counted 503.
      expect(open.length).toBeLessThanOrEqual(200);
      expect(open.length + failed).toBe(260);
      expect(new Set(statuses)).toEqual(new Set([503]));
      const { body } = await getHealth(srv.healthUrl);
      expect(body.system.total_connections).toBe(open.length);
      expect(body.system.rejected_by_reason.max_connections).toBe(failed);
      // Calm again: the free slots are admitted one by one up to exactly the cap, then 503.
      const more = await burst(srv.wsUrl, 200 - open.length + 5, 1);
      expect(more.open).toHaveLength(200 - open.length);
      expect(more.statuses).toEqual([503, 503, 503, 503, 503]);
      for (const ws of [...open, ...more.open]) ws.terminate();
    } finally {
      await srv.stop();
    }
  });

  it('times every upgrade it answers, admitted or refused, once, in odin_ws_handshake_seconds (relayed ones included)', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '3', WS_MAX_CONNECTIONS: '40' } });
    try {
      // Enough connections for the kernel's hash to leave shards apart, so some are relayed.
      const { open, statuses } = await burst(srv.wsUrl, 55, 8);
      const notFound = await new Promise<number>((resolve) => {
        const ws = new WebSocket(srv.wsUrl.replace(/\/ws$/, '/nope'));
        ws.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
        ws.once('error', () => resolve(0));
      });
      expect(notFound).toBe(404);
      await getHealth(srv.healthUrl); // a plain request is no handshake
      const text = await (await fetch(srv.metricsUrl)).text();
      // Summed over the shards' series.
      const count = (outcome: string) =>
        [...text.matchAll(new RegExp(`^odin_ws_handshake_seconds_count\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
      // A burst may be refused a slot while a credit top-up is in flight (see above): count both.
      expect(open.length).toBeGreaterThan(30);
      expect(open.length + statuses.length).toBe(55);
      expect(new Set(statuses)).toEqual(new Set([503]));
      expect(count('admitted')).toBe(open.length);
      expect(count('refused')).toBe(statuses.length + 1);
      const relayed = (await getHealth(srv.healthUrl)).body.system.relayed;
      expect(relayed, 'no connection was relayed: the relay path went untested').toBeGreaterThan(0);
      for (const ws of open) ws.terminate();
    } finally {
      await srv.stop();
    }
  });

  it('a shard killed while clients connect leaves the others listening; it rejoins the port', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '3' } });
    try {
      const before = (await getHealth(srv.healthUrl)).body;
      const connecting = burst(srv.wsUrl, 600, 30);
      process.kill(before.shards[0].pid, 'SIGKILL');
      const first = await connecting;
      // Connections in the dead shard's accept queue are reset; none after it is gone.
      expect(first.open.length).toBeGreaterThan(0);
      await until(async () => {
        const { body } = await getHealth(srv.healthUrl);
        return body.shards[0].up && body.shards[0].pid !== before.shards[0].pid;
      }, 'shard 0 restarted');
      expect(listeners(srv.port)).toBe(3);
      const second = await burst(srv.wsUrl, 300, 30);
      expect(second.failed).toBe(0);
      for (const ws of [...first.open, ...second.open]) ws.terminate();
    } finally {
      await srv.stop();
    }
  });

  it('SIGTERM closes every client with 1001 and frees the port', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '3' } });
    const { open } = await burst(srv.wsUrl, 90, 10);
    const codes = open.map((ws) => new Promise<number>((r) => ws.once('close', (code) => r(code))));
    expect(await srv.stop()).toBe(0);
    expect(new Set(await Promise.all(codes))).toEqual(new Set([1001]));
    expect(listeners(srv.port)).toBe(0);
  });
});
