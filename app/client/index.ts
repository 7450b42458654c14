// The official odin-ws client's public surface (bundled to dist/odin-client.js).
export { OdinClient, DEAD_CONNECTION, type SubscribeResult } from './odin-client.js';
export { backoffCap, fullJitter, parseDrainReason, drainDelay, parseRetryAfter, type BackoffPolicy } from './backoff.js';
export { parsePos, type Position } from './positions.js';
export {
  OdinError,
  ClientCode,
  type OdinClientOptions,
  type OdinEvents,
  type MessageEvent,
  type GapEvent,
  type RecoveredEvent,
  type StateEvent,
  type CloseEvent,
  type ConnectionState,
  type ClientStats,
  type TokenSource,
  type WebSocketLike,
  type WebSocketConstructor,
} from './types.js';
