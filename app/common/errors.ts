// The one catalogue of client-visible error codes and close codes. Tests assert these codes,
// never the prose.

export const ErrorCode = {
  BAD_JSON: 'BAD_JSON',
  BAD_REQUEST: 'BAD_REQUEST',
  UNKNOWN_OP: 'UNKNOWN_OP',
  BAD_CHANNEL: 'BAD_CHANNEL',
  TOO_MANY_CHANNELS: 'TOO_MANY_CHANNELS',
  BINARY_UNSUPPORTED: 'BINARY_UNSUPPORTED',
  RATE_LIMITED: 'RATE_LIMITED',
  FORBIDDEN_CHANNEL: 'FORBIDDEN_CHANNEL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const ErrorMessage: Record<ErrorCode, string> = {
  BAD_JSON: 'frame is not valid JSON; send a JSON object such as {"op":"ping"}',
  BAD_REQUEST: 'request must be a JSON object with a string "op" and an optional numeric or string "id"',
  UNKNOWN_OP: 'unknown op; accepted ops are subscribe, unsubscribe, ping',
  BAD_CHANNEL: 'channels must be a non-empty array of "<stream>:<token>" or "<stream>:*" with a known stream',
  TOO_MANY_CHANNELS: 'subscription would exceed the per-client channel limit',
  BINARY_UNSUPPORTED: 'binary frames are not supported; send JSON text frames',
  RATE_LIMITED: 'too many requests or channel operations (a subscribe or unsubscribe costs one per channel); slow down',
  FORBIDDEN_CHANNEL: 'your token does not allow this channel',
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
  /** Held no channel for WS_IDLE_TIMEOUT_MS. */
  IDLE_TIMEOUT: 4009,
} as const;

/** Exit code for invalid configuration (before anything listens). */
export const EXIT_CONFIG = 2;
