// Channel names are `<stream>:<token>` or `<stream>:*`. Validated once at the edge so the hot
// path can treat them as opaque map keys.

export const TOKEN_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const STREAM_RE = /^[a-z][a-z0-9_-]{0,31}$/;
export const WILDCARD = '*';

export interface ParsedChannel {
  readonly stream: string;
  readonly token: string; // '*' for a wildcard
  readonly wildcard: boolean;
}

/** Returns the parsed channel, or null when it is not `<known stream>:<token|*>`. */
export function parseChannel(name: unknown, streams: ReadonlySet<string>): ParsedChannel | null {
  if (typeof name !== 'string' || name.length > 100) return null;
  const i = name.indexOf(':');
  if (i <= 0) return null;
  const stream = name.slice(0, i);
  const token = name.slice(i + 1);
  if (!streams.has(stream)) return null;
  if (token === WILDCARD) return { stream, token, wildcard: true };
  if (!TOKEN_RE.test(token)) return null;
  return { stream, token, wildcard: false };
}

/** The channel's shape without a known-streams check (clients that don't know the server's streams). */
export function isChannelShape(name: string): boolean {
  const i = name.indexOf(':');
  if (i <= 0) return false;
  const token = name.slice(i + 1);
  return STREAM_RE.test(name.slice(0, i)) && (token === WILDCARD || TOKEN_RE.test(token));
}

/** `odin.trades` -> `trades`: a Kafka topic maps to the stream named by its last dot part. */
export function streamOfTopic(topic: string): string {
  const i = topic.lastIndexOf('.');
  return i < 0 ? topic : topic.slice(i + 1);
}
