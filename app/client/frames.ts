// What the server sends, checked before the client trusts any field: a data message, or a reply
// (`op`). A frame is one object or an array of them.

export interface DataMessage {
  readonly channel: string;
  readonly epoch: string | undefined;
  readonly seq: number | undefined;
  readonly pos: string | undefined;
  readonly ts: number | undefined;
  readonly data: unknown;
}

export interface Reply {
  readonly op: string;
  readonly id: number | string | undefined;
  readonly rec: Record<string, unknown>;
}

export type Item = { kind: 'data'; msg: DataMessage } | { kind: 'reply'; reply: Reply } | { kind: 'invalid' };

/** Parses a text frame into items; a frame that is not JSON yields one invalid item. */
export function parseFrame(text: string): Item[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return [{ kind: 'invalid' }];
  }
  return Array.isArray(v) ? v.map(parseItem) : [parseItem(v)];
}

function parseItem(v: unknown): Item {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { kind: 'invalid' };
  const rec = v as Record<string, unknown>;
  if (typeof rec.op === 'string') {
    const id = typeof rec.id === 'number' || typeof rec.id === 'string' ? rec.id : undefined;
    return { kind: 'reply', reply: { op: rec.op, id, rec } };
  }
  if (typeof rec.channel !== 'string') return { kind: 'invalid' };
  return {
    kind: 'data',
    msg: {
      channel: rec.channel,
      epoch: typeof rec.epoch === 'string' ? rec.epoch : undefined,
      seq: typeof rec.seq === 'number' && Number.isSafeInteger(rec.seq) ? rec.seq : undefined,
      pos: typeof rec.pos === 'string' ? rec.pos : undefined,
      ts: typeof rec.ts === 'number' && Number.isFinite(rec.ts) ? rec.ts : undefined,
      data: rec.data,
    },
  };
}

/** A channel's recovery answer in a `subscribed` reply. */
export type RecoveryEntry = { replayed: number } | { last: number } | { unrecoverable: string };

export function recoveryOf(rec: Record<string, unknown>): Map<string, RecoveryEntry> | null {
  const r = rec.recovery;
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return null;
  const out = new Map<string, RecoveryEntry>();
  for (const [ch, e] of Object.entries(r as Record<string, unknown>)) {
    if (typeof e !== 'object' || e === null) continue;
    const x = e as Record<string, unknown>;
    if (typeof x.replayed === 'number' && x.replayed >= 0) out.set(ch, { replayed: Math.floor(x.replayed) });
    else if (typeof x.unrecoverable === 'string') out.set(ch, { unrecoverable: x.unrecoverable.slice(0, 64) });
    else if (typeof x.last === 'number' && x.last >= 0) out.set(ch, { last: Math.floor(x.last) });
  }
  return out;
}

/** The `channels` a `<stream>:*` pattern or a concrete channel covers. */
export function covers(pattern: string, channel: string): boolean {
  if (pattern === channel) return true;
  return pattern.endsWith(':*') && channel.startsWith(pattern.slice(0, -1));
}

export function isConcrete(channel: string): boolean {
  return !channel.endsWith(':*');
}
