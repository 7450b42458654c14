// A scripted protocol-v1 peer on a real socket (ws), for the client's rules that need frames a
// real server sends only under rare conditions (duplicates, seq jumps, refused handshakes). The
// client's behaviour against the real server is covered in live-server.test.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { until } from '../support/server.js';

export interface PeerConn {
  ws: WebSocket;
  protocols: string[];
  requests: Array<Record<string, unknown>>;
  send(v: unknown): void;
  /** The next request with this op (waits for it). */
  next(op: string, after?: number): Promise<Record<string, unknown>>;
}

export class Peer {
  readonly conns: PeerConn[] = [];
  /** Set to answer upgrades with this raw HTTP response instead. */
  refuse: string | null = null;
  refused = 0;
  private readonly http = http.createServer((_req, res) => res.writeHead(404).end());
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => (p.has('odin.v1') ? 'odin.v1' : false) });

  /** Answers every subscribe with `subscribed` (echoing `extra`) unless told otherwise. */
  autoAck = true;

  async start(): Promise<string> {
    this.http.on('upgrade', (req, socket, head) => {
      if (this.refuse) {
        this.refused++;
        socket.end(this.refuse);
        return;
      }
      const protocols = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, protocols));
    });
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    return `ws://127.0.0.1:${(this.http.address() as AddressInfo).port}/ws`;
  }

  latest(): PeerConn {
    return this.conns[this.conns.length - 1];
  }

  async conn(n: number): Promise<PeerConn> {
    await until(() => this.conns.length >= n, `connection ${n}`);
    return this.conns[n - 1];
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    this.http.closeAllConnections();
    await new Promise((r) => this.http.close(r));
  }

  private accept(ws: WebSocket, protocols: string[]): void {
    const requests: Array<Record<string, unknown>> = [];
    const conn: PeerConn = {
      ws,
      protocols,
      requests,
      send: (v) => ws.send(JSON.stringify(v)),
      next: async (op, after = 0) => until(() => requests.slice(after).find((r) => r.op === op), `a ${op} request`),
    };
    ws.on('message', (raw) => {
      const req = JSON.parse(String(raw));
      requests.push(req);
      if (req.op === 'ping') conn.send({ op: 'pong', id: req.id });
      if (req.op === 'subscribe' && this.autoAck && !req.since) conn.send({ op: 'subscribed', channels: req.channels, id: req.id });
    });
    this.conns.push(conn);
  }
}

/** A data message as the server frames it. */
export function msg(channel: string, seq: number, pos: string, epoch = 'E1') {
  return { channel, epoch, seq, pos, ts: 1_764_300_000_000 + seq, data: { n: seq } };
}
