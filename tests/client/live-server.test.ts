// The official client under Node (its global WebSocket) against the real server.
import { afterEach, describe, expect, it } from 'vitest';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { recordedClient, type Recorded } from './support.js';

const FAST = { backoffBaseMs: 50, backoffMaxMs: 200, connectTimeoutMs: 2000, ackTimeoutMs: 5000 };

describe('official client on the real server', () => {
  const servers: RunningServer[] = [];
  const clients: Recorded[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.client.close();
    for (const s of servers.splice(0)) await s.stop();
  });
  async function server(extra: Record<string, string> = {}, args: string[] = []) {
    const s = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '20', ...extra }, args });
    servers.push(s);
    return s;
  }
  function client(url: string, opts = {}) {
    const c = recordedClient({ url, ...FAST, ...opts });
    clients.push(c);
    return c;
  }

  it('connects, resolves subscribe with the ack, streams, answers ping, rejects a bad channel with the server code', async () => {
    const srv = await server();
    const c = client(srv.wsUrl);
    c.client.connect();
    const ack = await c.client.subscribe(['trades:*']);
    expect(ack.channels).toEqual(['trades:*']);
    expect(c.client.state).toBe('open');
    await until(() => c.messages.length >= 10, 'ten messages');
    expect(c.messages[0]).toMatchObject({ channel: expect.stringMatching(/^trades:ODIN\d$/), replayed: false });
    expect(typeof (await c.client.ping())).toBe('number');
    await expect(c.client.subscribe(['quotes:X'])).rejects.toMatchObject({ code: 'BAD_CHANNEL' });
    expect(c.client.channels).toEqual(['trades:*']);
    await c.client.unsubscribe(['trades:*']);
    expect(c.client.channels).toEqual([]);
  });

  it('a subscribe made before connect is sent on open and resolved by its ack', async () => {
    const srv = await server();
    const c = client(srv.wsUrl);
    const p = c.client.subscribe(['prices:ODIN1']);
    c.client.connect();
    expect((await p).channels).toEqual(['prices:ODIN1']);
    await until(() => c.messages.some((m) => m.channel === 'prices:ODIN1'), 'a prices message');
  });

  it('reconnects after the server restarts on the same port and resubscribes by itself', async () => {
    const first = await server();
    const c = client(first.wsUrl);
    c.client.connect();
    await c.client.subscribe(['trades:ODIN2']);
    await until(() => c.messages.length >= 3, 'messages before the restart');
    await first.stop();
    await until(() => c.states.some((s) => s.state === 'reconnecting'), 'reconnecting');
    const before = c.messages.length;
    await server({}, ['--lb-addr', `127.0.0.1:${first.port}`]);
    await until(() => c.client.stats.reconnects >= 1 && c.messages.length > before + 3, 'messages after the restart', 30_000);
    expect(c.client.state).toBe('open');
    const closed = c.states.find((s) => s.state === 'reconnecting')!;
    expect(closed.code).toBe(1001);
    expect(c.closes.map((x) => x.kind)).toContain('going_away');
    expect(c.messages.slice(before).every((m) => m.channel === 'trades:ODIN2')).toBe(true);
  });

  it('finds a connection dead when no frame follows its ping, and reconnects once the server answers again', async () => {
    const srv = await server({ WS_PING_INTERVAL_MS: '0' });
    const c = client(srv.wsUrl, { pingIntervalMs: 200, pongTimeoutMs: 300 });
    c.client.connect();
    await c.client.subscribe(['trades:ODIN1']);
    const health = await getHealth(srv.healthUrl);
    const pids: number[] = [srv.proc.pid!, ...health.body.shards.map((s: { pid: number }) => s.pid)];
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      await until(() => c.states.some((s) => s.state === 'reconnecting' && s.code === 4000), 'the client to find the connection dead');
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    const n = c.messages.length;
    await until(() => c.client.state === 'open' && c.messages.length > n, 'streaming again after the server resumed', 30_000);
  });
});
