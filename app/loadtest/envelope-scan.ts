// The generator's fast path for one data message per frame in odin-ws's own envelope
// (`{"channel":"…","epoch":"…","seq":N,"pos":"…","ts":N,"data":…}`, data last, as the bus writes
// it). JSON.parse of the whole frame was ~40% of a generator process's busy time at the knee, most
// of it the payload, which the generator never reads; on a shared machine that CPU is taken from
// the server being measured. Anything not in exactly this form (a batch array, a control frame,
// another server's envelope, escapes, whitespace, non-integer numbers) returns null and the caller
// parses it fully. The payload is not validated here: the generator checks order and latency.

export interface ScannedMessage {
  readonly channel: string;
  readonly epoch: string;
  readonly seq: number;
  readonly ts: number;
}

const HEAD = Buffer.from('{"channel":"');
const EPOCH = Buffer.from('","epoch":"');
const SEQ = Buffer.from('","seq":');
const POS = Buffer.from(',"pos":"');
const TS = Buffer.from('","ts":');
const DATA = Buffer.from(',"data":');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const CLOSE_BRACE = 0x7d;

function at(b: Buffer, i: number, lit: Buffer): boolean {
  if (i + lit.length > b.length) return false;
  for (let k = 0; k < lit.length; k++) if (b[i + k] !== lit[k]) return false;
  return true;
}

/** Index of the quote ending a string of plain printable ASCII from `i`, or -1. */
function plainString(b: Buffer, i: number): number {
  for (; i < b.length; i++) {
    const c = b[i];
    if (c === QUOTE) return i;
    if (c < 0x20 || c > 0x7e || c === BACKSLASH) return -1;
  }
  return -1;
}

/** A JSON non-negative integer (no leading zero) from `i`: [value, end] or null past 2^53-1. */
function integer(b: Buffer, i: number): [number, number] | null {
  const start = i;
  let v = 0;
  for (; i < b.length && b[i] >= 0x30 && b[i] <= 0x39; i++) v = v * 10 + (b[i] - 0x30);
  const n = i - start;
  if (n === 0 || n > 16 || (n > 1 && b[start] === 0x30) || !Number.isSafeInteger(v)) return null;
  return [v, i];
}

/** The envelope fields of a single-message frame, or null when it is not exactly that form. */
export function scanEnvelope(b: Buffer): ScannedMessage | null {
  if (!at(b, 0, HEAD)) return null;
  let i = HEAD.length;
  const chEnd = plainString(b, i);
  if (chEnd <= i || !at(b, chEnd, EPOCH)) return null;
  const channel = b.toString('latin1', i, chEnd);
  i = chEnd + EPOCH.length;
  const epEnd = plainString(b, i);
  if (epEnd < 0 || !at(b, epEnd, SEQ)) return null;
  const epoch = b.toString('latin1', i, epEnd);
  const seq = integer(b, epEnd + SEQ.length);
  if (!seq || !at(b, seq[1], POS)) return null;
  i = seq[1] + POS.length;
  const posEnd = plainString(b, i);
  if (posEnd < 0 || !at(b, posEnd, TS)) return null;
  const ts = integer(b, posEnd + TS.length);
  if (!ts || !at(b, ts[1], DATA)) return null;
  // Data fills the rest; a frame with nothing between `"data":` and the closing brace is not ours.
  if (b.length < ts[1] + DATA.length + 2 || b[b.length - 1] !== CLOSE_BRACE) return null;
  return { channel, epoch, seq: seq[0], ts: ts[0] };
}
