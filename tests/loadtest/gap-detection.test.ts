// The generator's sequence check against a server that misbehaves on purpose: a tiny protocol-v1
// server (real `ws` on port 0) that skips one seq on one channel, repeats one on another, and
// restarts a third one's numbering under a new epoch (what the bus does after evicting it).
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { runLoadtestCli, tempOut } from './run-loadtest.js';

const CLIENTS = 6;
const SKIPPED = 5; // trades:GAP goes ..., 4, 6, ... for every client
const REPEATED = 3; // trades:DUP goes ..., 3, 3, 4, ... for every client
const RESTART = 4; // trades:EPO goes (e1) 1..4, then (e2) 1, 2, ... for every client

function startFaultyServer(): Promise<{ wss: WebSocketServer; url: string }> {
  return new Promise((resolve) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/ws' }, () => {
      const { port } = wss.address() as AddressInfo;
      resolve({ wss, url: `ws://127.0.0.1:${port}/ws` });
    });
    wss.on('connection', (ws: WebSocket) => {
      let timer: NodeJS.Timeout | null = null;
      ws.on('message', (raw) => {
        const req = JSON.parse(raw.toString());
        if (req.op !== 'subscribe') return;
        ws.send(JSON.stringify({ op: 'subscribed', channels: req.channels, id: req.id }));
        let i = 0;
        timer ??= setInterval(() => {
          i++;
          const ts = Date.now();
          // One channel as single-object frames, the other inside array frames (coalesced form).
          ws.send(JSON.stringify({ channel: 'trades:GAP', seq: i < SKIPPED ? i : i + 1, ts, data: { price: 1 } }));
          ws.send(JSON.stringify([{ channel: 'trades:DUP', seq: i <= REPEATED ? i : i - 1, ts, data: { price: 2 } }]));
          const epoch = i <= RESTART ? 'e1' : 'e2';
          ws.send(JSON.stringify({ channel: 'trades:EPO', epoch, seq: i <= RESTART ? i : i - RESTART, ts, data: { price: 3 } }));
        }, 20);
      });
      ws.on('close', () => timer && clearInterval(timer));
    });
  });
}

describe('loadtest sequence checking', () => {
  let server: { wss: WebSocketServer; url: string };
  beforeAll(async () => {
    server = await startFaultyServer();
  });
  afterAll(async () => {
    for (const c of server?.wss.clients ?? []) c.terminate();
    await new Promise((r) => server?.wss.close(r));
  });

  it('reports a skipped seq as loss, a repeated one as a duplicate, and a new epoch as a restart, per client', async () => {
    const out = tempOut();
    const run = await runLoadtestCli([
      '--url', server.url, '--health', 'off', '--channels', 'trades:GAP,trades:DUP,trades:EPO',
      '--target', String(CLIENTS), '--hold', '2', '--workers', '2', '--out', out, '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    expect(r.connections.opened).toBe(CLIENTS);
    expect(r.deliveries.total).toBeGreaterThan(0);
    expect(r.seq).toEqual({ gaps: CLIENTS, missing: CLIENTS, duplicates: CLIENTS, reordered: 0, epoch_changes: CLIENTS });
    expect(r.slo.met).toBe(false);
    expect(r.slo.violations.join('\n')).toMatch(/loss: 6 messages missing in 6 gaps/);
    expect(r.capacity).toBeNull();
    // Without /health the run still reports, and says server figures are missing.
    expect(r.server_info.max_connections).toBeNull();
    expect(existsSync(r.files.result_json)).toBe(true);
    expect(JSON.parse(readFileSync(r.files.result_json, 'utf8')).seq.missing).toBe(CLIENTS);
  });
});
