// The client's public types: options, events, errors, and the slice of the WebSocket API it uses
// (so a test or a platform may pass its own constructor).

export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type TokenSource = string | (() => string | Promise<string>);

export interface OdinClientOptions {
  /** `ws://host:3004/ws` (or wss://). */
  readonly url: string;
  /** A JWT, or a function returning a fresh one; read again before every connect. */
  readonly token?: TokenSource;
  /** Ask the latest message of every concrete channel without a position on subscribe. */
  readonly last?: boolean;
  /** Defaults to globalThis.WebSocket. */
  readonly WebSocket?: WebSocketConstructor;
  readonly pingIntervalMs?: number;
  /** No frame at all this long after a ping: the connection is dead. */
  readonly pongTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly ackTimeoutMs?: number;
  readonly backoffBaseMs?: number;
  readonly backoffMaxMs?: number;
  /** Open this long: the backoff starts again from the base. */
  readonly stableAfterMs?: number;
  /** Requests awaiting their reply, at most. */
  readonly maxPending?: number;
  /** Concrete channels whose position is kept (least recently seen forgotten first). */
  readonly maxTrackedChannels?: number;
  /** Positions sent in one subscribe (the server's WS_MAX_CHANNELS). */
  readonly maxSince?: number;
  /** Messages of one channel held while its gap is being recovered. */
  readonly maxHeld?: number;
  /** [0,1) source for jitter; tests pass a fixed one. */
  readonly random?: () => number;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface MessageEvent {
  readonly channel: string;
  readonly pos: string | undefined;
  readonly seq: number | undefined;
  readonly epoch: string | undefined;
  readonly ts: number | undefined;
  readonly data: unknown;
  /** Sent by the server from its recovery window (replay after `since`, or the last value). */
  readonly replayed: boolean;
}

/**
 * Messages of `channel` were lost and cannot be fetched again. `reason`: the server's unrecoverable
 * reason (`out_of_window`, `unknown_origin`, `not_ready`, `too_large`), `seq` (a seq jump the
 * client could not recover: no positions from this server), `unsupported` (the server answered a
 * subscribe with positions without any recovery: a server before continuity), `untracked` (more
 * channels than maxSince: no position was sent for this one).
 */
export interface GapEvent {
  readonly channel: string;
  readonly reason: string;
  /** The last position delivered before the gap, if any. */
  readonly from: string | undefined;
  /** The first position delivered after it, when already known. */
  readonly to: string | undefined;
  /** Messages missed, when the seq numbers tell (same epoch). */
  readonly missed: number | undefined;
}

export interface RecoveredEvent {
  readonly channel: string;
  readonly replayed: number;
}

export interface StateEvent {
  readonly state: ConnectionState;
  /** Close code of the connection that ended (reconnecting/closed). */
  readonly code?: number;
  readonly reason?: string;
  /** The delay chosen before the next connect (reconnecting). */
  readonly delayMs?: number;
  readonly attempt?: number;
}

/** The server closed the connection with a code that means something to the application. */
export interface CloseEvent {
  readonly code: number;
  readonly reason: string;
  readonly kind: 'going_away' | 'policy' | 'try_again_later' | 'token_expired' | 'slow_consumer' | 'idle' | 'other';
}

export interface OdinEvents {
  message: MessageEvent;
  gap: GapEvent;
  recovered: RecoveredEvent;
  state: StateEvent;
  close: CloseEvent;
  error: OdinError;
}

/** `code`: the server's error code (BAD_CHANNEL...) or the client's own (CLIENT_*). */
export class OdinError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'OdinError';
  }
}

/** The client's own error codes. */
export const ClientCode = {
  TIMEOUT: 'CLIENT_TIMEOUT',
  TOO_MANY_PENDING: 'CLIENT_TOO_MANY_PENDING',
  CLOSED: 'CLIENT_CLOSED',
  DISCONNECTED: 'CLIENT_DISCONNECTED',
  BAD_FRAME: 'CLIENT_BAD_FRAME',
  NO_WEBSOCKET: 'CLIENT_NO_WEBSOCKET',
  TOKEN: 'CLIENT_TOKEN',
} as const;

export interface ClientStats {
  connects: number;
  reconnects: number;
  messages: number;
  replayed: number;
  duplicates: number;
  gaps: number;
  recoveries: number;
  invalid: number;
  /** Messages held during a recovery and dropped over maxHeld. */
  heldDropped: number;
  /** Tracked channels forgotten over maxTrackedChannels. */
  evicted: number;
}
