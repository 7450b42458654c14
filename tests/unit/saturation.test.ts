// The shard's saturation verdict from its two signals: delivery lag alone trips it (a shard
// fanning out more than it can while its loop keeps turning), so does a held-up loop; it clears
// only after enough samples under half the limit; start-up samples are never judged; 0 turns it
// off; /health gets the worst sample of each signal since its last report.
import { describe, expect, it } from 'vitest';
import { busClockMs } from '../../app/common/ipc.js';
import { AdmissionGate } from '../../app/shard/admission-gate.js';
import { Probation, fanoutKeep } from '../../app/shard/probation.js';
import { SaturationMeter } from '../../app/shard/saturation.js';

function deliverAged(m: SaturationMeter, ageMs: number, n = 20): void {
  const now = busClockMs();
  for (let i = 0; i < n; i++) m.delivered(now - ageMs, now);
}

const quick = { warmupSamples: 1, clearSamples: 2 };

describe('saturation meter', () => {
  it('trips on delivery lag with an idle loop, holds until enough calm samples, then clears', () => {
    const m = new SaturationMeter(100, quick);
    m.start();
    deliverAged(m, 5000);
    expect(m.sample(0)).toMatchObject({ saturated: false, changed: false }); // start-up: not judged
    deliverAged(m, 300);
    const s = m.sample(0);
    expect(s).toMatchObject({ saturated: true, changed: true });
    expect(s.loopLagMs).toBeLessThan(100);
    expect(s.deliveryLagMs).toBeGreaterThanOrEqual(299);
    deliverAged(m, 60); // between half and the limit: still saturated
    expect(m.sample(0)).toMatchObject({ saturated: true, changed: false });
    deliverAged(m, 40);
    expect(m.sample(0)).toMatchObject({ saturated: true, changed: false }); // one calm sample of two
    deliverAged(m, 40);
    expect(m.sample(0)).toMatchObject({ saturated: false, changed: true });
    expect(m.sample(0)).toMatchObject({ deliveryLagMs: 0, saturated: false }); // nothing delivered
    m.stop();
    m.stop();
  });

  it('a lag over the limit between calm samples starts the count again', () => {
    const m = new SaturationMeter(100, quick);
    m.sample(0);
    expect(m.sample(200).saturated).toBe(true);
    m.sample(0);
    expect(m.sample(150).saturated).toBe(true);
    m.sample(0);
    expect(m.sample(0).saturated).toBe(false);
  });

  it('judges the p99 of the interval, not one late batch', () => {
    const m = new SaturationMeter(100, quick);
    m.sample(0);
    deliverAged(m, 1, 500);
    deliverAged(m, 2000, 1);
    expect(m.sample(0).saturated).toBe(false);
  });

  it('trips on a held-up loop or a late sample, and does not judge its default four start-up samples', () => {
    const m = new SaturationMeter(100);
    m.start();
    for (let i = 0; i < 4; i++) expect(m.sample(1000).saturated).toBe(false);
    expect(m.sample(250)).toMatchObject({ saturated: true, deliveryLagMs: 0 });
    m.stop();
  });

  it('reports the worst sample of each signal since the last report', () => {
    const m = new SaturationMeter(100, quick);
    deliverAged(m, 30);
    m.fanout(1e6); // more than any interval: a share is at most 1
    m.sample(0);
    m.sample(70);
    deliverAged(m, 10);
    m.sample(0);
    const r = m.report();
    expect(r.loopLagMs).toBeGreaterThanOrEqual(70);
    expect(r.deliveryLagMs).toBeGreaterThanOrEqual(29);
    expect(r.deliveryLagMs).toBeLessThan(40);
    expect(r.fanoutShare).toBe(1);
    expect(m.report()).toEqual({ loopLagMs: 0, deliveryLagMs: 0, fanoutShare: 0 });
  });

  it('measures its pace (bus time delivered per real time) and the share of time spent fanning out', () => {
    const m = new SaturationMeter(100, quick);
    let t = 10_000;
    m.sample(0, t);
    m.delivered(t - 100, t);
    t += 250;
    expect(m.sample(0, t).pace).toBeNaN(); // nothing to compare with yet
    m.delivered(t - 225, t); // 125 ms of bus time further in 250 ms: half the pace
    m.fanout(200);
    t += 250;
    const behind = m.sample(0, t);
    expect(behind.pace).toBeCloseTo(0.5, 5);
    expect(behind.fanoutShare).toBeCloseTo(0.8, 5);
    m.delivered(t - 100, t); // 375 ms further in 250 ms: a backlog draining
    t += 250;
    const draining = m.sample(0, t);
    expect(draining.pace).toBeCloseTo(1.5, 5);
    expect(draining.fanoutShare).toBe(0);
    t += 250;
    expect(m.sample(0, t).pace).toBeNaN(); // nothing delivered
  });

  it('never trips with limit 0, and still measures', () => {
    const m = new SaturationMeter(0, quick);
    m.sample(0);
    deliverAged(m, 5000);
    const s = m.sample(5000);
    expect(s.saturated).toBe(false);
    expect(s.deliveryLagMs).toBeGreaterThanOrEqual(4999);
  });
});

describe('probation shedding', () => {
  const client = (name: string, log: string[]) => {
    const c = {
      gone: false,
      shedForOverload(ms: number) {
        log.push(`${name}:${ms}`);
        c.gone = true;
      },
    };
    return c;
  };

  // Fan-out overload: the shard fans out 95% of the time and gets through 2/3 of the bus time.
  const overload = { pace: 0.66, fanoutShare: 0.95, deliveryLagMs: 150, limitMs: 100 };

  it('sheds the newest clients still on probation toward the ceiling its fan-out can carry, never the ones past it', () => {
    const log: string[] = [];
    const p = new Probation(2000, 5000);
    const old = client('old', log);
    p.admitted(old, -1000);
    const fresh = Array.from({ length: 50 }, (_, i) => client(`n${i}`, log));
    fresh.forEach((c, i) => p.admitted(c, 1500 + i));
    fresh[49].gone = true; // closed on its own: skipped, not counted
    expect(p.size(1600)).toBe(49); // `old` is past its probation
    const keep = fanoutKeep(overload);
    expect(keep).toBeCloseTo((0.9 * 0.66) / 0.95 / 1.1, 5);
    expect(p.shed(60, overload, 1600)).toBe(60 - Math.floor(60 * keep)); // all the way to the ceiling at once
    expect(p.ceiling).toBe(Math.floor(60 * keep));
    expect(log.slice(0, 3)).toEqual(['n48:5000', 'n47:5000', 'n46:5000']); // newest first
    expect(p.shed(p.ceiling, overload, 1700)).toBe(0); // at the ceiling, and no new cut within a second
    const ceiling = p.ceiling;
    expect(p.shed(ceiling, overload, 2700)).toBeGreaterThan(0); // a second later, still behind: cut again
    expect(p.ceiling).toBeLessThan(ceiling);
    expect(p.shed(1000, overload, 9000)).toBe(0); // everyone left is past probation by now
    expect(old.gone).toBe(false);
  });

  it('cuts nobody when the fan-out is not what holds the shard back (a handshake storm, a stall, a backlog draining)', () => {
    const log: string[] = [];
    const p = new Probation(10_000, 5000);
    for (let i = 0; i < 100; i++) p.admitted(client(`c${i}`, log), 0);
    const handshakes = { pace: 0.7, fanoutShare: 0.2, deliveryLagMs: 200, limitMs: 100 };
    const stalled = { pace: 5, fanoutShare: 0.01, deliveryLagMs: 1200, limitMs: 100 }; // SIGSTOP, GC, a descheduled VM
    const draining = { pace: 1.3, fanoutShare: 0.9, deliveryLagMs: 300, limitMs: 100 };
    const unknown = { pace: NaN, fanoutShare: 0, deliveryLagMs: 0, limitMs: 100 }; // nothing delivered
    for (const load of [handshakes, stalled, draining, unknown]) {
      expect(fanoutKeep(load)).toBe(1);
      expect(p.shed(100, load, 1)).toBe(0);
    }
    expect(p.ceiling).toBe(Infinity);
    expect(log).toEqual([]);
    // A noisy quarter never cuts more than half.
    expect(fanoutKeep({ pace: 0.05, fanoutShare: 1, deliveryLagMs: 5000, limitMs: 100 })).toBe(0.5);
  });

  it('takes no cut while clients leave on their own (the lags still show the load they took away)', () => {
    const log: string[] = [];
    const p = new Probation(10_000, 5000);
    for (let i = 0; i < 100; i++) p.admitted(client(`c${i}`, log), 0);
    p.calm(false, 900); // the verdict before: 900 held
    expect(p.shed(300, overload, 1)).toBe(0); // a close storm: 900 -> 300 while the backlog drains
    expect(p.ceiling).toBe(Infinity);
    expect(p.shed(295, overload, 1001)).toBeGreaterThan(0); // steady (within 5%) and still behind: cut
    expect(p.ceiling).toBe(Math.floor(295 * fanoutKeep(overload)));
  });

  it('stops admissions at the ceiling a cut set, and probes upward only while calm at it', () => {
    const log: string[] = [];
    const p = new Probation(10_000, 5000);
    for (let i = 0; i < 100; i++) p.admitted(client(`c${i}`, log), 0);
    expect(p.ceiling).toBe(Infinity);
    const behind = { pace: 0.85, fanoutShare: 0.9, deliveryLagMs: 150, limitMs: 100 }; // keep 0.85 / 1.1
    expect(p.shed(100, behind, 1)).toBe(23);
    expect(p.ceiling).toBe(77);
    p.calm(true, 60); // below the ceiling: nothing to learn
    expect(p.ceiling).toBe(77);
    p.calm(false, 77); // at it but not calm
    expect(p.ceiling).toBe(77);
    p.calm(true, 77);
    expect(p.ceiling).toBe(78);
    const gate = new AdmissionGate(() => {}, () => 1e9);
    gate.onGrant({ t: 'grant', issued: 1000, relay: 0, gen: 1, canRelay: false, full: false, multi: false, refuse: null, draining: false });
    gate.ceiling = 2;
    expect(gate.admit()).toBe(true);
    expect(gate.admit()).toBe(true);
    expect(gate.refusal()).toBe('saturated');
    gate.release();
    expect(gate.refusal()).toBeNull();
  });

  it('holds nobody when off', () => {
    const log: string[] = [];
    const p = new Probation(0, 5000);
    p.admitted(client('a', log), 0);
    expect(p.size(0)).toBe(0);
    expect(p.shed(100, overload, 0)).toBe(0);
    expect(log).toEqual([]);
    expect(p.ceiling).toBe(Infinity);
  });
});
