// Positions (`pos`, "<origin>:<offset>"): what a message is, identically on every server. Within
// one origin a larger offset is a later message of the channel; across origins nothing is known.

export interface Position {
  readonly origin: string;
  readonly offset: number;
}

/** Splits at the LAST ':' (the spec); null for anything that is not `<origin>:<decimal>`. */
export function parsePos(pos: unknown): Position | null {
  if (typeof pos !== 'string' || pos.length > 200) return null;
  const i = pos.lastIndexOf(':');
  if (i <= 0) return null;
  const digits = pos.slice(i + 1);
  if (!/^\d{1,16}$/.test(digits)) return null;
  const offset = Number(digits);
  if (!Number.isSafeInteger(offset)) return null;
  return { origin: pos.slice(0, i), offset };
}

/** True when `p` is known to be at or before `last` (same origin, offset not larger). */
export function notAfter(p: Position, last: Position | null): boolean {
  return last !== null && p.origin === last.origin && p.offset <= last.offset;
}
