// Optional auth (on when WS_AUTH_SECRET is set). Checked in the front before the handoff, so an
// unauthenticated client never costs a shard anything.
import type http from 'node:http';
import type { ChannelClaims } from '../common/ipc.js';

export type AuthVerdict = { ok: true; claims?: ChannelClaims } | { ok: false; code: string };

export interface Authenticator {
  verify(req: http.IncomingMessage): Promise<AuthVerdict>;
}
