// Optional client auth: HS256 JWTs checked before the WebSocket handshake, and again when a
// connected client refreshes its token. Types shared by the front (upgrade) and the shards
// (refresh, expiry while connected).
import type http from 'node:http';
import type { ErrorCode } from '../common/errors.js';
import type { ChannelClaims } from '../common/ipc.js';

/** Auth settings, parsed once with the rest of the config (null there when auth is off). */
export interface AuthConfig {
  /** 1 or 2 HS256 secrets: the current one, then the previous one during a rotation window. */
  readonly secrets: readonly string[];
  /** Refuse tokens without an `exp` claim. */
  readonly requireExp: boolean;
  /** When set, the token's `aud` must contain it. */
  readonly audience: string | null;
  /** When set, the token's `iss` must equal it. */
  readonly issuer: string | null;
  /** Seconds of clock skew allowed on `exp` and `nbf`, also while connected. */
  readonly clockToleranceS: number;
}

/** Why a token was refused; each is a stable code in the catalogue. */
export type AuthRefusal = Extract<ErrorCode, 'TOKEN_MISSING' | 'TOKEN_INVALID' | 'TOKEN_EXPIRED' | 'TOKEN_NO_EXP' | 'TOKEN_AUDIENCE' | 'TOKEN_ISSUER'>;

export type AuthVerdict = { ok: true; claims: ChannelClaims } | { ok: false; code: AuthRefusal };

export interface Authenticator {
  readonly clockToleranceS: number;
  /** The token of an upgrade request (`?token=` or a `bearer.<jwt>` subprotocol entry). */
  verify(req: http.IncomingMessage): Promise<AuthVerdict>;
  verifyToken(token: string): Promise<AuthVerdict>;
}
