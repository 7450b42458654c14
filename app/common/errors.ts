// The one catalogue of client-visible error codes and close codes. Tests assert these codes,
// never the prose.

export const ErrorCode = {
  BAD_JSON: 'BAD_JSON',
  BAD_REQUEST: 'BAD_REQUEST',
  UNKNOWN_OP: 'UNKNOWN_OP',
  BAD_CHANNEL: 'BAD_CHANNEL',
  BAD_SINCE: 'BAD_SINCE',
  TOO_MANY_CHANNELS: 'TOO_MANY_CHANNELS',
  BINARY_UNSUPPORTED: 'BINARY_UNSUPPORTED',
  RATE_LIMITED: 'RATE_LIMITED',
  FORBIDDEN_CHANNEL: 'FORBIDDEN_CHANNEL',
  // Auth: the HTTP 401 body of a refused upgrade (`{"error":"unauthorized","code":...}`) and the
  // error reply to a failed `refresh`.
  TOKEN_MISSING: 'TOKEN_MISSING',
  TOKEN_INVALID: 'TOKEN_INVALID',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  TOKEN_NO_EXP: 'TOKEN_NO_EXP',
  TOKEN_AUDIENCE: 'TOKEN_AUDIENCE',
  TOKEN_ISSUER: 'TOKEN_ISSUER',
  AUTH_DISABLED: 'AUTH_DISABLED',
  // Handshake: the HTTP 400 body when only `bearer.<jwt>` is offered as subprotocol.
  PROTOCOL_REQUIRED: 'PROTOCOL_REQUIRED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ErrorMessage: Record<ErrorCode, string> = {
  BAD_JSON: 'frame is not valid JSON; send a JSON object such as {"op":"ping"}',
  BAD_REQUEST: 'request must be a JSON object with a string "op" and an optional numeric or string "id"',
  UNKNOWN_OP: 'unknown op; accepted ops are subscribe, unsubscribe, ping, refresh',
  BAD_CHANNEL: 'channels must be a non-empty array of "<stream>:<token>" or "<stream>:*" with a known stream',
  BAD_SINCE: 'since must be an object mapping each concrete channel of the request (named, or covered by its "<stream>:*") to a position "<origin>:<offset>" as messages carry in "pos"',
  TOO_MANY_CHANNELS: 'subscription would exceed the per-client channel limit',
  BINARY_UNSUPPORTED: 'binary frames are not supported; send JSON text frames',
  RATE_LIMITED: 'too many requests or channel operations (a subscribe or unsubscribe costs one per channel); slow down',
  FORBIDDEN_CHANNEL: 'your token does not allow this channel',
  TOKEN_MISSING: 'a token is required: send ?token=<jwt> or a Sec-WebSocket-Protocol entry bearer.<jwt>',
  TOKEN_INVALID: 'the token is not a valid HS256 JWT signed with this server\'s secret (or is not yet valid, or has a malformed claim)',
  TOKEN_EXPIRED: 'the token has expired (its exp has passed); get a new one',
  TOKEN_NO_EXP: 'the token has no exp claim, which this server requires',
  TOKEN_AUDIENCE: 'the token\'s aud claim does not include this server\'s audience',
  TOKEN_ISSUER: 'the token\'s iss claim is not this server\'s issuer',
  AUTH_DISABLED: 'auth is off on this server; there is no token to refresh',
  PROTOCOL_REQUIRED: 'offer an application protocol (odin.v1) alongside bearer.<jwt>: the server never echoes a credential',
};

export const CloseCode = {
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  /** The server failed while handling this client's frame; only this client is closed. */
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  /** Unread output past WS_CLIENT_BUFFER_BYTES, or the largest holder when the shard is over budget. */
  SLOW_CONSUMER: 4008,
  /** The token's exp (+ clock tolerance) passed without a successful refresh. */
  TOKEN_EXPIRED: 4001,
  /** Held no channel for WS_IDLE_TIMEOUT_MS. */
  IDLE_TIMEOUT: 4009,
} as const;

/** Exit code for invalid configuration (before anything listens). */
export const EXIT_CONFIG = 2;
