// Starts the real bundled server (dist/server.mjs) on port 0 and reads its address from the
// `listening` log line.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import readline from 'node:readline';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const SERVER = path.join(ROOT, 'dist/server.mjs');

export interface RunningServer {
  port: number;
  wsUrl: string;
  healthUrl: string;
  metricsUrl: string;
  proc: ChildProcess;
  /** Every log line the server printed (parsed JSON), for assertions on start-up lines. */
  logs: Array<Record<string, unknown>>;
  stderr: () => string;
  /** SIGTERM, wait for exit; resolves to the exit code. Idempotent. */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  env?: Record<string, string>;
  args?: string[];
  timeoutMs?: number;
  /** Its own process group (the front and its shards), so a test can SIGKILL all of it at once. */
  detached?: boolean;
}

export async function startServer(opts: StartOptions = {}): Promise<RunningServer> {
  const proc = spawn(process.execPath, [SERVER, '--lb-addr', '127.0.0.1:0', ...(opts.args ?? [])], {
    // Saturation admission off unless a test sets it: on a 2-core machine running the broker, the
    // clients and the server at once, a descheduled shard is the test machine's state, not the
    // server's (tests/server/saturation.test.ts sets it).
    env: { ...process.env, KAFKA_BROKERS: '', LOG_LEVEL: 'info', WS_SATURATION_LAG_MS: '0', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  const logs: Array<Record<string, unknown>> = [];
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const lines = readline.createInterface({ input: proc.stdout! });
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in time; stderr:\n${err}`)), opts.timeoutMs ?? 20_000);
    lines.on('line', (line) => {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(rec);
      if (rec.msg === 'listening') {
        clearTimeout(timer);
        resolve(rec);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening; stderr:\n${err}`));
    });
  });
  const rec = await listening;
  let stopping: Promise<number | null> | null = null;
  return {
    port: rec.port as number,
    wsUrl: rec.ws_url as string,
    healthUrl: rec.health_url as string,
    metricsUrl: rec.metrics_url as string,
    proc,
    logs,
    stderr: () => err,
    stop() {
      if (!stopping) {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
        stopping = exited;
      }
      return stopping;
    },
  };
}

/**
 * GET with a bound per attempt and a few attempts: with SO_REUSEPORT the kernel may hand a new
 * connection to a shard a test has stopped (SIGSTOP), which answers nothing until it is resumed or
 * killed (or resets it when killed); a real client retries the same way.
 */
export async function fetchRetry(url: string, attempts = 6): Promise<Response> {
  for (let i = 1; ; i++) {
    try {
      return await fetch(url, { signal: AbortSignal.timeout(2000) });
    } catch (err) {
      if (i >= attempts) throw err;
    }
  }
}

export async function getHealth(url: string): Promise<{ status: number; body: any }> {
  const res = await fetchRetry(url);
  return { status: res.status, body: await res.json() };
}

/** Polls `fn` until it returns a truthy value; fails with `what` after `timeoutMs`. */
type Falsy = null | undefined | false | 0 | '';
export async function until<T>(fn: () => Promise<T | Falsy> | T | Falsy, what: string, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Runs `fn`; when it throws, appends the servers' log lines that match `match` (the last 30 of
 * each) to the error, so a failure seen only under CI's load says what the server was doing.
 */
export async function withServerLogs<T>(servers: Record<string, RunningServer>, match: RegExp, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const parts = Object.entries(servers).map(([name, srv]) => {
      const lines = srv.logs.filter((r) => match.test(`${String(r.part ?? '')} ${String(r.msg ?? '')}`)).slice(-30);
      return `--- ${name} server log (${lines.length} matching lines) ---\n${lines.map((r) => JSON.stringify(r)).join('\n')}`;
    });
    err.message += `\n${parts.join('\n')}`;
    throw err;
  }
}

/** Listening TCP sockets on `port` (IPv4, from /proc/net/tcp): one per shard with SO_REUSEPORT. */
export function listeners(port: number): number {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .filter((l) => l.includes(hex) && l.trim().split(/\s+/)[3] === '0A').length;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
