import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';

describe('socket handoff', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '2' } });
  });
  afterAll(() => srv?.stop());

  // Regression: the front once kept read interest on a handed-off fd, so a frame sent right
  // after the 101 could be read (and dropped) by the front instead of the shard.
  it('never loses the first frame a client sends right after the upgrade', async () => {
    const n = 400;
    const results = await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(srv.wsUrl);
            const timer = setTimeout(() => (ws.terminate(), resolve('no reply')), 20_000);
            ws.on('open', () => ws.send('{"op":"ping","id":1}'));
            ws.on('message', (d) => {
              clearTimeout(timer);
              ws.close();
              resolve(JSON.parse(d.toString()).op);
            });
            ws.on('error', (e) => (clearTimeout(timer), resolve(`error ${e.message}`)));
          }),
      ),
    );
    const bad = results.filter((r) => r !== 'pong');
    expect(bad).toEqual([]);
  });
});
