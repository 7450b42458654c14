// Server-to-client WebSocket text frames (RFC 6455 §5.2: FIN, opcode 1, unmasked), built once per
// distinct payload and written as-is to every recipient's socket.

export function textFrame(payload: Buffer): Buffer {
  const n = payload.length;
  const hdr = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(hdr + n);
  out[0] = 0x81;
  if (n < 126) {
    out[1] = n;
  } else if (n < 65536) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  payload.copy(out, hdr);
  return out;
}

const OPEN = Buffer.from('[');
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

/** A coalesced frame: the messages' bytes joined into one JSON array. */
export function arrayFrame(payloads: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [OPEN];
  payloads.forEach((p, i) => {
    if (i) parts.push(COMMA);
    parts.push(p);
  });
  parts.push(CLOSE);
  return textFrame(Buffer.concat(parts));
}
