// The shard's saturation verdict from its two signals: delivery lag alone trips it (a shard
// fanning out more than it can while its loop keeps turning), so does a held-up loop; it clears
// only under half the limit; the first sample (start-up) is never judged; 0 turns it off.
import { describe, expect, it } from 'vitest';
import { busClockMs } from '../../app/common/ipc.js';
import { SaturationMeter } from '../../app/shard/saturation.js';

function deliverAged(m: SaturationMeter, ageMs: number, n = 20): void {
  const now = busClockMs();
  for (let i = 0; i < n; i++) m.delivered(now - ageMs, now);
}

describe('saturation meter', () => {
  it('trips on delivery lag with an idle loop, holds between half and the limit, clears under half', () => {
    const m = new SaturationMeter(100);
    m.start();
    deliverAged(m, 5000);
    expect(m.sample(0)).toMatchObject({ saturated: false, changed: false }); // start-up: not judged
    deliverAged(m, 300);
    const s = m.sample(0);
    expect(s).toMatchObject({ saturated: true, changed: true });
    expect(s.loopLagMs).toBeLessThan(100);
    expect(s.deliveryLagMs).toBeGreaterThanOrEqual(299);
    deliverAged(m, 60);
    expect(m.sample(0)).toMatchObject({ saturated: true, changed: false });
    deliverAged(m, 40);
    expect(m.sample(0)).toMatchObject({ saturated: false, changed: true });
    expect(m.sample(0)).toMatchObject({ deliveryLagMs: 0, saturated: false }); // nothing delivered
    m.stop();
    m.stop();
  });

  it('judges the p99 of the interval, not one late batch', () => {
    const m = new SaturationMeter(100);
    m.sample(0);
    deliverAged(m, 1, 500);
    deliverAged(m, 2000, 1);
    expect(m.sample(0).saturated).toBe(false);
  });

  it('trips on a held-up loop or a late sample', () => {
    const m = new SaturationMeter(100);
    m.start();
    m.sample(0);
    expect(m.sample(250)).toMatchObject({ saturated: true, deliveryLagMs: 0 });
    expect(m.sample(0).saturated).toBe(false);
    m.stop();
  });

  it('never trips with limit 0, and still measures', () => {
    const m = new SaturationMeter(0);
    m.sample(0);
    deliverAged(m, 5000);
    const s = m.sample(5000);
    expect(s.saturated).toBe(false);
    expect(s.deliveryLagMs).toBeGreaterThanOrEqual(4999);
  });
});
