// Continuity on the embedded feed: a client fills a gap on its live connection with `since`
// (replay, then live, nothing twice), a restarted server says an old run's positions are
// unknown_origin (never a silent gap), and the 1001 close tells how long to spread reconnects.
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../app/common/errors.js';
import { TestClient } from '../support/client.js';
import { startServer, until, type RunningServer } from '../support/server.js';

const servers: RunningServer[] = [];
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) await s.stop();
});

async function server(env: Record<string, string> = {}, args: string[] = []) {
  const srv = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '50', FEED_TOKENS: 'A,B', WS_RECONNECT_WINDOW_MS: '250', ...env }, args });
  servers.push(srv);
  return srv;
}

async function client(srv: RunningServer) {
  const c = await TestClient.connect(srv.wsUrl);
  clients.push(c);
  return c;
}

type Msg = { channel: string; seq: number; epoch: string; pos: string };
const offset = (m: Msg) => Number(m.pos.slice(m.pos.lastIndexOf(':') + 1));

describe('continuity on the embedded feed', () => {
  it('re-subscribing a held channel with since replays exactly what followed, then live, nothing twice', async () => {
    const srv = await server();
    const c = await client(srv);
    await c.subscribe(['trades:A']);
    await until(() => c.messages.length >= 20, 'live messages');
    const mark = c.messages[4] as unknown as Msg;
    const reply = await c.request({ op: 'subscribe', channels: ['trades:A'], since: { 'trades:A': mark.pos } });
    // Live messages already on their way when the request reached the server arrive before the
    // reply: the replay and what follows it start at the reply's place in the stream.
    const before = c.messagesBefore(reply);
    const replayed = (reply.recovery as Record<string, { replayed: number }>)['trades:A'].replayed;
    expect(replayed).toBeGreaterThanOrEqual(before - 5);
    await until(() => c.messages.length >= before + replayed + 20, 'replay and live');
    const tail = c.messages.slice(before) as unknown as Msg[];
    // The replay restarts right after the mark, and from there seq and pos rise without a hole.
    expect(tail[0].seq).toBe(mark.seq + 1);
    for (let i = 1; i < tail.length; i++) {
      expect(tail[i].seq).toBe(tail[i - 1].seq + 1);
      expect(offset(tail[i])).toBeGreaterThan(offset(tail[i - 1]));
    }
  });

  it('after a restart an old run position is unknown_origin; last delivers the current value first', async () => {
    const first = await server();
    const c = await client(first);
    await c.subscribe(['trades:A']);
    await until(() => c.messages.length >= 3, 'live messages');
    const old = (c.messages[2] as unknown as Msg).pos;
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => {
      c.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      void first.stop();
    });
    expect(closed.code).toBe(1001);
    expect(JSON.parse(closed.reason)).toEqual({ reconnect_within_ms: 250 });

    const second = await server({}, ['--lb-addr', `127.0.0.1:${first.port}`]);
    const d = await client(second);
    const reply = await d.request({ op: 'subscribe', channels: ['trades:A', 'prices:B'], since: { 'trades:A': old }, last: true });
    expect(reply.recovery).toMatchObject({ 'trades:A': { unrecoverable: 'unknown_origin' } });
    expect((reply.recovery as Record<string, { last: number }>)['prices:B'].last).toBeLessThanOrEqual(1);
    await until(() => d.messages.some((m) => m.channel === 'prices:B'), 'prices:B arrives');
  });

  it('refuses a malformed since or last with its code; a since covered by a wildcard is taken', async () => {
    const srv = await server();
    const c = await client(srv);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ channels: ['trades:A'], since: { 'trades:B': 'p0:1' } }, ErrorCode.BAD_SINCE], // not covered by channels
      [{ channels: ['trades:*'], since: { 'trades:*': 'p0:1' } }, ErrorCode.BAD_SINCE], // a wildcard key
      [{ channels: ['trades:A'], since: { 'trades:A': 'p0:x' } }, ErrorCode.BAD_SINCE],
      [{ channels: ['trades:A'], since: { 'trades:A': 7 } }, ErrorCode.BAD_SINCE],
      [{ channels: ['trades:A'], since: ['trades:A'] }, ErrorCode.BAD_SINCE],
      [{ channels: ['trades:A'], since: {} }, ErrorCode.BAD_SINCE],
      [{ channels: ['trades:A'], last: 'yes' }, ErrorCode.BAD_REQUEST],
    ];
    for (const [body, code] of cases) expect(await c.request({ op: 'subscribe', ...body }), JSON.stringify(body)).toMatchObject({ op: 'error', code });
    const covered = await c.request({ op: 'subscribe', channels: ['trades:*'], since: { 'trades:A': 'p0:1' } });
    expect(covered).toMatchObject({ op: 'subscribed', recovery: { 'trades:A': { unrecoverable: 'unknown_origin' } } });
  });

  it('charges each since entry to the rate limit like a channel, however few channels cover them', async () => {
    // Bucket of max(2 x 2, WS_MAX_CHANNELS 3) = 4 operations; each request below names one wildcard.
    const srv = await server({ WS_CLIENT_OPS_PER_SEC: '2', WS_MAX_CHANNELS: '3', FEED_TOKENS: 'A,B,C' });
    const c = await client(srv);
    const since = { 'trades:A': 'p0:1', 'trades:B': 'p0:1', 'trades:C': 'p0:1' };
    expect(await c.request({ op: 'subscribe', channels: ['trades:*'], since })).toMatchObject({ op: 'subscribed' });
    // 3 of 4 spent: the same request again (3 entries) does not fit, a plain one (1) would.
    c.ws.send(JSON.stringify({ op: 'subscribe', channels: ['trades:*'], since, id: 'again' }));
    const refused = await c.waitReply((r) => r.op === 'error' || r.id === 'again');
    expect(refused).toMatchObject({ op: 'error', code: ErrorCode.RATE_LIMITED });
  });
});
