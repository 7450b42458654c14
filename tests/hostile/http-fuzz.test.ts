// Black-box fuzz of the HTTP edge (issue 16): arbitrary header values and query strings on /ws,
// /health and /metrics, as plain requests and as valid and invalid upgrades, written as raw bytes
// to a real 2-shard server. Whatever each answer is, the front and the shards never restart,
// /health still answers and a witness keeps its channel in seq order.
import net from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { wsKey } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed } from './support/witness.js';

const byte = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
/** Header values: mostly printable, sometimes any byte (CR, LF, NUL, obs-text). */
const headerValue = fc.oneof({ arbitrary: fc.string({ unit: printable, maxLength: 60 }), weight: 4 }, { arbitrary: fc.string({ unit: byte, maxLength: 60 }), weight: 1 }, fc.constantFrom('', ' ', 'websocket', 'Upgrade', '13', '8', wsKey(), 'bearer.x', 'a, b', 'permessage-deflate; client_max_window_bits', 'x'.repeat(4000)));
const HEADER_NAMES = ['Host', 'Upgrade', 'Connection', 'Sec-WebSocket-Key', 'Sec-WebSocket-Version', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Origin', 'Authorization', 'Cookie', 'X-Forwarded-For', 'Forwarded', 'Content-Length', 'Transfer-Encoding', 'Expect', 'Accept-Encoding'];
const headerName = fc.oneof({ arbitrary: fc.constantFrom(...HEADER_NAMES), weight: 4 }, { arbitrary: fc.string({ unit: printable, minLength: 1, maxLength: 12 }), weight: 1 });
const query = fc.oneof(
  fc.constant(''),
  fc.string({ unit: printable, maxLength: 80 }).map((q) => `?${q}`),
  fc.string({ maxLength: 40 }).map((q) => `?token=${encodeURIComponent(q)}`),
  fc.string({ unit: byte, maxLength: 40 }).map((q) => `?${q}`),
);

const request = fc
  .record({
    method: fc.constantFrom('GET', 'GET', 'GET', 'HEAD', 'POST', 'OPTIONS', 'PUT', 'CONNECT', 'G\u00e9T'),
    path: fc.constantFrom('/ws', '/ws', '/health', '/metrics', '/ws/', '//ws', '/WS', '*'),
    query,
    upgrade: fc.constantFrom('valid', 'broken', 'none'),
    headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
  })
  .map(({ method, path, query: q, upgrade, headers }) => {
    const base: Array<[string, string]> = [['Host', '127.0.0.1']];
    if (upgrade !== 'none') {
      base.push(['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', upgrade === 'valid' ? wsKey() : 'short']);
    }
    const lines = [...base, ...headers].map(([k, v]) => `${k}: ${v}`);
    return `${method} ${path}${q} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
  });

/** A valid upgrade to /ws with fuzzed extras: these reach a shard's WebSocket handshake. */
const EXTRA_NAMES = ['Origin', 'Sec-WebSocket-Protocol', 'Sec-WebSocket-Extensions', 'Cookie', 'Authorization', 'X-Forwarded-For', 'User-Agent'];
const nearValidUpgrade = fc
  .record({ query, headers: fc.array(fc.tuple(fc.constantFrom(...EXTRA_NAMES), fc.oneof(fc.string({ unit: printable, maxLength: 80 }), headerValue)), { maxLength: 3 }) })
  .map(({ query: q, headers }) => {
    const lines = [['Host', '127.0.0.1'], ['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', wsKey()], ...headers].map(([k, v]) => `${k}: ${v}`);
    return `GET /ws${q} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
  });

/** Sends the bytes and waits (bounded) for a status line or the close; then hangs up. */
function send(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.from(bytes, 'latin1')));
    let got = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 1000);
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) done();
    });
    s.on('error', done);
    s.on('close', done);
  });
}

describe('HTTP edge fuzz', () => {
  let srv: RunningServer;
  let witness: TestClient;
  let before: Array<{ pid: number; restarts: number }>;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '20' } });
    witness = await connectWitness(srv);
    before = (await getHealth(srv.healthUrl)).body.shards.map((s: any) => ({ pid: s.pid, restarts: s.restarts }));
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });

  it('survives arbitrary headers and query strings on every path, upgrades included', async () => {
    const statuses = new Map<string, number>();
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(request, nearValidUpgrade), async (req) => {
        runs++;
        const reply = await send(srv.port, req);
        const status = /^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 'none';
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        // Any answer (or none) is fine for one request; the process must still be there.
        expect(srv.proc.exitCode).toBeNull();
      }),
      { numRuns: 400, interruptAfterTimeLimit: 25_000, endOnFailure: true },
    );
    expect(runs).toBeGreaterThan(50);
    // The fuzz reached both the refusals and the shards (101s were handed off).
    expect(statuses.get('101') ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(20);
    expect(statuses.get('400') ?? 0, JSON.stringify([...statuses])).toBeGreaterThan(0);
    const h = await until(async () => {
      const r = await getHealth(srv.healthUrl);
      return r.status === 200 && r.body.system.total_connections === 1 ? r.body : null;
    }, 'health 200 with only the witness connected');
    expect(h.shards.map((s: any) => ({ pid: s.pid, restarts: s.restarts }))).toEqual(before);
    expect(h.shards.every((s: any) => s.up)).toBe(true);
    await expectWitnessServed(srv, witness);
  });
});
