// What crosses the wire besides data: URLs, the handshake, close codes, error replies.
import { parseRetryAfter } from './backoff.js';
import type { Reply } from './frames.js';
import { ClientCode, OdinError, type CloseEvent, type WebSocketLike } from './types.js';

export function isWsUrl(u: unknown): u is string {
  return typeof u === 'string' && /^wss?:\/\//i.test(u);
}

export function checkChannels(channels: unknown): OdinError | null {
  if (!Array.isArray(channels) || channels.length === 0 || !channels.every((c) => typeof c === 'string' && c.length > 0 && c.length <= 200)) {
    return new OdinError('CLIENT_BAD_ARGUMENT', 'channels must be a non-empty array of "<stream>:<token>" or "<stream>:*" strings');
  }
  return null;
}

export function serverError(r: Reply): OdinError {
  const code = typeof r.rec.code === 'string' ? r.rec.code : ClientCode.BAD_FRAME;
  const message = typeof r.rec.message === 'string' ? r.rec.message : 'server error';
  const detail = Array.isArray(r.rec.channels) ? { channels: r.rec.channels } : undefined;
  return new OdinError(code, message, detail);
}

export function closeKind(code: number): CloseEvent['kind'] {
  switch (code) {
    case 1001:
      return 'going_away';
    case 1008:
      return 'policy';
    case 1013:
      return 'try_again_later';
    case 4001:
      return 'token_expired';
    case 4008:
      return 'slow_consumer';
    case 4009:
      return 'idle';
    default:
      return 'other';
  }
}

/**
 * The HTTP status of a refused handshake is invisible to the standard WebSocket API (browsers,
 * Node's global). The `ws` package shows it as 'unexpected-response': read Retry-After there.
 */
export function watchHandshake(ws: WebSocketLike, onRetryAfter: (ms: number) => void): void {
  const node = ws as unknown as { once?: (ev: string, fn: (req: unknown, res: { statusCode?: number; headers?: Record<string, unknown> }) => void) => void; terminate?: () => void };
  if (typeof node.once !== 'function' || typeof node.terminate !== 'function') return;
  node.once('unexpected-response', (_req, res) => {
    const ms = res?.statusCode === 503 || res?.statusCode === 429 ? parseRetryAfter(res.headers?.['retry-after']) : null;
    if (ms !== null) onRetryAfter(ms);
    node.terminate!();
  });
}
