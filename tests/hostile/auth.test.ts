// Auth on (WS_AUTH_SECRET set): tokens are checked in the front before the handoff. Every bad
// token gets HTTP 401 from the front (no shard connection is ever counted); a valid HS256 token
// works from the query string and from Sec-WebSocket-Protocol (with a subprotocol the `ws` client
// accepts); a `channels` claim restricts subscribe.
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, assertNoGaps } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { exchange, upgradeRequest } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed } from './support/witness.js';

const SECRET = 'hostile-test-secret-0123456789';
const key = (s: string) => new TextEncoder().encode(s);
const now = () => Math.floor(Date.now() / 1000);

async function token(claims: Record<string, unknown> = {}, opts: { secret?: string; alg?: string; exp?: number; nbf?: number } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? 'HS256' }).setIssuedAt().setSubject('tester');
  jwt.setExpirationTime(opts.exp ?? now() + 300);
  if (opts.nbf) jwt.setNotBefore(opts.nbf);
  return jwt.sign(key(opts.secret ?? SECRET));
}

/** An unsigned token (`alg: none`), which must never be accepted. */
function unsignedToken(): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'tester', exp: now() + 300 })}.`;
}

/** A `ws` client offering `protocols`; resolves once open, rejects with the HTTP status. */
function openWith(url: string, protocols: string[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      ws.terminate();
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode }));
    });
    ws.once('error', reject);
  });
}

/** Sends one request on a bare `ws` client and waits for the reply with its id. */
function ask(ws: WebSocket, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const id = Math.floor(Math.random() * 1e9);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reply')), 10_000);
    const onMsg = (raw: WebSocket.RawData) => {
      const v = JSON.parse(raw.toString());
      if (v && !Array.isArray(v) && v.id === id) {
        clearTimeout(timer);
        ws.off('message', onMsg);
        resolve(v);
      }
    };
    ws.on('message', onMsg);
    ws.send(JSON.stringify({ ...body, id }));
  });
}

describe('auth (WS_AUTH_SECRET set)', () => {
  let srv: RunningServer;
  let witness: TestClient;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '20', WS_AUTH_SECRET: SECRET } });
    witness = await connectWitness(srv, 'trades:ODIN1', `?token=${await token()}`);
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });

  it('refuses a missing, forged, expired, premature, unsigned or mistyped token with 401 before the upgrade', async () => {
    const cases: Array<[string, Record<string, string | null>, string, string]> = [
      ['no token', {}, '/ws', 'TOKEN_MISSING'],
      ['empty token', {}, '/ws?token=', 'TOKEN_MISSING'],
      ['garbage', {}, '/ws?token=not.a.jwt', 'TOKEN_INVALID'],
      ['wrong secret', {}, `/ws?token=${await token({}, { secret: 'another-secret-0123456789' })}`, 'TOKEN_INVALID'],
      ['expired', {}, `/ws?token=${await token({}, { exp: now() - 60 })}`, 'TOKEN_EXPIRED'],
      ['not yet valid', {}, `/ws?token=${await token({}, { nbf: now() + 600 })}`, 'TOKEN_INVALID'],
      ['alg none', {}, `/ws?token=${unsignedToken()}`, 'TOKEN_INVALID'],
      ['HS512 instead of HS256', {}, `/ws?token=${await token({}, { alg: 'HS512' })}`, 'TOKEN_INVALID'],
      ['channels claim not a list', {}, `/ws?token=${await token({ channels: 'trades:*' })}`, 'TOKEN_INVALID'],
      ['channels claim not strings', {}, `/ws?token=${await token({ channels: [1, 2] })}`, 'TOKEN_INVALID'],
      ['forged token as subprotocol', { 'Sec-WebSocket-Protocol': `bearer.${await token({}, { secret: 'another-secret-0123456789' })}` }, '/ws', 'TOKEN_INVALID'],
      ['expired token as subprotocol', { 'Sec-WebSocket-Protocol': `odin.v1, bearer.${await token({}, { exp: now() - 60 })}` }, '/ws', 'TOKEN_EXPIRED'],
    ];
    for (const [what, headers, path, code] of cases) {
      const r = await exchange(srv.port, upgradeRequest(path, headers));
      expect(r.head?.status, what).toBe(401);
      expect(r.head?.headers['content-type'], what).toBe('application/json');
      expect(JSON.parse(r.head!.body), what).toEqual({ error: 'unauthorized', code });
      expect(r.closedByServer, what).toBe(true);
    }
    // A real client sees the same refusal.
    const refused = await TestClient.connect(srv.wsUrl).catch((e) => e);
    expect(refused.status).toBe(401);

    // No refused attempt ever reached a shard: only the witness is counted, anywhere.
    const { body } = await getHealth(srv.healthUrl);
    expect(body.system.total_connections).toBe(1);
    expect(body.shards.reduce((n: number, s: { connections: number }) => n + s.connections, 0)).toBe(1);
    await expectWitnessServed(srv, witness);
  });

  it('accepts a valid token in the query string', async () => {
    const c = await TestClient.connect(`${srv.wsUrl}?token=${await token()}`);
    expect((await c.subscribe(['prices:ODIN2'])).op).toBe('subscribed');
    await until(() => c.messages.length >= 3, 'token client receives');
    expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
    c.close();
    await expectWitnessServed(srv, witness);
  });

  it('accepts a valid token as a Sec-WebSocket-Protocol entry, answering with a protocol the client offered', async () => {
    const jwt = await token();
    const bearer = `bearer.${jwt}`;
    // Only the bearer entry offered: it is the only legal answer (a client that offered
    // protocols fails the handshake when the server picks none).
    const alone = await openWith(srv.wsUrl, [bearer]);
    expect(alone.protocol).toBe(bearer);
    expect((await ask(alone, { op: 'ping' })).op).toBe('pong');
    alone.close();
    // With an application protocol offered too, that one is chosen, in either order: the
    // credential is not echoed back.
    for (const offered of [['odin.v1', bearer], [bearer, 'odin.v1']]) {
      const ws = await openWith(srv.wsUrl, offered);
      expect(ws.protocol).toBe('odin.v1');
      expect((await ask(ws, { op: 'subscribe', channels: ['trades:ODIN3'] })).op).toBe('subscribed');
      ws.close();
    }
    await expectWitnessServed(srv, witness);
  });

  it('enforces a channels claim on subscribe with FORBIDDEN_CHANNEL', async () => {
    const c = await TestClient.connect(`${srv.wsUrl}?token=${await token({ channels: ['trades:ODIN1', 'prices:*'] })}`);
    expect((await c.subscribe(['trades:ODIN1'])).op).toBe('subscribed');
    expect(await c.subscribe(['trades:ODIN2'])).toMatchObject({ op: 'error', code: 'FORBIDDEN_CHANNEL', channels: ['trades:ODIN2'] });
    expect(await c.subscribe(['trades:*'])).toMatchObject({ op: 'error', code: 'FORBIDDEN_CHANNEL', channels: ['trades:*'] });
    // A request with one forbidden channel subscribes to none of them.
    expect(await c.subscribe(['prices:ODIN1', 'trades:ODIN4'])).toMatchObject({ op: 'error', code: 'FORBIDDEN_CHANNEL', channels: ['trades:ODIN4'] });
    expect((await c.subscribe(['prices:ODIN3'])).op).toBe('subscribed'); // prices:* allows each token
    expect((await c.subscribe(['prices:*'])).op).toBe('subscribed');
    await until(() => new Set(c.messages.map((m) => m.channel)).size >= 6, 'allowed channels flowing');
    const seen = new Set(c.messages.map((m) => m.channel));
    for (const ch of seen) expect(ch === 'trades:ODIN1' || ch.startsWith('prices:'), ch).toBe(true);
    expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
    expect(c.closeCode).toBeNull();
    c.close();
    await expectWitnessServed(srv, witness);
  });
});
