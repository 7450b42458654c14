// The client's continuity and reconnect rules, frame by frame, against a scripted peer.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { WebSocketConstructor } from '../../app/client/index.js';
import { until } from '../support/server.js';
import { Peer, msg } from './peer.js';
import { recordedClient, type Recorded } from './support.js';

const FAST = { backoffBaseMs: 20, backoffMaxMs: 50, connectTimeoutMs: 2000, ackTimeoutMs: 3000, pingIntervalMs: 0 };

describe('client continuity rules', () => {
  let peer: Peer;
  const clients: Recorded[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.client.close();
    await peer?.stop();
  });
  async function setup(opts = {}) {
    peer = new Peer();
    const url = await peer.start();
    const c = recordedClient({ url, ...FAST, ...opts });
    clients.push(c);
    return c;
  }
  const positions = (c: Recorded) => c.messages.map((m) => m.pos);

  it('never delivers a message whose pos is at or before the last delivered one of the same origin', async () => {
    const c = await setup();
    c.client.connect();
    await c.client.subscribe(['trades:A']);
    const p = peer.latest();
    p.send([msg('trades:A', 1, 'p0:10'), msg('trades:A', 2, 'p0:11')]);
    p.send(msg('trades:A', 2, 'p0:11'));
    p.send([msg('trades:A', 1, 'p0:10'), msg('trades:A', 3, 'p0:12')]);
    // Another origin is not comparable: delivered.
    p.send(msg('trades:A', 1, 'e9:1', 'E2'));
    await until(() => c.messages.length >= 4, 'four deliveries');
    expect(positions(c)).toEqual(['p0:10', 'p0:11', 'p0:12', 'e9:1']);
    expect(c.client.stats.duplicates).toBe(2);
  });

  it('fills a seq jump by re-subscribing the channel with since, delivering the replay in order and nothing twice', async () => {
    const c = await setup();
    c.client.connect();
    await c.client.subscribe(['trades:*']);
    const p = peer.latest();
    const mark = p.requests.length;
    p.send([msg('trades:A', 1, 'p0:10'), msg('trades:A', 2, 'p0:11'), msg('trades:A', 4, 'p0:13')]);
    const req = await p.next('subscribe', mark);
    expect(req).toMatchObject({ channels: ['trades:*'], since: { 'trades:A': 'p0:11' } });
    // The gap message (held) is not delivered before the answer.
    expect(positions(c)).toEqual(['p0:10', 'p0:11']);
    p.send({ op: 'subscribed', channels: ['trades:*'], id: req.id, recovery: { 'trades:A': { replayed: 2 } } });
    p.send([msg('trades:A', 3, 'p0:12'), msg('trades:A', 4, 'p0:13')]);
    p.send(msg('trades:A', 5, 'p0:14'));
    await until(() => c.messages.length >= 5, 'five deliveries');
    expect(positions(c)).toEqual(['p0:10', 'p0:11', 'p0:12', 'p0:13', 'p0:14']);
    expect(c.messages.map((m) => m.replayed)).toEqual([false, false, true, true, false]);
    expect(c.recovered).toEqual([{ channel: 'trades:A', replayed: 2 }]);
    expect(c.gaps).toEqual([]);
  });

  it('reports an unrecoverable seq jump as a gap with what is known, then delivers what it held', async () => {
    const c = await setup();
    c.client.connect();
    await c.client.subscribe(['trades:A']);
    const p = peer.latest();
    const mark = p.requests.length;
    p.send([msg('trades:A', 1, 'p0:10'), msg('trades:A', 9, 'p0:30')]);
    const req = await p.next('subscribe', mark);
    p.send({ op: 'subscribed', channels: ['trades:A'], id: req.id, recovery: { 'trades:A': { unrecoverable: 'out_of_window' } } });
    await until(() => c.messages.length >= 2, 'two deliveries');
    expect(c.gaps).toEqual([{ channel: 'trades:A', reason: 'out_of_window', from: 'p0:10', to: 'p0:30', missed: undefined }]);
    expect(positions(c)).toEqual(['p0:10', 'p0:30']);
  });

  it('reports a seq jump without positions (a server before continuity) as a seq gap', async () => {
    const c = await setup();
    c.client.connect();
    await c.client.subscribe(['trades:A']);
    peer.latest().send([{ channel: 'trades:A', epoch: 'E', seq: 1, ts: 1, data: {} }, { channel: 'trades:A', epoch: 'E', seq: 4, ts: 2, data: {} }]);
    await until(() => c.messages.length >= 2, 'two deliveries');
    expect(c.gaps).toEqual([{ channel: 'trades:A', reason: 'seq', from: undefined, to: undefined, missed: 2 }]);
  });

  it('after a 1001 drain close waits a random delay inside the window, resubscribes with the last positions and asks the last value', async () => {
    const c = await setup({ last: true, random: () => 0.5 });
    c.client.connect();
    await c.client.subscribe(['trades:A', 'trades:B', 'prices:*']);
    const first = peer.latest();
    first.send([msg('trades:A', 1, 'p0:10'), msg('prices:X', 1, 'p1:5')]);
    await until(() => c.messages.length >= 2, 'two deliveries');
    first.ws.close(1001, '{"reconnect_within_ms":400}');
    const second = await peer.conn(2);
    const state = c.states.find((s) => s.state === 'reconnecting')!;
    expect(state).toMatchObject({ code: 1001, delayMs: 200 });
    const req = await second.next('subscribe');
    expect(req).toMatchObject({ since: { 'trades:A': 'p0:10', 'prices:X': 'p1:5' }, last: true });
    expect([...(req.channels as string[])].sort()).toEqual(['prices:*', 'trades:A', 'trades:B']);
    second.send({ op: 'subscribed', channels: req.channels, id: req.id, recovery: { 'trades:A': { replayed: 1 }, 'prices:X': { unrecoverable: 'unknown_origin' }, 'trades:B': { last: 1 } } });
    second.send([msg('trades:A', 2, 'p0:11', 'E9'), msg('trades:B', 7, 'p0:3', 'E9')]);
    second.send([msg('trades:A', 1, 'p0:11', 'E9'), msg('trades:A', 2, 'p0:12', 'E9')]);
    await until(() => c.messages.length >= 5, 'five deliveries');
    expect(positions(c)).toEqual(['p0:10', 'p1:5', 'p0:11', 'p0:3', 'p0:12']);
    expect(c.messages.slice(2).map((m) => m.replayed)).toEqual([true, true, false]);
    expect(c.recovered).toEqual([{ channel: 'trades:A', replayed: 1 }]);
    expect(c.gaps).toEqual([{ channel: 'prices:X', reason: 'unknown_origin', from: 'p1:5', to: undefined, missed: undefined }]);
    expect(c.client.stats.duplicates).toBe(1);
  });

  it('reports a resubscribe a server answers without recovery as an unsupported gap', async () => {
    const c = await setup();
    c.client.connect();
    await c.client.subscribe(['trades:A']);
    peer.latest().send(msg('trades:A', 1, 'p0:10'));
    await until(() => c.messages.length >= 1, 'a delivery');
    peer.latest().ws.close(1012);
    const second = await peer.conn(2);
    const req = await second.next('subscribe');
    second.send({ op: 'subscribed', channels: req.channels, id: req.id });
    await until(() => c.gaps.length >= 1, 'a gap');
    expect(c.gaps[0]).toMatchObject({ channel: 'trades:A', reason: 'unsupported', from: 'p0:10' });
  });

  it('waits at least Retry-After after a 503 when the platform shows the status (the ws package)', async () => {
    const c = await setup({ WebSocket: WebSocket as unknown as WebSocketConstructor, random: () => 0 });
    peer.refuse = 'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n';
    c.client.connect();
    await until(() => c.states.some((s) => s.state === 'reconnecting'), 'reconnecting');
    expect(c.states.find((s) => s.state === 'reconnecting')!.delayMs).toBeGreaterThanOrEqual(1000);
    peer.refuse = null;
    await until(() => c.client.state === 'open', 'open after the refusal');
  });

  it('backs off after 1013 and surfaces the policy closes as typed events', async () => {
    const c = await setup({ random: () => 0.999 });
    c.client.connect();
    await c.client.subscribe(['trades:A']);
    for (const [i, code] of [1013, 1008, 4008].entries()) {
      (await peer.conn(i + 1)).ws.close(code);
      await peer.conn(i + 2);
    }
    expect(c.closes.map((x) => x.kind)).toEqual(['try_again_later', 'policy', 'slow_consumer']);
    const delays = c.states.filter((s) => s.state === 'reconnecting').map((s) => s.delayMs!);
    // 1013 starts at the second step of the backoff (2 x base), and it grows until stable.
    expect(delays[0]).toBeGreaterThanOrEqual(20);
    expect(delays[2]).toBeGreaterThanOrEqual(delays[0]);
  });

  it('offers bearer.<token> with odin.v1, reads a token function again at each connect, and stops on 4001 with a fixed token', async () => {
    let n = 0;
    const c = await setup({ token: () => `tok${++n}` });
    c.client.connect();
    const first = await peer.conn(1);
    expect(first.protocols).toEqual(['bearer.tok1', 'odin.v1']);
    first.ws.close(4001);
    expect((await peer.conn(2)).protocols).toEqual(['bearer.tok2', 'odin.v1']);
    expect(c.closes.map((x) => x.kind)).toEqual(['token_expired']);

    const fixed = recordedClient({ url: c.client['opts'].url, ...FAST, token: 'static' });
    clients.push(fixed);
    fixed.client.connect();
    (await peer.conn(3)).ws.close(4001);
    await until(() => fixed.client.state === 'closed', 'closed');
    expect(fixed.errors.map((e) => e.code)).toContain('TOKEN_EXPIRED');
  });

  it('stays down after an idle close with nothing subscribed, and connects again on the next subscribe', async () => {
    const c = await setup();
    c.client.connect();
    (await peer.conn(1)).ws.close(4009);
    await until(() => c.client.state === 'closed', 'closed');
    expect(peer.conns).toHaveLength(1);
    const ack = c.client.subscribe(['trades:A']);
    await peer.conn(2);
    expect((await ack).channels).toEqual(['trades:A']);
  });

  it('bounds the requests awaiting a reply', async () => {
    const c = await setup({ maxPending: 2 });
    c.client.connect();
    await peer.conn(1);
    await until(() => c.client.state === 'open', 'open');
    peer.autoAck = false;
    const a = c.client.subscribe(['trades:A']);
    const b = c.client.subscribe(['trades:B']);
    await expect(c.client.subscribe(['trades:C'])).rejects.toMatchObject({ code: 'CLIENT_TOO_MANY_PENDING' });
    expect(c.client.channels).toEqual(['trades:A', 'trades:B']);
    c.client.close();
    await expect(a).rejects.toMatchObject({ code: 'CLIENT_CLOSED' });
    await expect(b).rejects.toMatchObject({ code: 'CLIENT_CLOSED' });
  });

  it('survives hostile frames: not JSON, binary, wrong shapes', async () => {
    const c = await setup();
    c.client.connect();
    await c.client.subscribe(['trades:A']);
    const p = peer.latest();
    p.ws.send('not json');
    p.ws.send(Buffer.from([1, 2, 3]));
    p.send([null, 7, { channel: 5 }, { op: 'subscribed', id: 'nope' }]);
    p.send(msg('trades:A', 1, 'p0:1'));
    await until(() => c.messages.length >= 1, 'the valid message');
    expect(c.client.stats.invalid).toBeGreaterThanOrEqual(4);
    expect(c.client.state).toBe('open');
  });
});
