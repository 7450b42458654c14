// A handshake-only WebSocket client for idle connections (--channels none). It sends a real
// RFC 6455 upgrade and checks the 101 and Sec-WebSocket-Accept, then only watches for a close
// frame. Measured here it costs about half the generator CPU per connection of a `ws` client,
// which matters when the generator shares two cores with the server it is measuring.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';

const KEY = randomBytes(16).toString('base64');
const ACCEPT = createHash('sha1').update(`${KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

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
  sock.on('data', (chunk: Buffer) => {
    if (opened) {
      // Server frames are unmasked; a close frame (0x88) with a 7-bit length carries its code.
      if (chunk[0] === 0x88 && chunk.length >= 4 && (chunk[1] & 0x7f) >= 2) closeCode = chunk.readUInt16BE(2);
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
