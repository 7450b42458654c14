import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getHealth, startServer, type RunningServer } from '../support/server.js';
import { exchange } from './support/raw-ws.js';

describe('slowloris', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '1', WS_HEADERS_TIMEOUT_MS: '1000' } });
  });
  afterAll(() => srv?.stop());

  it('answers 408 and closes a connection that never finishes its request head', async () => {
    // 30 s is only the test's own bound; the server must close long before it.
    const r = await exchange(srv.port, 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n', 30_000);
    expect(r.closedByServer).toBe(true);
    expect(r.head?.status).toBe(408);
    const { status, body } = await getHealth(srv.healthUrl);
    expect(status).toBe(200);
    expect(body.system.total_connections).toBe(0);
  });
});
