// A handshake-only WebSocket client for idle connections (--channels none). It sends a real
// RFC 6455 upgrade and checks the 101 and Sec-WebSocket-Accept, then only reads control frames:
// it answers each ping with a pong carrying the same payload (masked, as a client must), since the
// server cuts a peer that has not answered its previous ping, and it keeps the close code. Data
// frames are skipped without being buffered. Measured here it costs about half the generator CPU per connection of a `ws` client,
// which matters when the generator shares two cores with the server it is measuring.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

const KEY = randomBytes(16).toString('base64');
const ACCEPT = createHash('sha1').update(`${KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
/** Control payloads are at most 125 bytes (RFC 6455 5.5); more than this pending is not a server. */
const MAX_PENDING = 1024;

/** A masked client frame (FIN set) with a payload of at most 125 bytes. */
export function clientControlFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const out = Buffer.allocUnsafe(6 + payload.length);
  out[0] = 0x80 | opcode;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * Reads server frames from a byte stream split anywhere. Control frames are collected whole and
 * handed to `onControl`; data frame payloads are skipped as they pass. Returns false on a frame
 * no server may send (a masked frame, or a control frame over 125 bytes or fragmented).
 */
export class ServerFrameReader {
  private pending: Buffer = Buffer.alloc(0);
  private skip = 0;

  constructor(private readonly onControl: (opcode: number, payload: Buffer) => void) {}

  push(chunk: Buffer): boolean {
    if (this.skip) {
      const n = Math.min(this.skip, chunk.length);
      this.skip -= n;
      chunk = chunk.subarray(n);
      if (!chunk.length) return true;
    }
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 2) {
      const fin = (buf[0] & 0x80) !== 0;
      const opcode = buf[0] & 0x0f;
      if (buf[1] & 0x80) return false;
      let len = buf[1] & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length < 4) break;
        len = buf.readUInt16BE(2);
        head = 4;
      } else if (len === 127) {
        if (buf.length < 10) break;
        const big = buf.readBigUInt64BE(2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) return false;
        len = Number(big);
        head = 10;
      }
      const control = (opcode & 0x8) !== 0;
      if (control && (len > 125 || !fin)) return false;
      if (!control) {
        // Skip the data payload without keeping it.
        const have = buf.length - head;
        if (have < len) {
          this.skip = len - have;
          buf = buf.subarray(buf.length);
          break;
        }
        buf = buf.subarray(head + len);
        continue;
      }
      if (buf.length < head + len) break;
      this.onControl(opcode, buf.subarray(head, head + len));
      buf = buf.subarray(head + len);
    }
    if (buf.length > MAX_PENDING) return false;
    this.pending = Buffer.from(buf);
    return true;
  }
}

export interface LiteHandlers {
  open(): void;
  /** HTTP status other than 101 (503 = refusal) with its Retry-After, if any. */
  rejected(status: number, retryAfter: string | null): void;
  error(code: string): void;
  /** After open: the connection ended; the WebSocket close code when the server sent one. */
  closed(code: number): void;
}

export interface LiteConnection {
  destroy(): void;
  readonly startedAt: number;
  readonly settled: boolean;
}

export function liteConnect(url: URL, localAddress: string | undefined, family: 4 | 6 | undefined, h: LiteHandlers): LiteConnection {
  const sock = net.connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80), ...(localAddress ? { localAddress, family } : {}) });
  let settled = false;
  let opened = false;
  let head = '';
  let closeCode = 1006;
  const settle = () => (settled ? false : (settled = true));
  sock.setNoDelay(true);
  sock.on('connect', () => {
    sock.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
  const frames = new ServerFrameReader((opcode, payload) => {
    if (opcode === OP_PING) sock.write(clientControlFrame(OP_PONG, payload));
    else if (opcode === OP_CLOSE) {
      // Echo the close so the server ends the TCP connection now rather than at its close timeout.
      if (payload.length >= 2) closeCode = payload.readUInt16BE(0);
      sock.end(clientControlFrame(OP_CLOSE, payload.subarray(0, 2)));
    }
  });
  sock.on('data', (chunk: Buffer) => {
    if (opened) {
      // 1002: what a client reports for a protocol error; the generator counts it as a close.
      if (!frames.push(chunk)) {
        closeCode = 1002;
        sock.destroy();
      }
      return;
    }
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 16_384 && settle()) {
        h.error('BAD_HANDSHAKE');
        sock.destroy();
      }
      return;
    }
    const lines = head.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0])?.[1] ?? 0);
    const header = (name: string) => lines.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim() ?? null;
    if (!settle()) return;
    if (status === 101 && header('sec-websocket-accept') === ACCEPT) {
      opened = true;
      h.open();
      // Frames may follow the 101 in the same chunk.
      const rest = Buffer.from(head.slice(end + 4), 'latin1');
      if (rest.length && !frames.push(rest)) {
        closeCode = 1002;
        sock.destroy();
      }
    } else if (status === 101) {
      h.error('BAD_ACCEPT');
      sock.destroy();
    } else {
      h.rejected(status, header('retry-after'));
      sock.destroy();
    }
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    if (settle()) h.error(err.code ?? 'UNKNOWN');
  });
  sock.on('close', () => {
    if (opened) h.closed(closeCode);
    else if (settle()) h.error('CLOSED_BEFORE_OPEN');
  });
  const startedAt = Date.now();
  return {
    destroy: () => sock.destroy(),
    startedAt,
    get settled() {
      return settled;
    },
  };
}
