// The recovery window against a model of everything ever stored: a replay is exactly the
// channel's messages after `since` (never a silent gap), a refusal only when something after
// `since` is gone, and the bounds hold whatever the sequence of stores.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENTRY_OVERHEAD_BYTES, RecoveryWindow, parsePosition } from '../../app/bus/recovery-window.js';

const CHANNELS = [
  { channel: 'trades:A', origin: 'p0' },
  { channel: 'trades:B', origin: 'p0' },
  { channel: 'trades:C', origin: 'p1' },
];

const op = fc.oneof(
  fc.record({ kind: fc.constant('store' as const), ch: fc.nat(2), dt: fc.nat(40), size: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ kind: fc.constant('recover' as const), ch: fc.nat(2), back: fc.nat(12) }),
  fc.record({ kind: fc.constant('last' as const), ch: fc.nat(2) }),
);

describe('recovery window', () => {
  it('replays exactly what came after since, or refuses; never a silent gap; stays within its bounds', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 50, max: 400 }), (ops, maxMessages, windowMs) => {
        const maxBytes = 12 * (30 + ENTRY_OVERHEAD_BYTES);
        const w = new RecoveryWindow({ windowMs, maxMessages, maxBytes, maxReplayBytes: 1 << 20 }, { floor: (_s, o) => (o === 'p0' || o === 'p1' ? -1 : null) });
        const history = new Map<string, Array<{ offset: number; json: string }>>();
        const offsets = new Map<string, number>();
        let now = 1000;
        let evictedEver = false;
        for (const o of ops) {
          const { channel, origin } = CHANNELS[o.ch];
          const mine = history.get(channel) ?? [];
          if (o.kind === 'store') {
            now += o.dt;
            const offset = (offsets.get(origin) ?? 0) + 1;
            offsets.set(origin, offset);
            const json = `{"n":${offset},"pad":"${'x'.repeat(o.size)}"}`;
            mine.push({ offset, json });
            history.set(channel, mine);
            const before = w.stats().evicted;
            w.store(channel, 'trades', { origin, offset }, json, now);
            const s = w.stats();
            if (s.evicted.time + s.evicted.bytes + s.evicted.count > before.time + before.bytes + before.count) evictedEver = true;
            expect(s.bytes).toBeLessThanOrEqual(maxBytes);
            expect(s.messages).toBeLessThanOrEqual(maxMessages * CHANNELS.length);
            continue;
          }
          if (o.kind === 'last') {
            const r = w.last(channel);
            if (r.kind !== 'last') throw new Error(`unexpected ${r.kind}`);
            if (r.messages.length) expect(r.messages).toEqual([mine[mine.length - 1].json]);
            else if (!evictedEver) expect(mine).toHaveLength(0);
            continue;
          }
          // since: one of the channel's own positions (or its origin's start), `back` from its end.
          const i = mine.length - 1 - o.back;
          const since = i >= 0 ? mine[i].offset : 0;
          const r = w.recover(channel, 'trades', { origin, offset: since });
          const after = mine.filter((m) => m.offset > since);
          if (r.kind === 'replay') {
            expect(r.messages).toEqual(after.map((m) => m.json));
            expect(r.after.offset).toBe(after.length ? after[after.length - 1].offset : since);
          } else {
            expect(r).toEqual({ kind: 'unrecoverable', reason: 'out_of_window' });
            expect(evictedEver).toBe(true); // refusing is allowed only once something is gone
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses another origin, waits while the source cannot tell, and is off at window 0', () => {
    let pending = true;
    const w = new RecoveryWindow({ windowMs: 60_000, maxMessages: 10, maxBytes: 1 << 20, maxReplayBytes: 1 << 20 }, { floor: (_s, o) => (o !== 'p0' ? null : pending ? 'pending' : 4) });
    w.store('trades:A', 'trades', { origin: 'p0', offset: 5 }, '{"n":5}', 1);
    expect(w.recover('trades:A', 'trades', { origin: 'p0', offset: 4 })).toEqual({ kind: 'pending' });
    pending = false;
    expect(w.recover('trades:A', 'trades', { origin: 'p0', offset: 4 })).toMatchObject({ kind: 'replay', messages: ['{"n":5}'] });
    // Coverage starts after 4: an earlier position may have missed records this process never saw.
    expect(w.recover('trades:A', 'trades', { origin: 'p0', offset: 3 })).toEqual({ kind: 'unrecoverable', reason: 'out_of_window' });
    expect(w.recover('trades:A', 'trades', { origin: 'e-other', offset: 3 })).toEqual({ kind: 'unrecoverable', reason: 'unknown_origin' });
    const off = new RecoveryWindow({ windowMs: 0, maxMessages: 10, maxBytes: 1 << 20, maxReplayBytes: 1 << 20 }, { floor: () => -1 });
    off.store('trades:A', 'trades', { origin: 'p0', offset: 5 }, '{"n":5}', 1);
    expect(off.recover('trades:A', 'trades', { origin: 'p0', offset: 4 })).toEqual({ kind: 'unrecoverable', reason: 'out_of_window' });
    expect(off.stats().messages).toBe(0);
  });

  it('parses positions strictly', () => {
    expect(parsePosition('p3:88123')).toEqual({ origin: 'p3', offset: 88123 });
    expect(parsePosition('a:b:7')).toEqual({ origin: 'a:b', offset: 7 });
    for (const bad of ['', ':1', 'p3:', 'p3:-1', 'p3:1e3', 'p3:99999999999999999', 'p3']) expect(parsePosition(bad)).toBeNull();
  });
});
