// A bounded connection storm: `total` attempts, at most `concurrency` in flight, each with its own
// deadline. Every attempt is classified; nothing is retried.
import net from 'node:net';
import WebSocket from 'ws';
import { upgradeRequest } from './raw-ws.js';

/**
 * How one attempt behaves:
 * - `ping-close`: open, ping, wait for the pong, close handshake;
 * - `ping-drop`: open, ping, wait for the pong, drop the TCP connection (no close frame);
 * - `open-close`: open and close at once;
 * - `abandon`: send the upgrade request and drop the connection before any reply (it is gone
 *   while the front hands it to a shard, or before).
 */
export type AttemptKind = 'ping-close' | 'ping-drop' | 'open-close' | 'abandon';

export interface StormResult {
  attempts: number;
  /** Opened and (for the ping kinds) answered. */
  served: number;
  /** HTTP status of refused upgrades -> count. */
  refused: Record<number, number>;
  /** Retry-After values seen on 503s. */
  retryAfter: Set<string>;
  abandoned: number;
  /** Anything else (timeouts, resets, no pong): the first few, for the failure message. */
  failures: string[];
  failureCount: number;
}

export interface StormOptions {
  total: number;
  concurrency: number;
  kinds: readonly AttemptKind[]; // attempt i uses kinds[i % kinds.length]
  attemptTimeoutMs?: number;
}

export async function storm(url: string, opts: StormOptions): Promise<StormResult> {
  const r: StormResult = { attempts: 0, served: 0, refused: {}, retryAfter: new Set(), abandoned: 0, failures: [], failureCount: 0 };
  const fail = (i: number, why: string) => {
    r.failureCount++;
    if (r.failures.length < 10) r.failures.push(`#${i}: ${why}`);
  };
  let next = 0;
  const worker = async () => {
    while (next < opts.total) {
      const i = next++;
      r.attempts++;
      const kind = opts.kinds[i % opts.kinds.length];
      const out = await (kind === 'abandon' ? abandon(url) : attempt(url, kind, opts.attemptTimeoutMs ?? 15_000));
      if (out.ok) r.served++;
      else if (out.abandoned) r.abandoned++;
      else if (out.status) {
        r.refused[out.status] = (r.refused[out.status] ?? 0) + 1;
        if (out.retryAfter) r.retryAfter.add(out.retryAfter);
      } else fail(i, out.why ?? 'unknown');
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return r;
}

interface Outcome {
  ok?: boolean;
  status?: number;
  retryAfter?: string;
  abandoned?: boolean;
  why?: string;
}

function attempt(url: string, kind: Exclude<AttemptKind, 'abandon'>, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(o);
    };
    const timer = setTimeout(() => {
      ws.terminate();
      finish({ why: `no ${ws.readyState === WebSocket.OPEN ? 'pong' : 'handshake'} in time` });
    }, timeoutMs);
    ws.on('error', (err) => finish({ why: err.message }));
    ws.on('unexpected-response', (_req, res) => {
      const retryAfter = res.headers['retry-after'];
      res.resume();
      ws.terminate();
      finish({ status: res.statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined });
    });
    ws.on('close', (code) => finish({ why: `closed ${code} before being served` }));
    ws.on('open', () => {
      if (kind === 'open-close') {
        finish({ ok: true });
        ws.close();
        return;
      }
      ws.send('{"op":"ping","id":"storm"}');
    });
    ws.on('message', (raw) => {
      if (!String(raw).includes('"pong"')) return;
      finish({ ok: true });
      if (kind === 'ping-close') ws.close();
      else ws.terminate();
    });
  });
}

function abandon(url: string): Promise<Outcome> {
  const { port, hostname, pathname } = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(port), hostname, () => {
      s.write(upgradeRequest(pathname));
      s.destroy();
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ abandoned: true }));
  });
}
