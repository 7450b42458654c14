// Limits at the HTTP edge and in supervision: Origin allow-list, per-IP limit, a descriptor
// shortage (the front and its shards stay up, refuse, and recover), a crash-looping shard.
import { spawn } from 'node:child_process';
import net from 'node:net';
import readline from 'node:readline';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TestClient } from '../support/client.js';
import { SERVER, getHealth, startServer, until } from '../support/server.js';

function upgrade(url: string, headers: Record<string, string> = {}): Promise<{ open: WebSocket | null; status: number | null; body: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    ws.once('open', () => resolve({ open: ws, status: 101, body: '' }));
    ws.once('unexpected-response', (_q, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ open: null, status: res.statusCode ?? 0, body }));
    });
    ws.once('error', () => resolve({ open: null, status: null, body: '' }));
  });
}

describe('abuse limits', () => {
  it('refuses an Origin outside WS_ALLOWED_ORIGINS with 403, counted; allowed and absent Origins connect', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '2', WS_ALLOWED_ORIGINS: 'https://app.example.com' } });
    try {
      const bad = await upgrade(srv.wsUrl, { Origin: 'https://evil.example.net' });
      expect(bad.status).toBe(403);
      expect(JSON.parse(bad.body).error).toBe('forbidden_origin');
      const good = await upgrade(srv.wsUrl, { Origin: 'https://app.example.com' });
      expect(good.status).toBe(101);
      const none = await upgrade(srv.wsUrl);
      expect(none.status).toBe(101);
      const { body } = await getHealth(srv.healthUrl);
      expect(body.system.rejected_by_reason.origin).toBe(1);
      good.open!.terminate();
      none.open!.terminate();
    } finally {
      await srv.stop();
    }
  });

  it('limits connections per source IP (429 + Retry-After), counted, other addresses unaffected', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '1', WS_MAX_CONNECTIONS_PER_IP: '5', WS_RETRY_AFTER_S: '9' } });
    try {
      const mine = [];
      for (let i = 0; i < 5; i++) mine.push(await upgrade(srv.wsUrl));
      expect(mine.map((r) => r.status)).toEqual([101, 101, 101, 101, 101]);
      const sixth = await upgrade(srv.wsUrl);
      expect(sixth.status).toBe(429);
      // Another source address (127.0.0.2 is loopback too) still connects.
      const other = await new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(srv.wsUrl, { localAddress: '127.0.0.2' });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
      const { body } = await getHealth(srv.healthUrl);
      expect(body.system.rejected_by_reason.per_ip).toBe(1);
      for (const r of mine) r.open!.terminate();
      other.terminate();
      // Freed: the address may connect again.
      await until(async () => (await getHealth(srv.healthUrl)).body.system.total_connections === 0, 'closed');
      expect((await upgrade(srv.wsUrl)).status).toBe(101);
    } finally {
      await srv.stop();
    }
  });

  it('with few descriptors and 1.5x that many half-open HTTP connections: stays up, answers /health, refuses upgrades with 503, recovers', async () => {
    const NOFILE = 400;
    const proc = spawn('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, process.execPath, SERVER, '--lb-addr', '127.0.0.1:0'], {
      env: { ...process.env, KAFKA_BROKERS: '', WS_SHARDS: '1', LOG_LEVEL: 'info', WS_HEADERS_TIMEOUT_MS: '60000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = readline.createInterface({ input: proc.stdout! });
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no listening line')), 20_000);
      lines.on('line', (l) => {
        try {
          const r = JSON.parse(l);
          if (r.msg === 'listening') (clearTimeout(t), resolve(r.port));
        } catch {}
      });
    });
    const url = `ws://127.0.0.1:${port}/ws`;
    const health = `http://127.0.0.1:${port}/health`;
    const half: net.Socket[] = [];
    try {
      // WebSocket clients first, up to the descriptor headroom: past it upgrades get 503.
      const clients: WebSocket[] = [];
      let refused: { status: number | null; body: string } | null = null;
      for (let i = 0; i < NOFILE && !refused; i++) {
        const r = await upgrade(url);
        if (r.open) clients.push(r.open);
        else refused = r;
      }
      expect(refused?.status).toBe(503);
      expect(JSON.parse(refused!.body).reason).toBe('fd_limit');
      for (const c of clients.splice(0, 100)) c.terminate();
      // Then a flood of half-open HTTP connections (request heads never finished).
      for (let i = 0; i < NOFILE * 1.5; i++) {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', () => {});
        s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
        half.push(s);
      }
      await new Promise((r) => setTimeout(r, 500));
      const h = await until(async () => {
        const r = await getHealth(health);
        return r.status === 200 ? r.body : null;
      }, '/health answers during the flood');
      expect(h.shards[0].up).toBe(true);
      expect(h.system.rejected_by_reason.http_evicted).toBeGreaterThan(0);
      expect(proc.exitCode).toBeNull();
      for (const s of half) s.destroy();
      for (const c of clients) c.terminate();
      await until(async () => (await getHealth(health)).body.system.total_connections === 0, 'everything closed');
      const again = await upgrade(url);
      expect(again.status).toBe(101);
      again.open!.terminate();
      expect((await getHealth(health)).body.shards[0].restarts).toBe(0);
    } finally {
      for (const s of half) s.destroy();
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  }, 120_000);

  it('reports a shard killed in a loop as crash-looping with a bounded backoff; the others are unaffected', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '2', FEED_RATE: '20' } });
    try {
      const witness = await TestClient.connect(srv.wsUrl);
      await witness.subscribe(['trades:*']);
      const h0 = (await getHealth(srv.healthUrl)).body;
      for (let i = 0; i < 4; i++) {
        const { body } = await until(async () => {
          const h = await getHealth(srv.healthUrl);
          return h.body.shards[1].up && h.body.shards[1].restarts === i ? h : null;
        }, `shard 1 up for kill ${i + 1}`, 20_000);
        process.kill(body.shards[1].pid, 'SIGKILL');
      }
      const looping = await until(async () => {
        const h = await getHealth(srv.healthUrl);
        return h.body.shards[1].crash_looping ? h.body : null;
      }, 'crash-looping reported');
      expect(looping.shards[0].crash_looping).toBe(false);
      expect(looping.shards[0].pid).toBe(h0.shards[0].pid);
      const metrics = await (await fetch(srv.metricsUrl)).text();
      expect(metrics).toMatch(/odin_ws_shard_crash_looping\{shard="1"\} 1/);
      // The longest wait between restarts is the 5 s cap: it comes back.
      await until(async () => (await getHealth(srv.healthUrl)).body.shards[1].up, 'restarted after the backoff', 15_000);
      if (witness.closeCode === null) {
        const n = witness.messages.length;
        await until(() => witness.messages.length > n + 5, 'a witness on the other shard keeps receiving');
      }
      witness.close();
    } finally {
      await srv.stop();
    }
  }, 90_000);
});
