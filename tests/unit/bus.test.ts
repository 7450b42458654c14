// The broadcast bus on its own, with in-process targets: epochs and channel eviction, the per-shard
// output cap, congestion, adaptive flushing. Clocks are passed in (sweep(now)); nothing waits on time.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BroadcastBus } from '../../app/bus/broadcast-bus.js';
import { makeBus, msg, TestTarget } from './support/bus-fixtures.js';

const turn = () => new Promise((r) => setImmediate(r));
let buses: BroadcastBus[] = [];
const bus = (...a: Parameters<typeof makeBus>) => {
  const b = makeBus(...a);
  buses.push(b);
  return b;
};
afterEach(() => {
  for (const b of buses) b.stop();
  buses = [];
});

describe('bus channel state', () => {
  it('forgets a quiet channel without a concrete subscriber; the re-created one has a new epoch from seq 1', () => {
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    const b = bus([t], { channelIdleMs: 1000 });
    for (let i = 0; i < 3; i++) b.dispatch([msg('trades', 'X')]);
    b.flush();
    b.sweep(Date.now() + 500); // not quiet long enough
    expect(b.channelCount).toBe(1);
    b.sweep(Date.now() + 1500);
    expect(b.channelCount).toBe(0);
    expect(b.evictions).toBe(1);
    b.dispatch([msg('trades', 'X')]);
    b.flush();
    const [a1, a2, a3, r1] = t.got;
    expect([a1.seq, a2.seq, a3.seq]).toEqual([1, 2, 3]);
    expect(new Set([a1.epoch, a2.epoch, a3.epoch]).size).toBe(1);
    // The wildcard subscriber tells the restart from a gap: a new epoch, numbered from 1.
    expect(r1.epoch).not.toBe(a1.epoch);
    expect(r1.seq).toBe(1);
  });

  it('keeps a channel while any shard has a concrete subscriber for it', () => {
    const t = new TestTarget(0);
    t.exact.add('trades:X');
    const b = bus([t]);
    b.dispatch([msg('trades', 'X')]);
    b.flush();
    b.sweep(Date.now() + 10_000);
    expect(b.channelCount).toBe(1);
    t.exact.delete('trades:X');
    b.sweep(Date.now() + 30_000);
    expect(b.channelCount).toBe(0);
  });

  it('never forgets a channel whose last message a live shard missed, so its gap stays visible', () => {
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    const b = bus([t], { shardBufferBytes: 1 << 16 });
    b.dispatch([msg('trades', 'X')]);
    b.flush(); // seq 1 delivered
    t.pendingBytes = 1 << 16; // the shard's pipe is full
    b.dispatch([msg('trades', 'X')]);
    b.flush(); // seq 2 dropped for it
    b.sweep(Date.now() + 60_000);
    expect(b.channelCount).toBe(1);
    t.pendingBytes = 0;
    b.dispatch([msg('trades', 'X')]);
    b.flush();
    expect(t.got.map((g) => g.seq)).toEqual([1, 3]); // same epoch, seq jumps: the client sees the gap
    expect(t.got[0].epoch).toBe(t.got[1].epoch);
    b.sweep(Date.now() + 120_000); // the gap was seen: now it may go
    expect(b.channelCount).toBe(0);
  });

  it('lets a missed channel go once the shard that missed it restarted (its clients are gone)', () => {
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    const b = bus([t], { shardBufferBytes: 1 << 16 });
    b.dispatch([msg('trades', 'X')]);
    b.flush();
    t.pendingBytes = 1 << 16;
    b.dispatch([msg('trades', 'X')]);
    b.flush();
    t.incarnation = 2;
    t.pendingBytes = 0;
    b.sweep(Date.now() + 60_000);
    expect(b.channelCount).toBe(0);
  });

  it('over the cardinality cap forgets the least recently used unsubscribed channels first', () => {
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    t.exact.add('trades:K0');
    const b = bus([t], { maxChannels: 100, batchSize: 1 }); // (a channel in the batch being built is kept)
    for (let i = 0; i < 250; i++) b.dispatch([msg('trades', `K${i}`)]);
    expect(b.channelCount).toBe(100);
    expect(b.evictions).toBe(150);
    b.dispatch([msg('trades', 'K0')]); // the subscribed one survived: its numbering continues
    b.dispatch([msg('trades', 'K1')]); // an unsubscribed old one was forgotten: new epoch
    b.flush();
    const k0 = t.got.filter((g) => g.channel === 'trades:K0');
    const k1 = t.got.filter((g) => g.channel === 'trades:K1');
    expect(k0.map((g) => g.seq)).toEqual([1, 2]);
    expect(k0[0].epoch).toBe(k0[1].epoch);
    expect(k1.map((g) => g.seq)).toEqual([1, 1]);
    expect(k1[0].epoch).not.toBe(k1[1].epoch);
  });

  it('memory returns near the baseline after 1,000,000 distinct keys once they are idle (bus + a shard decoder)', () => {
    const child = path.join(import.meta.dirname, 'support/bus-memory-child.ts');
    const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', child], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    console.log('bus memory (MB):', JSON.stringify(m));
    expect(m.delivered).toBe(1_000_001); // and the warm-up message
    expect(m.peak_channels).toBe(1_000_000);
    expect(m.channels_after).toBe(0);
    expect(m.peak_mb - m.baseline_mb).toBeGreaterThan(50); // the state was really there
    expect(m.after_mb - m.baseline_mb).toBeLessThan(5);
  });
});

describe('bus output cap per shard', () => {
  it('drops (and counts) batches for a shard whose pipe is over the cap, and only for it', () => {
    const slow = new TestTarget(0);
    const ok = new TestTarget(1);
    for (const t of [slow, ok]) t.wild.add('trades:*');
    const b = bus([slow, ok], { shardBufferBytes: 1 << 16 });
    b.dispatch([msg('trades', 'A')]);
    b.flush();
    slow.pendingBytes = (1 << 16) - 10;
    b.dispatch([msg('trades', 'A'), msg('trades', 'B')]);
    b.flush();
    const [s0, s1] = b.targetStats();
    expect(s0).toMatchObject({ id: 0, dropped_messages: 2 });
    expect(s0.dropped_bytes).toBeGreaterThan(0);
    expect(s0.over_cap_since_ms).toBeTypeOf('number');
    expect(s1).toMatchObject({ id: 1, dropped_messages: 0, dropped_bytes: 0, over_cap_since_ms: null });
    expect(ok.received).toBe(3);
    expect(slow.received).toBe(1);
    slow.pendingBytes = 0;
    b.dispatch([msg('trades', 'A')]);
    b.flush();
    expect(b.overCapSinceMs(0)).toBeNull();
    expect(slow.got.map((g) => g.seq)).toEqual([1, 3]);
  });

  it('reports congestion only when most shards stay behind, and clears it when they drain', async () => {
    const ts = [0, 1, 2].map((i) => new TestTarget(i));
    for (const t of ts) t.wild.add('trades:*');
    const b = bus(ts, { shardBufferBytes: 1 << 16 });
    const seen: boolean[] = [];
    b.onCongestion((c) => seen.push(c));
    const waitFor = async (want: boolean) => {
      for (let i = 0; i < 300 && b.congested !== want; i++) await new Promise((r) => setTimeout(r, 10));
    };
    ts[0].pendingBytes = 1 << 16; // one hung shard: dropped for, not congestion
    b.dispatch([msg('trades', 'A')]);
    b.flush();
    await new Promise((r) => setTimeout(r, 300));
    expect(b.congested).toBe(false);
    ts[1].pendingBytes = 40_000; // a second one stays above half its cap
    b.dispatch([msg('trades', 'A')]);
    b.flush();
    await waitFor(true);
    expect(b.congested).toBe(true);
    ts[1].pendingBytes = 20_000; // between a quarter and a half: still behind
    await new Promise((r) => setTimeout(r, 100));
    expect(b.congested).toBe(true);
    ts[1].pendingBytes = 0;
    ts[0].pendingBytes = 0;
    await waitFor(false);
    expect(seen).toEqual([true, false]);
  });
});

describe('bus adaptive flushing', () => {
  it('sends a lone message at once even with a 10 s flush window', async () => {
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    const b = bus([t], { flushMs: 10_000 });
    b.dispatch([msg('trades', 'A')]);
    await turn();
    expect(t.received).toBe(1);
  }, 5_000);

  it('still fills batches to the size while arrivals are dense', async () => {
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    const b = bus([t], { flushMs: 10_000, batchSize: 100 });
    b.dispatch([msg('trades', 'A')]);
    await turn(); // the lone one went out: a window opened
    for (let i = 0; i < 250; i++) {
      b.dispatch([msg('trades', `T${i % 10}`)]);
      if (i % 10 === 0) await turn();
    }
    expect(t.batches).toBe(3); // 1 + two full batches; 50 wait for the window or a full batch
    expect(t.received).toBe(201);
    b.stop();
    expect(t.received).toBe(251);
  }, 5_000);

  it('waits while a shard is still taking the previous batch', async () => {
    const t = new TestTarget(0);
    t.wild.add('trades:*');
    const b = bus([t], { flushMs: 10_000 });
    t.pendingBytes = 100;
    b.dispatch([msg('trades', 'A')]);
    for (let i = 0; i < 5; i++) await turn();
    await new Promise((r) => setTimeout(r, 50));
    expect(t.received).toBe(0);
    b.flush();
    expect(t.received).toBe(1);
  }, 5_000);
});
