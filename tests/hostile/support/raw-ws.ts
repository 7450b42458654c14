// Raw-socket tools for hostile tests: client frames written byte by byte (masked unless told not
// to), a hand-made upgrade handshake, a reader for the server's unmasked frames, and one-shot HTTP
// exchanges. Nothing here trusts the server to behave; every wait is bounded.
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export const Op = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

export interface FrameSpec {
  opcode: number;
  payload?: Buffer | string;
  fin?: boolean;
  /** Client frames must be masked (RFC 6455 §5.1); false builds the illegal unmasked form. */
  mask?: boolean;
  /** RSV1..3 bits (0..7), which must be 0 without a negotiated extension. */
  rsv?: number;
  /** Length written in the header when it should differ from the payload sent (a lie). */
  declaredLength?: number | bigint;
}

/** One client frame (RFC 6455 §5.2). */
export function clientFrame({ opcode, payload = Buffer.alloc(0), fin = true, mask = true, rsv = 0, declaredLength }: FrameSpec): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const len = BigInt(declaredLength ?? body.length);
  const lenBytes = len < 126n ? 0 : len < 65536n ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0xf);
  head[1] = (mask ? 0x80 : 0) | (lenBytes === 0 ? Number(len) : lenBytes === 2 ? 126 : 127);
  if (lenBytes === 2) head.writeUInt16BE(Number(len), 2);
  if (lenBytes === 8) head.writeBigUInt64BE(len, 2);
  if (!mask) return Buffer.concat([head, body]);
  const key = randomBytes(4);
  key.copy(head, 2 + lenBytes);
  const masked = Buffer.allocUnsafe(body.length);
  for (let i = 0; i < body.length; i++) masked[i] = body[i] ^ key[i & 3];
  return Buffer.concat([head, masked]);
}

export const text = (s: string | Buffer) => clientFrame({ opcode: Op.TEXT, payload: s });
export const json = (v: unknown) => text(JSON.stringify(v));

export interface ServerFrame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

/** Splits the server's byte stream into frames (server frames are never masked). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  readonly frames: ServerFrame[] = [];

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      this.frames.push({ fin: (this.buf[0] & 0x80) !== 0, opcode: this.buf[0] & 0xf, payload: Buffer.from(this.buf.subarray(off, off + len)) });
      this.buf = this.buf.subarray(off + len);
    }
  }
}

export interface HttpHead {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function parseHead(raw: string): HttpHead | null {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(statusLine);
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, body: raw.slice(end + 4) };
}

/**
 * Writes `bytes` to a fresh connection and collects what comes back until the server closes it
 * (or `waitMs` passes, then we close). Returns the raw reply and its parsed head, if any.
 */
export function exchange(port: number, bytes: Buffer | string, waitMs = 10_000): Promise<{ raw: string; head: HttpHead | null; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let raw = '';
    let byServer = false;
    const timer = setTimeout(() => s.destroy(), waitMs);
    s.on('data', (d) => (raw += d.toString('latin1')));
    s.on('end', () => (byServer = true));
    s.on('error', () => (byServer = true)); // a reset is the server closing too
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ raw, head: parseHead(raw), closedByServer: byServer });
    });
  });
}

export const wsKey = () => randomBytes(16).toString('base64');

/** A well-formed upgrade request; `headers` override or (with null) remove the defaults. */
export function upgradeRequest(path = '/ws', headers: Record<string, string | null> = {}, method = 'GET'): string {
  const h: Record<string, string | null> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': wsKey(),
    'Sec-WebSocket-Version': '13',
    ...headers,
  };
  const lines = Object.entries(h)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k}: ${v}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

/** A WebSocket connection driven by hand: our frames, the server's frames as bytes. */
export class RawConn {
  readonly reader = new FrameReader();
  readonly closed: Promise<void>;
  /** Bytes received after the handshake. */
  received = 0;
  private ended = false;

  private constructor(
    readonly socket: net.Socket,
    readonly head: HttpHead,
  ) {
    this.closed = new Promise((r) => socket.once('close', () => r()));
    socket.on('close', () => (this.ended = true));
  }

  /** Opens a TCP connection and completes the upgrade; rejects with the status if refused. */
  static open(port: number, path = '/ws', headers: Record<string, string | null> = {}, timeoutMs = 10_000): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(upgradeRequest(path, headers)));
      let pre = Buffer.alloc(0);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error('no handshake reply in time'));
      }, timeoutMs);
      const onData = (d: Buffer) => {
        pre = Buffer.concat([pre, d]);
        const end = pre.indexOf('\r\n\r\n');
        if (end < 0) return;
        clearTimeout(timer);
        s.off('data', onData);
        const head = parseHead(pre.subarray(0, end + 4).toString('latin1'))!;
        if (head.status !== 101) {
          s.destroy();
          return reject(Object.assign(new Error(`HTTP ${head.status}`), { status: head.status, head }));
        }
        const conn = new RawConn(s, head);
        s.on('data', (c: Buffer) => {
          conn.received += c.length;
          conn.reader.push(c);
        });
        const rest = pre.subarray(end + 4);
        if (rest.length) {
          conn.received += rest.length;
          conn.reader.push(rest);
        }
        resolve(conn);
      };
      s.on('data', onData);
      s.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  get isClosed(): boolean {
    return this.ended;
  }

  send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  /** The server's text frames parsed as JSON (protocol replies and data). */
  texts(): unknown[] {
    return this.reader.frames.filter((f) => f.opcode === Op.TEXT).map((f) => JSON.parse(f.payload.toString('utf8')));
  }

  replies(): Array<Record<string, unknown>> {
    return this.texts().filter((v): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v) && 'op' in v);
  }

  /** The code of the server's close frame, once one has arrived. */
  closeCode(): number | null {
    const f = this.reader.frames.find((x) => x.opcode === Op.CLOSE);
    if (!f) return null;
    return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005;
  }

  /** Waits (bounded) for the server's close frame and returns its code. */
  async waitClose(timeoutMs = 10_000): Promise<number> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const c = this.closeCode();
      if (c !== null) return c;
      if (this.ended) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const c = this.closeCode();
    if (c !== null) return c;
    throw new Error(`no close frame (socket ${this.ended ? 'closed' : 'open'}, ${this.reader.frames.length} frames)`);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
