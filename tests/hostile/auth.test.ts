// Auth on (WS_AUTH_SECRET_FILE with two secrets, audience and issuer set, no clock tolerance):
// tokens are checked in the front before the handoff. Every bad token gets HTTP 401 with a stable
// code (no shard connection is ever counted); a valid HS256 token signed with either secret of the
// rotation works from the query string and from Sec-WebSocket-Protocol (never echoed back); a
// `channels` claim restricts subscribe; a connected client is closed with 4001 at `exp` unless
// it refreshed its token first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient, assertNoGaps } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { exchange, upgradeRequest } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed } from './support/witness.js';

const CURRENT = 'hostile-test-current-secret-0123456789abcdef';
const PREVIOUS = 'hostile-test-previous-secret-0123456789abcdef';
const OTHER = 'another-secret-nobody-configured-0123456789';
const AUD = 'odin-ws-tests';
const ISS = 'odin-tests-issuer';
const key = (s: string) => new TextEncoder().encode(s);
const now = () => Math.floor(Date.now() / 1000);

interface TokenOpts {
  secret?: string;
  alg?: string;
  /** Seconds since the epoch; null: no exp claim. */
  exp?: number | null;
  nbf?: number;
  aud?: string | null;
  iss?: string | null;
}

export async function token(claims: Record<string, unknown> = {}, opts: TokenOpts = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: opts.alg ?? 'HS256' }).setIssuedAt().setSubject('tester');
  if (opts.exp !== null) jwt.setExpirationTime(opts.exp ?? now() + 300);
  if (opts.nbf) jwt.setNotBefore(opts.nbf);
  const aud = opts.aud === undefined ? AUD : opts.aud;
  const iss = opts.iss === undefined ? ISS : opts.iss;
  if (aud !== null) jwt.setAudience(aud);
  if (iss !== null) jwt.setIssuer(iss);
  return jwt.sign(key(opts.secret ?? CURRENT));
}

/** An unsigned token (`alg: none`), which must never be accepted. */
function unsignedToken(): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'tester', exp: now() + 300, aud: AUD, iss: ISS })}.`;
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

/** Waits until the wall clock is past `exp` (s) + `graceS`: the server's deadline and one sweep. */
async function pastDeadline(exp: number, graceS = 2): Promise<void> {
  await until(() => Date.now() > (exp + graceS) * 1000, `clock past exp ${exp} + ${graceS}s`, 30_000, 100);
}

export function secretFile(lines: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-auth-'));
  const file = path.join(dir, 'secret');
  fs.writeFileSync(file, lines, { mode: 0o600 });
  return file;
}

describe('auth (WS_AUTH_SECRET_FILE with a rotation, audience, issuer)', () => {
  let srv: RunningServer;
  let witness: TestClient;
  beforeAll(async () => {
    const file = secretFile(`${CURRENT}\n\n${PREVIOUS}\n`);
    srv = await startServer({
      env: { WS_SHARDS: '2', FEED_RATE: '20', WS_AUTH_SECRET_FILE: file, WS_AUTH_AUDIENCE: AUD, WS_AUTH_ISSUER: ISS, WS_AUTH_CLOCK_TOLERANCE_S: '0' },
    });
    witness = await connectWitness(srv, 'trades:ODIN1', `?token=${await token()}`);
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });

  it('logs that auth is on without the secret and without a warning about the file', () => {
    const line = srv.logs.find((l) => l.msg === 'auth enabled');
    expect(line).toMatchObject({ secrets: 2, require_exp: true, audience: AUD, issuer: ISS, clock_tolerance_s: 0 });
    const all = JSON.stringify(srv.logs) + srv.stderr();
    expect(all).not.toContain(CURRENT);
    expect(all).not.toContain(PREVIOUS);
    expect(srv.logs.filter((l) => l.level === 40)).toEqual([]);
  });

  it('refuses every bad token with 401 and its code before the upgrade', async () => {
    const cases: Array<[string, Record<string, string | null>, string, string]> = [
      ['no token', {}, '/ws', 'TOKEN_MISSING'],
      ['empty token', {}, '/ws?token=', 'TOKEN_MISSING'],
      ['garbage', {}, '/ws?token=not.a.jwt', 'TOKEN_INVALID'],
      ['unknown secret', {}, `/ws?token=${await token({}, { secret: OTHER })}`, 'TOKEN_INVALID'],
      ['expired', {}, `/ws?token=${await token({}, { exp: now() - 60 })}`, 'TOKEN_EXPIRED'],
      ['expired, previous secret', {}, `/ws?token=${await token({}, { exp: now() - 60, secret: PREVIOUS })}`, 'TOKEN_EXPIRED'],
      ['no exp', {}, `/ws?token=${await token({}, { exp: null })}`, 'TOKEN_NO_EXP'],
      ['exp not a number', {}, `/ws?token=${await token({ exp: 'tomorrow' }, { exp: null })}`, 'TOKEN_INVALID'],
      ['no aud', {}, `/ws?token=${await token({}, { aud: null })}`, 'TOKEN_AUDIENCE'],
      ['other aud', {}, `/ws?token=${await token({}, { aud: 'someone-else' })}`, 'TOKEN_AUDIENCE'],
      ['no iss', {}, `/ws?token=${await token({}, { iss: null })}`, 'TOKEN_ISSUER'],
      ['other iss', {}, `/ws?token=${await token({}, { iss: 'evil-issuer' })}`, 'TOKEN_ISSUER'],
      ['not yet valid', {}, `/ws?token=${await token({}, { nbf: now() + 600 })}`, 'TOKEN_INVALID'],
      ['alg none', {}, `/ws?token=${unsignedToken()}`, 'TOKEN_INVALID'],
      ['HS512 instead of HS256', {}, `/ws?token=${await token({}, { alg: 'HS512' })}`, 'TOKEN_INVALID'],
      ['channels claim not a list', {}, `/ws?token=${await token({ channels: 'trades:*' })}`, 'TOKEN_INVALID'],
      ['channels claim not strings', {}, `/ws?token=${await token({ channels: [1, 2] })}`, 'TOKEN_INVALID'],
      ['forged token as subprotocol', { 'Sec-WebSocket-Protocol': `odin.v1, bearer.${await token({}, { secret: OTHER })}` }, '/ws', 'TOKEN_INVALID'],
      ['expired token as subprotocol', { 'Sec-WebSocket-Protocol': `odin.v1, bearer.${await token({}, { exp: now() - 60 })}` }, '/ws', 'TOKEN_EXPIRED'],
    ];
    for (const [what, headers, url, code] of cases) {
      const r = await exchange(srv.port, upgradeRequest(url, headers));
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

  it('accepts a token signed with the current or the previous secret of a rotation', async () => {
    for (const secret of [CURRENT, PREVIOUS]) {
      const c = await TestClient.connect(`${srv.wsUrl}?token=${await token({}, { secret })}`);
      expect((await c.subscribe(['prices:ODIN2'])).op).toBe('subscribed');
      await until(() => c.messages.length >= 3, 'token client receives');
      expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
      c.close();
    }
    await expectWitnessServed(srv, witness);
  });

  it('takes the token from Sec-WebSocket-Protocol but never echoes it: bearer-only offers get 400', async () => {
    const jwt = await token();
    const bearer = `bearer.${jwt}`;
    // Only the bearer entry offered: the only legal answer would be the credential itself.
    const r = await exchange(srv.port, upgradeRequest('/ws', { 'Sec-WebSocket-Protocol': bearer }));
    expect(r.head?.status).toBe(400);
    expect(JSON.parse(r.head!.body)).toMatchObject({ error: 'bad_request', code: 'PROTOCOL_REQUIRED' });
    expect(r.raw).not.toContain(jwt);
    const two = await exchange(srv.port, upgradeRequest('/ws', { 'Sec-WebSocket-Protocol': `${bearer}, bearer.${await token()}` }));
    expect(two.head?.status).toBe(400);
    const alone = await openWith(srv.wsUrl, [bearer]).catch((e) => e);
    expect(alone.status).toBe(400);

    // With an application protocol offered too, odin.v1 (else the other one) is the answer, in
    // either order, and the 101 never carries the token.
    for (const [offered, answer] of [['odin.v1', 'odin.v1'], ['json, odin.v1', 'odin.v1'], ['json', 'json']]) {
      for (const header of [`${offered}, ${bearer}`, `${bearer}, ${offered}`]) {
        const raw = await exchange(srv.port, upgradeRequest('/ws', { 'Sec-WebSocket-Protocol': header }), 1000);
        expect(raw.head?.status, header).toBe(101);
        expect(raw.head?.headers['sec-websocket-protocol'], header).toBe(answer);
        expect(raw.raw, header).not.toContain(jwt);
      }
    }
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

  it('closes a client with 4001 once its token expires while connected, refused refreshes notwithstanding', async () => {
    const exp = now() + 3;
    const c = await TestClient.connect(`${srv.wsUrl}?token=${await token({ channels: ['trades:*'] }, { exp })}`);
    expect((await c.subscribe(['trades:ODIN2'])).op).toBe('subscribed');
    // Refreshes that must not extend it: each is refused with its code, the connection stays.
    const refusals: Array<[string, unknown, string]> = [
      ['unknown secret', await token({}, { secret: OTHER, exp: now() + 300 }), 'TOKEN_INVALID'],
      ['expired', await token({}, { exp: now() - 60 }), 'TOKEN_EXPIRED'],
      ['no exp', await token({}, { exp: null }), 'TOKEN_NO_EXP'],
      ['other audience', await token({}, { aud: 'someone-else', exp: now() + 300 }), 'TOKEN_AUDIENCE'],
      ['other issuer', await token({}, { iss: 'evil-issuer', exp: now() + 300 }), 'TOKEN_ISSUER'],
      ['claim no longer allows a held channel', await token({ channels: ['prices:*'] }, { exp: now() + 300 }), 'FORBIDDEN_CHANNEL'],
      ['token not a string', { jwt: 1 }, 'BAD_REQUEST'],
      ['empty token', '', 'BAD_REQUEST'],
      ['token over 8192 chars', 'x'.repeat(9000), 'BAD_REQUEST'],
    ];
    for (const [what, tok, code] of refusals) {
      expect(await c.request({ op: 'refresh', token: tok }), what).toMatchObject({ op: 'error', code });
    }
    expect(await c.request({ op: 'refresh', token: await token({ channels: ['prices:*'] }, { exp: now() + 300 }) })).toMatchObject({ channels: ['trades:ODIN2'] });
    expect(c.closeCode).toBeNull();
    await until(() => c.closeCode !== null, 'expired client closed', 20_000);
    expect(c.closeCode).toBe(4001);
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000);
    await expectWitnessServed(srv, witness);
  });

  it('keeps a client that refreshes before exp, under the new claims', async () => {
    const exp = now() + 3;
    const c = await TestClient.connect(`${srv.wsUrl}?token=${await token({ channels: ['trades:*'] }, { exp })}`);
    expect((await c.subscribe(['trades:ODIN4'])).op).toBe('subscribed');
    const newExp = now() + 300;
    // Signed with the previous secret: a rotation window applies to refreshes too.
    const fresh = await token({ channels: ['trades:*', 'prices:ODIN5'] }, { exp: newExp, secret: PREVIOUS });
    expect(await c.request({ op: 'refresh', token: fresh })).toMatchObject({ op: 'refreshed', exp: newExp });
    expect((await c.subscribe(['prices:ODIN5'])).op).toBe('subscribed'); // the new claim applies
    await pastDeadline(exp);
    expect(c.closeCode).toBeNull();
    const mark = c.messages.length;
    await until(() => c.messages.length >= mark + 5, 'refreshed client keeps receiving');
    expect((await c.request({ op: 'ping' })).op).toBe('pong');
    expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
    expect(c.closeCode).toBeNull();
    c.close();
    await expectWitnessServed(srv, witness);
  });
});

describe('auth with WS_AUTH_SECRET (discouraged) and WS_AUTH_REQUIRE_EXP=false', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '1', FEED_RATE: '20', WS_AUTH_SECRET: CURRENT, WS_AUTH_REQUIRE_EXP: 'false' } });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('warns at start that names WS_AUTH_SECRET_FILE, never the secret', () => {
    const warn = srv.logs.filter((l) => l.level === 40).map((l) => String(l.msg));
    expect(warn.some((m) => m.includes('WS_AUTH_SECRET') && m.includes('WS_AUTH_SECRET_FILE'))).toBe(true);
    expect(JSON.stringify(srv.logs) + srv.stderr()).not.toContain(CURRENT);
  });

  it('applies the clock tolerance (default 5 s) at connect and to the 4001 close', async () => {
    const exp = now() - 2; // passed, but within the tolerance
    const c = await TestClient.connect(`${srv.wsUrl}?token=${await token({}, { exp })}`);
    expect((await c.subscribe(['trades:ODIN2'])).op).toBe('subscribed');
    await until(() => c.closeCode !== null, 'client closed once exp + tolerance passed', 20_000);
    expect(c.closeCode).toBe(4001);
    expect(Date.now()).toBeGreaterThanOrEqual((exp + 5) * 1000);
    const beyond = await TestClient.connect(`${srv.wsUrl}?token=${await token({}, { exp: now() - 10 })}`).catch((e) => e);
    expect(beyond.status).toBe(401);
  });

  it('accepts a token without exp (no audience or issuer checked) and keeps it; one with exp still runs out', async () => {
    const forever = await TestClient.connect(`${srv.wsUrl}?token=${await token({}, { exp: null, aud: null, iss: null })}`);
    expect((await forever.subscribe(['trades:ODIN1'])).op).toBe('subscribed');
    const exp = now() + 2;
    const short = await TestClient.connect(`${srv.wsUrl}?token=${await token({}, { exp, aud: 'anyone', iss: 'anyone' })}`);
    const noExpRefresh = await short.request({ op: 'refresh', token: await token({}, { exp: now() - 60 }) });
    expect(noExpRefresh).toMatchObject({ op: 'error', code: 'TOKEN_EXPIRED' });
    await until(() => short.closeCode !== null, 'expired client closed', 20_000);
    expect(short.closeCode).toBe(4001);
    expect(forever.closeCode).toBeNull();
    // A refresh to a token without exp is accepted and reports none.
    const r = await forever.request({ op: 'refresh', token: await token({}, { exp: null }) });
    expect(r.op).toBe('refreshed');
    expect(r).not.toHaveProperty('exp');
    const mark = forever.messages.length;
    await until(() => forever.messages.length >= mark + 3, 'exp-less client keeps receiving');
    expect(forever.closeCode).toBeNull();
    forever.close();
  });
});

describe('auth off', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '1' } });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('answers refresh with AUTH_DISABLED and still refuses a bearer-only subprotocol offer', async () => {
    const c = await TestClient.connect(srv.wsUrl);
    expect(await c.request({ op: 'refresh', token: 'x.y.z' })).toMatchObject({ op: 'error', code: 'AUTH_DISABLED' });
    expect((await c.request({ op: 'ping' })).op).toBe('pong');
    c.close();
    const r = await exchange(srv.port, upgradeRequest('/ws', { 'Sec-WebSocket-Protocol': 'bearer.abc.def.ghi' }));
    expect(r.head?.status).toBe(400);
    expect(JSON.parse(r.head!.body)).toMatchObject({ code: 'PROTOCOL_REQUIRED' });
    expect(r.raw).not.toContain('abc.def.ghi');
  });
});
