import net from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, assertNoGaps } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';

describe('resource guard', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '2', WS_MAX_CONNECTIONS: '5', FEED_RATE: '20', WS_RETRY_AFTER_S: '7' } });
  });
  afterAll(() => srv?.stop());

  it('refuses connection K+1 with 503 + Retry-After while the first K keep receiving', async () => {
    const first: TestClient[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await TestClient.connect(srv.wsUrl);
      await c.subscribe(['trades:ODIN1']);
      first.push(c);
    }
    const refused = await TestClient.connect(srv.wsUrl).then(
      () => null,
      (e) => e,
    );
    expect(refused?.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('7');

    const marks = first.map((c) => c.messages.length);
    await until(() => first.every((c, i) => c.messages.length >= marks[i] + 5), 'the first K still receive');
    for (const c of first) expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });

    const { body } = await getHealth(srv.healthUrl);
    expect(body.system.rejected).toBe(1);
    expect(body.system.rejected_by_reason.max_connections).toBe(1);
    expect(body.system.total_connections).toBe(5);
    const metrics = await (await fetch(srv.metricsUrl)).text();
    expect(metrics).toMatch(/odin_ws_rejected_total\{reason="max_connections"[^}]*\} 1/);

    // A slot freed by a client leaving is usable again.
    first[0].close();
    await first[0].closed;
    await until(async () => (await getHealth(srv.healthUrl)).body.system.total_connections === 4, 'slot freed');
    // The freed credit reaches whichever shard the front grants it to within a few ms: a client
    // that lands elsewhere first may get one more 503 (and retries, as clients do after 503).
    const again = await until(() => TestClient.connect(srv.wsUrl).catch(() => null), 'the freed slot admits a client');
    again.close();
    for (const c of first) c.close();
  });

  it('answers non-WebSocket requests on /ws with 426 and unknown paths with 404', async () => {
    expect((await fetch(srv.wsUrl.replace('ws:', 'http:'))).status).toBe(426);
    expect((await fetch(srv.healthUrl.replace('/health', '/nope'))).status).toBe(404);
    const bad = await TestClient.connect(srv.wsUrl.replace('/ws', '/other')).catch((e) => e);
    expect(bad.status).toBe(404);
  });
});

describe('bad client input', () => {
  let srv: RunningServer;
  let witness: TestClient;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '1', FEED_RATE: '20', WS_MAX_PAYLOAD: '1024', WS_MAX_CHANNELS: '3' } });
    witness = await TestClient.connect(srv.wsUrl);
    await witness.subscribe(['trades:ODIN2']);
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });

  const errorOf = async (c: TestClient, send: () => void) => {
    const n = c.replies.length;
    send();
    return c.waitReply((r) => r.op === 'error' && c.replies.indexOf(r) >= n);
  };

  it('answers each bad request with its documented code and keeps the connection', async () => {
    const c = await TestClient.connect(srv.wsUrl);
    expect((await errorOf(c, () => c.ws.send('{not json'))).code).toBe('BAD_JSON');
    expect((await errorOf(c, () => c.ws.send('[1,2]'))).code).toBe('BAD_REQUEST');
    expect((await errorOf(c, () => c.ws.send(JSON.stringify({ op: 'dance', id: 9 }))))).toMatchObject({ code: 'UNKNOWN_OP', id: 9 });
    expect((await errorOf(c, () => c.ws.send(JSON.stringify({ op: 'subscribe', channels: ['nostream:X'], id: 'a' }))))).toMatchObject({ code: 'BAD_CHANNEL', id: 'a' });
    expect((await errorOf(c, () => c.ws.send(JSON.stringify({ op: 'subscribe', channels: ['trades:bad token'] })))).code).toBe('BAD_CHANNEL');
    expect((await errorOf(c, () => c.ws.send(JSON.stringify({ op: 'subscribe', channels: 'trades:X' })))).code).toBe('BAD_CHANNEL');
    expect((await errorOf(c, () => c.ws.send(JSON.stringify({ op: 'subscribe', channels: ['trades:A', 'trades:B', 'trades:C', 'trades:D'] })))).code).toBe('TOO_MANY_CHANNELS');
    expect((await errorOf(c, () => c.ws.send(Buffer.from([1, 2, 3]), { binary: true }))).code).toBe('BINARY_UNSUPPORTED');
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    expect((await c.request({ op: 'ping' })).op).toBe('pong');
    c.close();
  });

  it('closes a client that sends a frame over maxPayload with 1009, and only that client', async () => {
    const c = await TestClient.connect(srv.wsUrl);
    c.ws.send('x'.repeat(2048));
    expect(await c.closed).toBe(1009);
    const mark = witness.messages.length;
    await until(() => witness.messages.length >= mark + 5, 'witness still receiving');
    expect(assertNoGaps(witness.messages)).toEqual({ gaps: 0, dups: 0 });
  });

  it('refuses a malformed upgrade without a handoff and keeps serving', async () => {
    const port = srv.port;
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () =>
        s.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'),
      );
      let data = '';
      s.on('data', (d) => (data += d));
      s.on('close', () => resolve(data));
      s.on('error', () => resolve(data));
    });
    expect(reply).toMatch(/^HTTP\/1.1 400/);
    await until(async () => (await getHealth(srv.healthUrl)).body.system.total_connections === 1, 'count back to the witness only');
    const mark = witness.messages.length;
    await until(() => witness.messages.length >= mark + 3, 'witness still receiving');
  });
});
