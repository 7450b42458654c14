// HS256 JWTs (jose) from the `token` query parameter or a `Sec-WebSocket-Protocol` entry of the
// form `bearer.<jwt>`. Rules: HS256 only; `exp` required unless WS_AUTH_REQUIRE_EXP=false; `aud`
// and `iss` checked when configured; a small clock tolerance on `exp`/`nbf`; during a rotation
// window a token signed with either secret passes. An optional `channels` claim (list of channel
// names) restricts what the client may subscribe to.
import type http from 'node:http';
import { errors, jwtVerify, type JWTPayload } from 'jose';
import type { ChannelClaims } from '../common/ipc.js';
import type { AuthConfig, AuthRefusal, AuthVerdict, Authenticator } from './auth.js';

/** Longer tokens are refused unread (an upgrade's headers are bounded anyway; a refresh frame too). */
export const MAX_TOKEN_CHARS = 8192;
const MAX_CLAIM_CHANNELS = 10_000;

export function createAuthenticator(auth: AuthConfig): Authenticator {
  const keys = auth.secrets.map((s) => new TextEncoder().encode(s));
  const options = {
    algorithms: ['HS256'],
    audience: auth.audience ?? undefined,
    issuer: auth.issuer ?? undefined,
    clockTolerance: auth.clockToleranceS,
    requiredClaims: auth.requireExp ? ['exp'] : [],
  };

  async function verifyToken(token: string): Promise<AuthVerdict> {
    if (!token) return { ok: false, code: 'TOKEN_MISSING' };
    if (token.length > MAX_TOKEN_CHARS) return { ok: false, code: 'TOKEN_INVALID' };
    for (let i = 0; ; i++) {
      try {
        const { payload } = await jwtVerify(token, keys[i], options);
        return claimsOf(payload);
      } catch (err) {
        // Only the signature depends on the key: any other failure is the same under both.
        if (err instanceof errors.JWSSignatureVerificationFailed && i + 1 < keys.length) continue;
        return { ok: false, code: refusalOf(err) };
      }
    }
  }

  return {
    clockToleranceS: auth.clockToleranceS,
    verify: (req) => verifyToken(tokenOf(req) ?? ''),
    verifyToken,
  };
}

function claimsOf(payload: JWTPayload): AuthVerdict {
  const ch = payload.channels;
  if (ch !== undefined && !(Array.isArray(ch) && ch.length <= MAX_CLAIM_CHANNELS && ch.every((c) => typeof c === 'string'))) {
    return { ok: false, code: 'TOKEN_INVALID' };
  }
  const claims: ChannelClaims = {};
  if (ch) claims.channels = ch as string[];
  if (payload.exp !== undefined) claims.exp = payload.exp; // jose checked it is a number
  return { ok: true, claims };
}

function refusalOf(err: unknown): AuthRefusal {
  if (err instanceof errors.JWTExpired) return 'TOKEN_EXPIRED';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'exp' && err.reason === 'missing') return 'TOKEN_NO_EXP';
    if (err.claim === 'aud') return 'TOKEN_AUDIENCE';
    if (err.claim === 'iss') return 'TOKEN_ISSUER';
  }
  return 'TOKEN_INVALID';
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
