// Reconnect delays, pure so they can be tested on their own. Full jitter (AWS architecture blog,
// "Exponential Backoff And Jitter"): a uniformly random delay below the exponential cap spreads a
// crowd of clients that lost the same server instead of having them return in waves.

export interface BackoffPolicy {
  /** Cap of the first retry, ms. */
  readonly baseMs: number;
  /** Cap the exponential growth never passes, ms. */
  readonly maxMs: number;
}

/** The cap for a retry: min(max, base * 2^attempt). */
export function backoffCap(attempt: number, p: BackoffPolicy): number {
  const a = Math.max(0, Math.min(attempt, 52)); // 2^53 would overflow the integer range
  return Math.min(p.maxMs, p.baseMs * 2 ** a);
}

/** A full-jitter delay: random(0, cap) with `random` in [0, 1). */
export function fullJitter(attempt: number, p: BackoffPolicy, random: () => number = Math.random): number {
  return Math.floor(clamp01(random()) * backoffCap(attempt, p));
}

/**
 * The drain window of a 1001 close: the server sends `{"reconnect_within_ms":N}` as the reason.
 * Anything else (empty, not JSON, N not a finite non-negative number) is null: the caller then
 * backs off as after any other loss.
 */
export function parseDrainReason(reason: unknown): number | null {
  if (typeof reason !== 'string' || reason.length === 0 || reason.length > 123) return null;
  let v: unknown;
  try {
    v = JSON.parse(reason);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const n = (v as Record<string, unknown>).reconnect_within_ms;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return null;
  return Math.min(n, 3_600_000);
}

/** A uniformly random delay in [0, windowMs). */
export function drainDelay(windowMs: number, random: () => number = Math.random): number {
  return Math.floor(clamp01(random()) * windowMs);
}

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP date; ms from `now`, or null when
 * absent or malformed. Bounded to an hour so a bad header cannot park a client for ever.
 */
export function parseRetryAfter(value: unknown, now = Date.now()): number | null {
  if (typeof value !== 'string') return null;
  const s = value.trim();
  if (/^\d{1,10}$/.test(s)) return Math.min(Number(s) * 1000, 3_600_000);
  // Date.parse reads almost anything ('-3' is a year): accept only the IMF-fixdate shape.
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(s)) return null;
  const at = Date.parse(s);
  if (!Number.isFinite(at)) return null;
  return Math.max(0, Math.min(at - now, 3_600_000));
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 1 - Number.EPSILON) : 0;
}
