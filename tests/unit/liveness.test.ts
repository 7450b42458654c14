// When a silent shard is declared hung: not running (no CPU while silent) at the liveness bound;
// running (a runaway task, or a shard starved while it works through a backlog) only at
// BUSY_FACTOR times it; unknown CPU (no /proc) at the bound.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BUSY_FACTOR, hungVerdict, processCpuMs } from '../../app/front/liveness.js';

describe('liveness verdict', () => {
  const bound = 3000;

  it('waits while the shard answered within the bound, whatever its CPU', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: bound }), fc.option(fc.integer({ min: 0, max: 10_000 })), (silentMs, cpuMs) => {
      expect(hungVerdict({ silentMs, cpuMs, windowMs: 500 }, bound)).toBeNull();
    }));
  });

  it('a stopped shard (no CPU while silent) is hung as soon as it is past the bound', () => {
    expect(hungVerdict({ silentMs: bound + 1, cpuMs: 0, windowMs: 500 }, bound)).toBe('not_running');
  });

  it('a running shard is given BUSY_FACTOR times the bound, then declared hung', () => {
    expect(hungVerdict({ silentMs: bound + 1, cpuMs: 200, windowMs: 500 }, bound)).toBeNull();
    expect(hungVerdict({ silentMs: bound * BUSY_FACTOR, cpuMs: 20, windowMs: 500 }, bound)).toBeNull(); // starved: a little CPU is running
    expect(hungVerdict({ silentMs: bound * BUSY_FACTOR + 1, cpuMs: 500, windowMs: 500 }, bound)).toBe('running_too_long');
  });

  it('without a CPU reading the bound alone decides', () => {
    expect(hungVerdict({ silentMs: bound + 1, cpuMs: null, windowMs: 500 }, bound)).toBe('cpu_unknown');
  });
});

describe('processCpuMs', () => {
  it('reads this process CPU time from /proc, growing while it computes', () => {
    const before = processCpuMs(process.pid);
    expect(before).not.toBeNull();
    // Spin until the kernel has charged at least one tick (bounded: a loaded machine may take a while).
    const deadline = Date.now() + 5000;
    let x = 0;
    while (processCpuMs(process.pid) === before && Date.now() < deadline) for (let i = 0; i < 1e5; i++) x += Math.sqrt(i);
    expect(processCpuMs(process.pid)!).toBeGreaterThan(before!);
    expect(Number.isFinite(x)).toBe(true); // keeps the loop from being optimised away
  });

  it('is null for a process that does not exist', () => {
    expect(processCpuMs(2 ** 22 + 12345)).toBeNull();
  });
});
