// GET /status (JSON counters and broker state), /metrics (Prometheus) and /health for the publisher.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { PublisherStatus } from './publisher.js';

export interface StatusServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startStatusServer(opts: { host: string; port: number; status: () => PublisherStatus; registry: Registry }): Promise<StatusServer> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, 'application/json', JSON.stringify({ error: 'only GET' }));
    if (url === '/status') return send(200, 'application/json', JSON.stringify(opts.status()));
    if (url === '/health') return send(200, 'application/json', JSON.stringify({ status: 'ok' }));
    if (url === '/metrics') {
      opts.registry.metrics().then(
        (text) => send(200, opts.registry.contentType, text),
        (e: Error) => send(500, 'text/plain', e.message),
      );
      return;
    }
    send(404, 'application/json', JSON.stringify({ error: 'not found; try /status, /metrics or /health' }));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
