// Hostile bytes at every layer (TCP, HTTP, the upgrade, WebSocket framing, protocol ops), all on
// ONE shard next to a witness: each gets the protocol-correct refusal, the shard stays up, and
// the witness keeps its channel with no gap.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/client.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { Op, RawConn, clientFrame, exchange, json, text, upgradeRequest } from './support/raw-ws.js';
import { connectWitness, expectWitnessServed } from './support/witness.js';

const MAX_PAYLOAD = 1024;
const OPS_PER_SEC = 20;
const MAX_CHANNELS = 5;

describe('hostile input', () => {
  let srv: RunningServer;
  let witness: TestClient;
  let shardPid: number;
  beforeAll(async () => {
    srv = await startServer({
      env: {
        WS_SHARDS: '1',
        FEED_RATE: '20',
        WS_MAX_PAYLOAD: String(MAX_PAYLOAD),
        WS_CLIENT_OPS_PER_SEC: String(OPS_PER_SEC),
        WS_MAX_CHANNELS: String(MAX_CHANNELS),
      },
    });
    witness = await connectWitness(srv);
    shardPid = (await getHealth(srv.healthUrl)).body.shards[0].pid;
  });
  afterAll(async () => {
    witness?.close();
    await srv?.stop();
  });
  // Raw connections a failed assertion left open must not leak into the next test's counts.
  const opened: RawConn[] = [];
  const open = async () => {
    const c = await RawConn.open(srv.port);
    opened.push(c);
    return c;
  };
  afterEach(() => {
    for (const c of opened.splice(0)) c.destroy();
  });

  /** The shard never died and the front counts only the witness again. */
  async function expectUnharmed(): Promise<void> {
    const h = await until(async () => {
      const { body } = await getHealth(srv.healthUrl);
      return body.system.total_connections === 1 ? body : null;
    }, 'connection count back to the witness alone');
    expect(h.shards[0]).toMatchObject({ pid: shardPid, restarts: 0, up: true });
    await expectWitnessServed(srv, witness);
  }

  describe('before the upgrade', () => {
    it('answers non-HTTP bytes with 400 and closes', async () => {
      const tlsHello = Buffer.from('16030100a5010000a10303' + '00'.repeat(40), 'hex');
      for (const junk of [tlsHello, Buffer.from([0, 1, 2, 3, 255, 254, 13, 10, 13, 10]), 'SSH-2.0-OpenSSH_9.6\r\n', 'GET\r\n\r\n']) {
        const r = await exchange(srv.port, junk);
        expect(r.head?.status, String(junk)).toBe(400);
        expect(r.closedByServer).toBe(true);
      }
      await expectUnharmed();
    });

    it('refuses malformed upgrades with 400/405 before a WebSocket exists', async () => {
      const cases: Array<[string, string, number]> = [
        ['no Sec-WebSocket-Key', upgradeRequest('/ws', { 'Sec-WebSocket-Key': null }), 400],
        ['key not 16 bytes of base64', upgradeRequest('/ws', { 'Sec-WebSocket-Key': 'c2hvcnQ=' }), 400],
        ['key not base64', upgradeRequest('/ws', { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' }), 400],
        ['no version', upgradeRequest('/ws', { 'Sec-WebSocket-Version': null }), 400],
        ['unknown version', upgradeRequest('/ws', { 'Sec-WebSocket-Version': '99' }), 400],
        ['Upgrade: h2c', upgradeRequest('/ws', { Upgrade: 'h2c' }), 400],
        ['bad subprotocol list', upgradeRequest('/ws', { 'Sec-WebSocket-Protocol': 'a b,,c' }), 400],
        ['POST', upgradeRequest('/ws', {}, 'POST'), 405],
      ];
      for (const [what, req, status] of cases) {
        const r = await exchange(srv.port, req);
        expect(r.head?.status, what).toBe(status);
        expect(r.closedByServer, what).toBe(true);
      }
      // The front answered (its JSON refusal), so no shard was handed the socket.
      const k = await exchange(srv.port, upgradeRequest('/ws', { 'Sec-WebSocket-Key': null }));
      expect(k.head?.headers['content-type']).toBe('application/json');
      expect(JSON.parse(k.head!.body)).toMatchObject({ error: 'bad_request' });
      // The version refusal names the versions this server speaks (RFC 6455 §4.4).
      const v = await exchange(srv.port, upgradeRequest('/ws', { 'Sec-WebSocket-Version': '99' }));
      expect(v.head?.headers['sec-websocket-version']).toMatch(/13/);
      await expectUnharmed();
    });

    it("answers oversized headers with 431 (Node's header limit)", async () => {
      const big = upgradeRequest('/ws', { 'X-Pad': 'a'.repeat(64 * 1024) });
      const r = await exchange(srv.port, big);
      expect(r.head?.status).toBe(431);
      const plain = await exchange(srv.port, `GET /health HTTP/1.1\r\nHost: x\r\nCookie: ${'b'.repeat(64 * 1024)}\r\n\r\n`);
      expect(plain.head?.status).toBe(431);
      await expectUnharmed();
    });
  });

  describe('WebSocket framing', () => {
    const closeCases: Array<[string, () => Buffer[], number]> = [
      ['a frame over maxPayload', () => [text('x'.repeat(MAX_PAYLOAD + 1))], 1009],
      ['a header declaring 2^62 bytes', () => [clientFrame({ opcode: Op.TEXT, declaredLength: 2n ** 62n })], 1009],
      [
        'a fragment flood totalling over maxPayload',
        () => [clientFrame({ opcode: Op.TEXT, fin: false, payload: 'y'.repeat(100) }), ...Array.from({ length: 20 }, () => clientFrame({ opcode: Op.CONT, fin: false, payload: 'y'.repeat(100) }))],
        1009,
      ],
      [
        'a flood of empty fragments',
        () => [clientFrame({ opcode: Op.TEXT, fin: false }), ...Array.from({ length: 20_000 }, () => clientFrame({ opcode: Op.CONT, fin: false }))],
        1008,
      ],
      ['invalid UTF-8 in a text frame', () => [text(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))], 1007],
      [
        'invalid UTF-8 split over fragments',
        () => [clientFrame({ opcode: Op.TEXT, fin: false, payload: Buffer.from([0x22, 0xe2, 0x82]) }), clientFrame({ opcode: Op.CONT, payload: Buffer.from([0x28, 0x22]) })],
        1007,
      ],
      ['a ping over 125 bytes', () => [clientFrame({ opcode: Op.PING, payload: Buffer.alloc(126) })], 1002],
      ['a close frame over 125 bytes', () => [clientFrame({ opcode: Op.CLOSE, payload: Buffer.alloc(200) })], 1002],
      ['a fragmented ping', () => [clientFrame({ opcode: Op.PING, fin: false, payload: 'p' })], 1002],
      ['an unmasked client frame', () => [clientFrame({ opcode: Op.TEXT, payload: '{"op":"ping"}', mask: false })], 1002],
      ['reserved bits without an extension', () => [clientFrame({ opcode: Op.TEXT, payload: '{}', rsv: 4 })], 1002],
      ['a reserved opcode', () => [clientFrame({ opcode: 0x3, payload: 'x' })], 1002],
      ['a continuation with nothing to continue', () => [clientFrame({ opcode: Op.CONT, payload: 'x' })], 1002],
      ['a close frame with an invalid code', () => [clientFrame({ opcode: Op.CLOSE, payload: Buffer.from([0x03, 0xe7]) })], 1002],
    ];

    for (const [what, frames, code] of closeCases) {
      it(`closes the sender of ${what} with ${code}, and only it`, async () => {
        const c = await open();
        const bystander = await open();
        for (const f of frames()) c.send(f);
        expect(await c.waitClose()).toBe(code);
        // The server ends the TCP connection too (after its close frame, or at its close timeout).
        c.destroy();
        bystander.send(json({ op: 'ping', id: 'still-here' }));
        await until(() => bystander.replies().some((r) => r.op === 'pong' && r.id === 'still-here'), 'bystander answered');
        bystander.destroy();
        await expectUnharmed();
      });
    }

    it('answers a legal ping with a pong carrying the same payload', async () => {
      const c = await open();
      c.send(clientFrame({ opcode: Op.PING, payload: 'hello' }));
      await until(() => c.reader.frames.some((f) => f.opcode === Op.PONG && f.payload.toString() === 'hello'), 'pong');
      c.destroy();
      await expectUnharmed();
    });
  });

  describe('protocol ops', () => {
    it('rate-limits a burst of thousands of subscribes, then closes the abuser with 1008', async () => {
      const c = await open();
      const burst = Buffer.concat(Array.from({ length: 3000 }, (_, i) => json({ op: 'subscribe', channels: [`trades:T${i}`], id: i })));
      c.send(burst);
      expect(await c.waitClose()).toBe(1008);
      const replies = c.replies();
      const subscribed = replies.filter((r) => r.op === 'subscribed').length;
      const limited = replies.filter((r) => r.op === 'error' && r.code === 'RATE_LIMITED').length;
      expect(subscribed).toBeGreaterThan(0);
      expect(subscribed).toBeLessThanOrEqual(2 * OPS_PER_SEC + 1); // the documented burst (2x), plus a refill
      expect(limited).toBeGreaterThan(0);
      expect(subscribed + limited).toBeLessThan(3000); // the rest was never processed
      c.destroy();
      // Its subscriptions went with it: the shard holds only the witness's channel.
      await until(async () => (await getHealth(srv.healthUrl)).body.shards[0].channels === 1, 'abuser channels released');
      await expectUnharmed();
    });

    it('keeps a client at a sustainable rate open, answering every op', async () => {
      const c = await open();
      // Within the burst allowance: all answered, no error, connection open.
      for (let i = 0; i < OPS_PER_SEC; i++) c.send(json({ op: 'ping', id: i }));
      await until(() => c.replies().length >= OPS_PER_SEC, 'all pongs');
      expect(c.replies().every((r) => r.op === 'pong')).toBe(true);
      expect(c.isClosed).toBe(false);
      c.destroy();
      await expectUnharmed();
    });

    it('refuses channels past the per-client limit with TOO_MANY_CHANNELS and keeps the rest', async () => {
      const c = await open();
      c.send(json({ op: 'subscribe', channels: ['trades:ODIN1', 'trades:ODIN2', 'trades:ODIN3'], id: 1 }));
      c.send(json({ op: 'subscribe', channels: ['prices:ODIN1', 'prices:ODIN2'], id: 2 }));
      c.send(json({ op: 'subscribe', channels: ['prices:ODIN3'], id: 3 }));
      c.send(json({ op: 'subscribe', channels: Array.from({ length: 20 }, (_, i) => `prices:X${i}`), id: 4 }));
      // Re-subscribing to a held channel is not a new one.
      c.send(json({ op: 'subscribe', channels: ['trades:ODIN1'], id: 5 }));
      await until(() => c.replies().length >= 5, 'five replies');
      const byId = new Map(c.replies().map((r) => [r.id, r]));
      expect(byId.get(1)?.op).toBe('subscribed');
      expect(byId.get(2)?.op).toBe('subscribed');
      expect(byId.get(3)).toMatchObject({ op: 'error', code: 'TOO_MANY_CHANNELS' });
      expect(byId.get(4)).toMatchObject({ op: 'error', code: 'TOO_MANY_CHANNELS' });
      expect(byId.get(5)?.op).toBe('subscribed');
      // The five it holds still flow to it.
      await until(() => new Set(c.texts().flat().filter((m: any) => m?.channel).map((m: any) => m.channel)).size === 5, 'data on the five channels');
      expect(c.isClosed).toBe(false);
      c.destroy();
      await expectUnharmed();
    });
  });
});
