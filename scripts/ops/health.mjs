// Probes and verdicts shared by gcp:health:all, deploy's final wait and local:health: what
// "healthy" means for the WS server and the publisher, and how a result is shown.
import net from 'node:net';
import { OpsError } from './gcp.mjs';

/** GET url, JSON body if there is one; never throws (a refused connection is a result). */
export async function fetchJson(url, { timeoutMs = 5000 } = {}) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { httpStatus: res.status, body, error: null };
  } catch (e) {
    return { httpStatus: null, body: null, error: e?.cause?.code ?? e?.name ?? String(e) };
  }
}

/** Healthy: HTTP 200, status ok, at least one shard, every shard up (a 503 body is draining). */
export function evaluateWsHealth({ httpStatus, body, error }) {
  if (error) return { ok: false, problem: `unreachable (${error})` };
  if (!body || typeof body !== 'object' || !Array.isArray(body.shards)) {
    return { ok: false, problem: `HTTP ${httpStatus}, not a /health body` };
  }
  if (httpStatus !== 200 || body.status !== 'ok') return { ok: false, problem: `HTTP ${httpStatus}, status ${body.status}` };
  if (body.shards.length === 0) return { ok: false, problem: 'no shards' };
  const down = body.shards.filter((s) => !s.up).map((s) => s.id);
  if (down.length) return { ok: false, problem: `shard(s) ${down.join(', ')} down` };
  return { ok: true, problem: null };
}

/** Healthy and serving the release just shipped: the detailed body's `version` must match. */
export function evaluateRelease(result, version) {
  const verdict = evaluateWsHealth(result);
  if (!verdict.ok) return verdict;
  if (result.body.version !== version) return { ok: false, problem: `serves version ${JSON.stringify(result.body.version ?? null)}, not the release ${version} just shipped` };
  return verdict;
}

/** What a client sees on the public port: only `{"status":"ok"}` (200) or draining (503). */
export function evaluatePublicHealth({ httpStatus, body, error }) {
  if (error) return { ok: false, problem: `unreachable (${error})` };
  if (httpStatus !== 200 || !body || typeof body !== 'object' || body.status !== 'ok') {
    return { ok: false, problem: `HTTP ${httpStatus}, status ${body && typeof body === 'object' ? body.status : JSON.stringify(body)}` };
  }
  return { ok: true, problem: null };
}

/** A probe's stdout (the /health body fetched on the VM) as a fetchJson-shaped result. */
export function parseRemoteHealth({ exitCode, stdout, stderr }) {
  if (exitCode !== 0) return { httpStatus: null, body: null, error: `probe failed (exit ${exitCode}): ${String(stderr ?? '').trim().split('\n').pop() || 'no output'}` };
  const text = String(stdout ?? '');
  const m = /^@@http (\d{3})$/m.exec(text);
  const bodyText = text.replace(/^@@http \d{3}\s*$/m, '').trim();
  try {
    return { httpStatus: m ? Number(m[1]) : 200, body: JSON.parse(bodyText), error: null };
  } catch {
    return { httpStatus: m ? Number(m[1]) : null, body: bodyText, error: bodyText ? null : 'no answer from 127.0.0.1:3004' };
  }
}

/** A fixed-width text table. */
export function formatTable(headers, rows) {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c ?? '-')));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  return cells.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd()).join('\n');
}

/** The /health body as one line of totals and a row per shard. */
export function formatHealth(body) {
  const sys = body.system ?? {};
  const head = `mode ${body.mode ?? '?'}, status ${body.status ?? '?'}, source ${sys.source ?? '?'}, ` +
    `connections ${sys.total_connections ?? '?'}/${sys.max_connections ?? '?'}, rejected ${sys.rejected ?? 0}, ` +
    `cpu ${fmt(sys.cpu)}/${sys.cpu_limit ?? '?'}, memory ${fmt(sys.memory_mb)} MB, uptime ${sys.uptime_s ?? '?'} s`;
  const rows = (body.shards ?? []).map((s) => [s.id, s.pid, s.up ? 'yes' : 'NO', s.connections, s.channels, s.restarts]);
  return `${head}\n${formatTable(['shard', 'pid', 'up', 'connections', 'channels', 'restarts'], rows)}`;
}

const fmt = (n) => (typeof n === 'number' ? (Math.round(n * 10) / 10).toString() : '?');

/** The publisher's GET /status: up when it answers and its broker connection is up. */
export function evaluatePublisherStatus({ httpStatus, body, error }) {
  if (error) return { ok: false, problem: `unreachable (${error})` };
  if (httpStatus !== 200 || !body || typeof body !== 'object') return { ok: false, problem: `HTTP ${httpStatus}` };
  if (!body.broker?.connected) return { ok: false, problem: 'not connected to the broker' };
  return { ok: true, problem: null };
}

export function formatPublisherStatus(body) {
  if (!body || typeof body !== 'object') return String(body ?? '');
  return `rate ${body.rate}/s, sent ${body.sent}, errors ${body.errors}, broker ${body.broker?.connected ? 'connected' : 'DISCONNECTED'}, uptime ${body.uptime_s} s`;
}

/** Whether a TCP connection to host:port opens within timeoutMs. */
export function tcpProbe(host, port, timeoutMs = 3000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Polls /health until healthy or until timeoutMs has passed (bounded by both time and attempts).
 * Throws an OpsError carrying the last body seen.
 */
export async function waitHealthy(url, { timeoutMs = 180_000, intervalMs = 2000, onAttempt = () => {}, probe, evaluate = evaluateWsHealth } = {}) {
  const deadline = Date.now() + timeoutMs;
  const maxAttempts = Math.ceil(timeoutMs / intervalMs) + 1;
  probe ??= () => fetchJson(url, { timeoutMs: Math.min(5000, intervalMs * 2) });
  let last = null;
  let verdict = null;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    last = await probe();
    verdict = evaluate(last);
    onAttempt(attempt, verdict);
    if (verdict.ok) return last;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const shown = last?.error ? `(no answer: ${last.error})` : typeof last?.body === 'string' ? last.body : JSON.stringify(last?.body, null, 2);
  throw new OpsError(`${url} did not become healthy within ${Math.round(timeoutMs / 1000)} s (${verdict?.problem}); last response (HTTP ${last?.httpStatus ?? '-'}):`, { detail: shown });
}

/** One line per check, a verdict column first; returns whether every check passed. */
export function formatChecks(checks) {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = checks.map((c) => `${c.ok ? 'OK  ' : 'DOWN'}  ${c.name.padEnd(width)}  ${c.detail ?? ''}`.trimEnd());
  return { text: lines.join('\n'), ok: checks.every((c) => c.ok) };
}
