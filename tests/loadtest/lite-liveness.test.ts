// The handshake-only lite client against the real server's liveness checks: it answers pings
// (so an idle run outlives many ping periods), and an idle-timeout close (4009) is reported by
// its code and named as the run's limit, not charged to a resource.
import { createHash } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { liteConnect } from '../../app/loadtest/lite-client.js';
import { startServer, type RunningServer } from '../support/server.js';
import { runLoadtestCli, tempOut } from './run-loadtest.js';

const PING_MS = 300;

async function closesByReason(srv: RunningServer, reason: string): Promise<number> {
  const text = await (await fetch(srv.metricsUrl)).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('odin_ws_client_closes_total{') && line.includes(`reason="${reason}"`)) n += Number(line.split(' ').pop());
  return n;
}

describe('lite client and the server liveness checks', () => {
  let srv: RunningServer | null = null;
  afterEach(async () => {
    await srv?.stop();
    srv = null;
  });

  it('answers pings: idle connections held through 10 ping periods are not cut off', async () => {
    srv = await startServer({ env: { WS_SHARDS: '1', WS_PING_INTERVAL_MS: String(PING_MS), WS_IDLE_TIMEOUT_MS: '0' } });
    const run = await runLoadtestCli(['--url', srv.wsUrl, '--target', '20', '--hold', String((10 * PING_MS) / 1000), '--channels', 'none', '--out', tempOut(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    expect(r.config.client).toBe('lite');
    expect(r.connections).toMatchObject({ opened: 20, closed_by_server: {} });
    expect(r.steps[0].open_at_end).toBe(20);
    expect(r.limited_by).toBe('none');
    expect(await closesByReason(srv, 'ping_timeout')).toBe(0);
  });

  it.each(['lite', 'ws'])('reports idle-timeout closes as 4009 and limited_by idle_timeout (%s client)', async (client) => {
    srv = await startServer({ env: { WS_SHARDS: '1', WS_PING_INTERVAL_MS: String(PING_MS), WS_IDLE_TIMEOUT_MS: '800' } });
    const run = await runLoadtestCli(['--url', srv.wsUrl, '--target', '10', '--hold', '3', '--channels', 'none', '--client', client, '--out', tempOut(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    expect(r.connections).toMatchObject({ opened: 10, closed_by_server: { '4009': 10 } });
    expect(r.slo.met).toBe(false);
    expect(r.limited_by).toBe('idle_timeout');
    expect(r.limited_by_detail).toMatch(/WS_IDLE_TIMEOUT_MS=0/);
    expect(await closesByReason(srv, 'idle')).toBe(10);
  });
});

/** Unmasks one client frame (the lite client sends only small control frames). */
function readClientFrame(b: Buffer): { opcode: number; masked: boolean; payload: Buffer } {
  const len = b[1] & 0x7f;
  const mask = b.subarray(2, 6);
  return { opcode: b[0] & 0x0f, masked: (b[1] & 0x80) !== 0, payload: Buffer.from(b.subarray(6, 6 + len).map((x, i) => x ^ mask[i & 3])) };
}

describe('lite client on the wire (a raw RFC 6455 peer)', () => {
  it('answers a ping with a masked pong of the same payload, and echoes the close before reporting its code', async () => {
    const fromClient: Array<ReturnType<typeof readClientFrame>> = [];
    const server = net.createServer((sock) => {
      let head = '';
      let upgraded = false;
      sock.on('data', (chunk) => {
        if (upgraded) {
          fromClient.push(readClientFrame(chunk));
          if (fromClient.length === 1) sock.write(Buffer.from([0x88, 0x02, 0x0f, 0xa9])); // close 4009
          else sock.end();
          return;
        }
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        upgraded = true;
        const key = /sec-websocket-key: (\S+)/i.exec(head)![1];
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        // The 101 and the first ping in one write: frames may arrive with the handshake.
        sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
        sock.write(Buffer.concat([Buffer.from([0x89, 0x04]), Buffer.from('beat')]));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const closed = new Promise<number>((resolve, reject) => {
      liteConnect(new URL(`ws://127.0.0.1:${port}/ws`), undefined, undefined, {
        open: () => {},
        rejected: (status) => reject(new Error(`rejected ${status}`)),
        error: (code) => reject(new Error(code)),
        closed: resolve,
      });
    });
    try {
      expect(await closed).toBe(4009);
      expect(fromClient).toEqual([
        { opcode: 0xa, masked: true, payload: Buffer.from('beat') },
        { opcode: 0x8, masked: true, payload: Buffer.from([0x0f, 0xa9]) },
      ]);
    } finally {
      server.close();
    }
  });
});
