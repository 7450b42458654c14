// The shard's HTTP edge on the public port: /health and /metrics (answered by the front, which sees
// every process), and /ws upgrades: checked here (RFC 6455 shape, origin, admission, per-IP limit,
// auth) before `ws` completes the handshake.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import type { ChannelClaims } from '../common/ipc.js';
import type { Authenticator } from '../auth/auth.js';
import { upgradeProblem } from '../protocol/handshake.js';
import type { AdmissionGate } from './admission-gate.js';

export interface EdgeOptions {
  readonly headersTimeoutMs: number;
  readonly retryAfterS: number;
  readonly metricsAllow: readonly string[];
  /** Origins allowed to open a WebSocket; empty = any (non-browser clients send none). */
  readonly allowedOrigins: readonly string[];
  /** Connections one source IP may hold in this shard; 0 = no limit. */
  readonly perIpLimit: number;
  /** Plain HTTP connections (not yet upgraded) this shard holds at most. */
  readonly maxHttpConnections: number;
}

export interface EdgeDeps {
  readonly gate: AdmissionGate;
  readonly wss: WebSocketServer;
  readonly auth: Authenticator | null;
  /** Asks the front for the /health or /metrics answer. */
  ask(kind: 'health' | 'metrics', detail: boolean): Promise<{ status: number; type: string; body: string }>;
  onClient(ws: WebSocket, socket: net.Socket, claims: ChannelClaims | undefined, release: () => void): void;
  /** An upgrade or connection refused, by reason (503s and 4xx alike). */
  onRefused(reason: string): void;
  /** An upgrade answered (101 written, or refused), for the server's own handshake time. */
  onHandshake(outcome: 'admitted' | 'refused', acceptedAt: number): void;
}

export class HttpEdge {
  private readonly server: http.Server;
  private readonly metricsAllow = new net.BlockList();
  private readonly perIp = new Map<string, number>();
  /** Plain HTTP connections not yet upgraded, oldest first (a Set keeps insertion order). */
  private readonly pendingSockets = new Set<net.Socket>();
  /** The live page and the client bundle, read once at start from beside the server bundle. */
  private readonly pages = loadPages();

  constructor(
    private readonly opts: EdgeOptions,
    private readonly deps: EdgeDeps,
  ) {
    for (const cidr of opts.metricsAllow) {
      const [ip, bits] = cidr.split('/');
      this.metricsAllow.addSubnet(ip, Number(bits), net.isIPv6(ip) ? 'ipv6' : 'ipv4');
    }
    // A client that never finishes its request head (slowloris) would hold an fd for Node's
    // default 60 s, checked only every 30 s: bound both.
    this.server = http.createServer(
      {
        headersTimeout: opts.headersTimeoutMs,
        requestTimeout: opts.headersTimeoutMs * 2,
        connectionsCheckingInterval: Math.min(1000, Math.ceil(opts.headersTimeoutMs / 2)),
      },
      (req, res) => void this.onRequest(req, res),
    );
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket as net.Socket, head));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Only when nothing was sent yet: a status line in the middle of a response corrupts it.
      if (socket.writable && (socket as net.Socket).bytesWritten === 0) {
        const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? 400;
        this.deps.onRefused(`http_${status}`);
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      }
      socket.destroy();
    });
  }

  /** Connections accepted and not yet upgraded or closed. */
  get pending(): number {
    return this.pendingSockets.size;
  }

  /** A connection the listener (or another shard, relayed) gave this shard, accepted at `acceptedAt`. */
  serve(socket: net.Socket, acceptedAt = Date.now()): void {
    // At the cap the OLDEST plain connection goes, not the new one: a flood of half-open
    // connections (slowloris) cannot lock out /health or a real client, and no descriptor is
    // held for long by one that never sends its request.
    if (this.pendingSockets.size >= this.opts.maxHttpConnections) {
      const oldest = this.pendingSockets.values().next().value!;
      this.deps.onRefused('http_evicted');
      (oldest as SocketWithUncount).odinUncount?.();
      oldest.destroy();
    }
    this.pendingSockets.add(socket);
    this.deps.gate.touched();
    const tagged = socket as SocketWithUncount;
    tagged.odinAcceptedAt = acceptedAt;
    tagged.odinReserved = this.deps.gate.reserve();
    let counted = true;
    const uncount = () => {
      if (counted) {
        this.pendingSockets.delete(socket);
        if (tagged.odinReserved) this.deps.gate.unreserve();
        tagged.odinReserved = false;
        this.deps.gate.touched();
      }
      counted = false;
    };
    // Node's own headers timeout runs only for a server that listens itself: bound the request
    // head here (slowloris), answering 408 like Node would.
    const headTimer = setTimeout(() => {
      if (!counted || socket.destroyed) return;
      this.deps.onRefused('http_408');
      if (socket.writable && socket.bytesWritten === 0) socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      setTimeout(() => socket.destroy(), 100).unref();
    }, this.opts.headersTimeoutMs);
    headTimer.unref();
    (socket as SocketWithUncount).odinHeadDone = () => clearTimeout(headTimer);
    socket.once('close', () => {
      clearTimeout(headTimer);
      uncount();
    });
    (socket as SocketWithUncount).odinUncount = uncount;
    this.server.emit('connection', socket);
    socket.resume();
  }

  /** Idempotent. */
  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }

  /** Refuses an upgrade (only upgrades come here: plain requests get a ServerResponse). */
  private refuse(socket: net.Socket, status: number, reason: string, body: Record<string, unknown>, headers = ''): void {
    this.deps.onRefused(reason);
    rawReply(socket, status, body, headers);
    this.deps.onHandshake('refused', (socket as SocketWithUncount).odinAcceptedAt ?? Date.now());
  }

  private onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    (socket as SocketWithUncount).odinHeadDone?.();
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/ws') return this.refuse(socket, 404, 'not_found', { error: 'not_found', message: 'WebSocket upgrades are served on /ws' });
    const bad = upgradeProblem(req);
    if (bad) return this.refuse(socket, bad.status, 'bad_request', { error: 'bad_request', ...(bad.code ? { code: bad.code } : {}), message: bad.message }, bad.header);
    const origin = req.headers.origin;
    if (this.opts.allowedOrigins.length && origin !== undefined && !this.opts.allowedOrigins.includes(origin)) {
      return this.refuse(socket, 403, 'origin', { error: 'forbidden_origin', message: 'this Origin is not in WS_ALLOWED_ORIGINS' });
    }
    const full = this.deps.gate.refusal((socket as SocketWithUncount).odinReserved);
    if (full) return this.unavailable(socket, full);
    // The peer address is a syscall (getpeername), measured as a tenth of a shard's cost per
    // connection: read it only when the per-address limit needs it.
    const ip = this.opts.perIpLimit > 0 ? (socket.remoteAddress ?? '') : '';
    if (this.opts.perIpLimit && (this.perIp.get(ip) ?? 0) >= this.opts.perIpLimit) {
      return this.refuse(socket, 429, 'per_ip', { error: 'too_many_connections', message: 'too many connections from this address' }, `Retry-After: ${this.opts.retryAfterS}\r\n`);
    }
    if (!this.deps.auth) return this.admit(req, socket, head, undefined, ip);
    void this.deps.auth.verify(req).then(
      (verdict) => {
        if (socket.destroyed) return;
        if (verdict.ok) return this.admit(req, socket, head, verdict.claims, ip);
        this.refuse(socket, 401, 'unauthorized', { error: 'unauthorized', code: verdict.code });
      },
      () => this.refuse(socket, 401, 'unauthorized', { error: 'unauthorized', code: 'TOKEN_INVALID' }),
    );
  }

  private unavailable(socket: net.Socket, reason: string): void {
    this.refuse(socket, 503, reason, { error: 'unavailable', reason }, `Retry-After: ${this.opts.retryAfterS}\r\n`);
  }

  private admit(req: http.IncomingMessage, socket: net.Socket, head: Buffer, claims: ChannelClaims | undefined, ip: string): void {
    const tagged = socket as SocketWithUncount;
    const reserved = tagged.odinReserved === true;
    if (!this.deps.gate.admit(reserved)) return this.unavailable(socket, this.deps.gate.refusal(reserved) ?? 'max_connections');
    tagged.odinReserved = false; // spent: uncount must not give it back
    tagged.odinUncount?.();
    // Per-address counts only when the limit is on: no map work per socket otherwise.
    const tracked = this.opts.perIpLimit > 0;
    if (tracked) this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.deps.gate.release();
      if (!tracked) return;
      const n = (this.perIp.get(ip) ?? 1) - 1;
      if (n > 0) this.perIp.set(ip, n);
      else this.perIp.delete(ip);
    };
    socket.once('close', release);
    this.deps.wss.handleUpgrade(req, socket, head, (ws) => {
      // ws calls back once the 101 is written.
      this.deps.onHandshake('admitted', tagged.odinAcceptedAt ?? Date.now());
      this.deps.onClient(ws, socket, claims, release);
    });
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const tagged = req.socket as SocketWithUncount;
    tagged.odinHeadDone?.();
    // A plain request is no upgrade: its connection gives back the credit set aside for it.
    if (tagged.odinReserved) {
      tagged.odinReserved = false;
      this.deps.gate.unreserve();
    }
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.deps.onRefused('http_405');
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/health' || path === '/metrics') {
      const allowed = this.allowed(req.socket.remoteAddress);
      if (path === '/metrics' && !allowed) {
        this.deps.onRefused('http_403');
        res.writeHead(403, { 'Content-Type': 'text/plain' }).end('forbidden: /metrics is served only to WS_METRICS_ALLOW\n');
        return;
      }
      try {
        const a = await this.deps.ask(path === '/health' ? 'health' : 'metrics', allowed);
        res.writeHead(a.status, { 'Content-Type': a.type, 'Cache-Control': 'no-store' }).end(a.body);
      } catch {
        res.writeHead(503, { 'Content-Type': 'application/json' }).end('{"status":"unavailable"}');
      }
    } else if (this.pages.has(path)) {
      const page = this.pages.get(path)!;
      res.writeHead(200, { 'Content-Type': page.type, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' }).end(page.body);
    } else if (path === '/ws') {
      this.deps.onRefused('http_426');
      res.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain' }).end('use a WebSocket client: this endpoint needs Upgrade: websocket\n');
    } else {
      this.deps.onRefused('http_404');
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /ws, /health, /metrics\n');
    }
  }

  /** /metrics and the detailed /health share the public port: only the allowed ranges get them. */
  private allowed(addr: string | undefined): boolean {
    if (!addr) return false;
    const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
    return net.isIPv4(v4) ? this.metricsAllow.check(v4, 'ipv4') : this.metricsAllow.check(addr, 'ipv6');
  }
}

/**
 * GET / (the live page) and /odin-client.js (the official client), from the dist/ folder this
 * bundle runs from; a build without them (e.g. running from source) answers 404 there.
 */
function loadPages(): Map<string, { type: string; body: Buffer }> {
  const pages = new Map<string, { type: string; body: Buffer }>();
  const files: Array<[string, string, string]> = [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/odin-client.js', 'odin-client.js', 'text/javascript; charset=utf-8'],
  ];
  for (const [route, file, type] of files) {
    try {
      pages.set(route, { type, body: fs.readFileSync(new URL(file, import.meta.url)) });
    } catch {
      /* not built beside this bundle */
    }
  }
  return pages;
}

type SocketWithUncount = net.Socket & { odinUncount?: () => void; odinHeadDone?: () => void; odinReserved?: boolean; odinAcceptedAt?: number };

/** An HTTP answer written straight to an upgrade socket (no ServerResponse exists there). */
function rawReply(socket: net.Socket, status: number, body: Record<string, unknown>, extraHeaders = ''): void {
  const text = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n${extraHeaders}Content-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

/** Node's parser errors that have a more precise status than 400 (as Node's default handler). */
const CLIENT_ERROR_STATUS: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
};
