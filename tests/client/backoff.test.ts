// The reconnect delays are pure: full jitter, the drain window of a 1001, Retry-After.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffCap, drainDelay, fullJitter, parseDrainReason, parseRetryAfter } from '../../app/client/index.js';

describe('full-jitter backoff', () => {
  it('is uniform below min(max, base * 2^attempt), never negative, never at the cap', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 600_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, base, max, r) => {
        const cap = Math.min(max, base * 2 ** Math.min(attempt, 52));
        const d = fullJitter(attempt, { baseMs: base, maxMs: max }, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(Math.max(cap, 1));
        expect(d).toBe(Math.floor(r * cap));
      }),
    );
  });
  it('grows by doubling up to the max', () => {
    const p = { baseMs: 100, maxMs: 1000 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffCap(a, p))).toEqual([100, 200, 400, 800, 1000, 1000]);
    // The extremes of the random source reach both ends of the range.
    expect(fullJitter(3, p, () => 0)).toBe(0);
    expect(fullJitter(3, p, () => 0.999999)).toBe(799);
  });
  it('keeps a broken random source inside the range', () => {
    const p = { baseMs: 100, maxMs: 1000 };
    for (const r of [NaN, -1, 1, 2, Infinity]) {
      const d = fullJitter(2, p, () => r);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(400);
    }
  });
});

describe('1001 drain reason', () => {
  it('reads {"reconnect_within_ms":N}', () => {
    expect(parseDrainReason('{"reconnect_within_ms":5000}')).toBe(5000);
    expect(parseDrainReason('{"reconnect_within_ms":0}')).toBe(0);
  });
  it('is null for anything else', () => {
    for (const r of ['', 'going away', '{}', '[]', 'null', '{"reconnect_within_ms":"5000"}', '{"reconnect_within_ms":-1}', '{"reconnect_within_ms":1e400}', undefined, 42]) {
      expect(parseDrainReason(r), String(r)).toBeNull();
    }
  });
  it('caps an absurd window at an hour', () => {
    expect(parseDrainReason('{"reconnect_within_ms":1e12}')).toBe(3_600_000);
  });
  it('picks a delay uniformly in [0, N)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60_000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (n, r) => {
        const d = drainDelay(n, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(n);
      }),
    );
  });
});

describe('Retry-After', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('5')).toBe(5000);
    const now = Date.parse('2026-12-01T12:00:00Z');
    expect(parseRetryAfter('Tue, 01 Dec 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 01 Dec 2026 11:00:30 GMT', now)).toBe(0);
  });
  it('is null when absent or malformed, capped at an hour', () => {
    expect(parseRetryAfter(undefined)).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
    expect(parseRetryAfter('-3')).toBeNull();
    expect(parseRetryAfter('999999')).toBe(3_600_000);
  });
});
