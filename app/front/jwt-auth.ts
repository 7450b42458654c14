// HS256 JWTs (jose) from the `token` query parameter or a `Sec-WebSocket-Protocol` entry of the
// form `bearer.<jwt>`. An optional `channels` claim restricts what the client may subscribe to.
import type http from 'node:http';
import { jwtVerify, errors } from 'jose';
import type { AuthVerdict, Authenticator } from './auth.js';

export class JwtAuthenticator implements Authenticator {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async verify(req: http.IncomingMessage): Promise<AuthVerdict> {
    const token = tokenOf(req);
    if (!token) return { ok: false, code: 'TOKEN_MISSING' };
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      const ch = payload.channels;
      if (ch !== undefined && !(Array.isArray(ch) && ch.every((c) => typeof c === 'string'))) {
        return { ok: false, code: 'TOKEN_INVALID' };
      }
      return { ok: true, claims: ch ? { channels: ch as string[] } : undefined };
    } catch (err) {
      return { ok: false, code: err instanceof errors.JWTExpired ? 'TOKEN_EXPIRED' : 'TOKEN_INVALID' };
    }
  }
}

function tokenOf(req: http.IncomingMessage): string | null {
  const q = (req.url ?? '').indexOf('?');
  if (q >= 0) {
    const t = new URLSearchParams(req.url!.slice(q + 1)).get('token');
    if (t) return t;
  }
  const proto = req.headers['sec-websocket-protocol'];
  if (typeof proto === 'string') {
    for (const p of proto.split(',')) {
      const v = p.trim();
      if (v.startsWith('bearer.')) return v.slice(7);
    }
  }
  return null;
}
