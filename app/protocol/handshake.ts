// WebSocket handshake rules, in one place for whichever process answers the upgrade.
import type http from 'node:http';
import { ErrorCode } from '../common/errors.js';

/** The application protocol this server speaks (what a client offers beside `bearer.<jwt>`). */
export const APP_PROTOCOL = 'odin.v1';

const WS_KEY_RE = /^[+/0-9A-Za-z]{22}==$/;

export interface UpgradeProblem {
  status: number;
  message: string;
  header?: string;
  /** A catalogue code for the refusals a client must act on. */
  code?: ErrorCode;
}

/** The RFC 6455 §4.2.1 checks `ws` would make in the shard, plus the subprotocol rule, made before the handoff. */
export function upgradeProblem(req: http.IncomingMessage): UpgradeProblem | null {
  if (req.method !== 'GET') return { status: 405, message: 'a WebSocket upgrade must be a GET' };
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return { status: 400, message: 'Upgrade header must be websocket' };
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !WS_KEY_RE.test(key)) return { status: 400, message: 'missing or invalid Sec-WebSocket-Key (16 random bytes, base64)' };
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') {
    return { status: 400, message: 'missing or unsupported Sec-WebSocket-Version', header: 'Sec-WebSocket-Version: 13, 8\r\n' };
  }
  if (offersOnlyBearer(req.headers['sec-websocket-protocol'])) {
    // A client that offers protocols fails the handshake unless the server picks one of them,
    // and the only one here is the credential: refuse rather than copy it into the 101.
    return { status: 400, message: `offer ${APP_PROTOCOL} alongside bearer.<jwt> in Sec-WebSocket-Protocol (the server never echoes a credential)`, code: ErrorCode.PROTOCOL_REQUIRED };
  }
  return null;
}

function offersOnlyBearer(header: string | string[] | undefined): boolean {
  if (typeof header !== 'string') return false;
  const offered = header.split(',').map((p) => p.trim()).filter(Boolean);
  return offered.length > 0 && offered.every((p) => p.startsWith('bearer.'));
}

/**
 * The subprotocol to answer with: `odin.v1` when offered, else the first other offered protocol
 * that is not a `bearer.<jwt>` credential; never a credential (upgradeProblem refuses a
 * bearer-only offer before this runs).
 */
export function chooseProtocol(offered: Set<string>): string | false {
  if (offered.has(APP_PROTOCOL)) return APP_PROTOCOL;
  for (const p of offered) if (!p.startsWith('bearer.')) return p;
  return false;
}
