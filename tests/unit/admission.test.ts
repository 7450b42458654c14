// The admission protocol between the front's ledger and the shards' gates, simulated with
// messages delivered late and in random interleavings: the server never holds more than
// WS_MAX_CONNECTIONS, and free capacity is always grantable somewhere.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdmissionLedger } from '../../app/front/admission.js';
import type { FromShard, ToShard } from '../../app/common/ipc.js';
import { AdmissionGate } from '../../app/shard/admission-gate.js';

type Grant = Extract<ToShard, { t: 'grant' }>;

/** One simulated server: N gates, one ledger, two message queues per shard. */
function simulate(shards: number, max: number, ops: Array<{ kind: number; shard: number }>) {
  const ledger = new AdmissionLedger(shards, max);
  const up: FromShard[][] = Array.from({ length: shards }, () => []);
  const down: Grant[][] = Array.from({ length: shards }, () => []);
  const relayed: number[][] = Array.from({ length: shards }, () => []); // relayed connections in flight
  const reserved: boolean[][] = Array.from({ length: shards }, () => []); // accepted, request not yet in
  const gates = Array.from({ length: shards }, (_, i) => new AdmissionGate((m) => up[i].push(m), () => 1e9));
  for (let i = 0; i < shards; i++) ledger.up(i);
  const grant = () =>
    ledger.grants().forEach((g, i) => down[i].push({ t: 'grant', ...g, refuse: null, draining: false }));
  grant();
  let maxHeld = 0;
  for (const op of ops) {
    const i = op.shard % shards;
    switch (op.kind % 8) {
      case 6: // a connection is accepted by shard i, which sets a credit aside if it has one
        reserved[i].push(gates[i].reserve());
        break;
      case 7: // its upgrade request arrives
        {
          const r = reserved[i].shift();
          if (r !== undefined) gates[i].admit(r);
        }
        break;
      case 0: // a client connects to shard i: relayed (through the front) or served here
        if (gates[i].relayCause() !== null) {
          const to = ledger.relayTarget(i);
          relayed[to ?? i].push(1);
        } else gates[i].admit();
        break;
      case 5: // a relayed connection reaches shard i
        if (relayed[i].shift()) gates[i].admit();
        break;
      case 1: // a client of shard i leaves
        if (gates[i].held > 0) gates[i].release();
        break;
      case 2: // shard i's oldest report reaches the front
        {
          const m = up[i].shift();
          if (m && m.t === 'load') ledger.report(i, m);
        }
        break;
      case 3: // the front ticks
        grant();
        break;
      case 4: // shard i gets its oldest grant, then reports (a report is queued at once here)
        {
          const g = down[i].shift();
          if (g) gates[i].onGrant(g);
          gates[i].flush();
        }
        break;
    }
    maxHeld = Math.max(maxHeld, gates.reduce((a, g) => a + g.held, 0));
  }
  return { maxHeld, gates, ledger, up, down, grant };
}

describe('admission ledger', () => {
  it('never admits more than the maximum, whatever the message timing', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.record({ kind: fc.nat(), shard: fc.nat() }), { maxLength: 400 }),
        (shards, max, ops) => {
          expect(simulate(shards, max, ops).maxHeld).toBeLessThanOrEqual(max);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('a reservation does not outlive a grant the front lowered meanwhile', () => {
    // Shard 0 sets its whole share aside, shard 1 fills up, the front moves credits from shard 0
    // to shard 1: the reserved upgrades on shard 0 may no longer all be admitted.
    const kinds = { connect: 0, report: 2, tick: 3, grant: 4, reserve: 6, upgrade: 7 };
    const ops: Array<{ kind: number; shard: number }> = [];
    const op = (kind: number, shard: number, n = 1) => {
      for (let i = 0; i < n; i++) ops.push({ kind, shard });
    };
    op(kinds.grant, 0);
    op(kinds.grant, 1);
    op(kinds.reserve, 0, 20);
    op(kinds.connect, 1, 10);
    for (let round = 0; round < 4; round++) {
      op(kinds.report, 0, 3);
      op(kinds.report, 1, 3);
      op(kinds.tick, 0);
      op(kinds.grant, 0, 3);
      op(kinds.grant, 1, 3);
    }
    op(kinds.upgrade, 0, 20);
    op(kinds.connect, 1, 30);
    expect(simulate(2, 40, ops).maxHeld).toBeLessThanOrEqual(40);
  });

  it('a connection relayed to the last free credit is admitted, even if the front ticks before it arrives', () => {
    const sim = simulate(2, 2, []);
    const settle = () => {
      for (let i = 0; i < 2; i++) {
        for (const g of sim.down[i].splice(0)) sim.gates[i].onGrant(g);
        sim.gates[i].flush();
        for (const m of sim.up[i].splice(0)) if (m.t === 'load') sim.ledger.report(i, m);
      }
      sim.grant();
    };
    settle();
    expect(sim.gates[1].admit()).toBe(true); // shard 1 spends its credit: the last one is on shard 0
    settle();
    settle();
    expect(sim.gates[1].relayCause()).toBe('no_credit');
    expect(sim.ledger.relayTarget(1)).toBe(0);
    sim.grant(); // the front ticks while the connection is on its way to shard 0
    for (const g of sim.down[0].splice(0)) sim.gates[0].onGrant(g);
    expect(sim.gates[0].admit()).toBe(true);
    expect(sim.gates[0].admit()).toBe(false); // and the maximum still holds
  });

  it('relays to a shard with credits even past its in-flight cap, and never beyond its credits', () => {
    const ledger = new AdmissionLedger(2, 1000);
    ledger.up(0);
    ledger.up(1);
    const issued = ledger.grants()[1].issued;
    const targets = Array.from({ length: issued }, () => ledger.relayTarget(0));
    expect(targets.every((t) => t === 1)).toBe(true); // shard 1 has not reported any of them yet
    expect(ledger.relayTarget(0)).toBeNull(); // its credits are all promised to relays in flight
  });

  it('once messages settle, every free slot can be admitted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 40 }), (shards, max) => {
        const sim = simulate(shards, max, []);
        // deliver everything a few rounds, then fill: exactly `max` admissions succeed in all.
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < shards; i++) {
            for (const g of sim.down[i].splice(0)) sim.gates[i].onGrant(g);
            sim.gates[i].flush();
            for (const m of sim.up[i].splice(0)) if (m.t === 'load') sim.ledger.report(i, m);
          }
          sim.grant();
        }
        for (let i = 0; i < shards; i++) for (const g of sim.down[i].splice(0)) sim.gates[i].onGrant(g);
        let admitted = 0;
        for (const g of sim.gates) while (g.admit()) admitted++;
        expect(admitted).toBe(max);
      }),
      { numRuns: 200 },
    );
  });
  describe('balance relays wait for counts that can be trusted', () => {
    // Shard 0 reports 3,000 open, shard 1 1,000: 1,000 over the mean of 2,000 (tolerance 20), a budget of 495.
    function setup(shard1ReportsAt: number) {
      let t = 1000;
      const ledger = new AdmissionLedger(2, 10_000, () => t);
      ledger.up(0);
      ledger.up(1);
      let g = ledger.grants();
      const report = (i: number, open: number) =>
        ledger.report(i, { held: open, open, reserved: 0, consumed: open, issued: g[i].issued, gen: g[i].gen, saturated: false });
      report(0, 1000);
      report(1, 1000);
      g = ledger.grants();
      t = shard1ReportsAt;
      report(1, 1000);
      t = 1020;
      report(0, 3000);
      g = ledger.grants(); // its new grant (more credits) ...
      report(0, 3000); // ... confirmed, so a relay budget may be computed
      return { grants: () => (g = ledger.grants()), at: (ms: number) => (t = ms) };
    }

    it('relays at once when every count is fresh', () => {
      const sim = setup(1020);
      expect(sim.grants()[0].relay).toBe(495);
    });

    it('not while another shard has not reported for a while (it may be descheduled, its connections queued uncounted), unless the excess lasts', () => {
      const sim = setup(1000); // shard 1's count is 20 ms old when shard 0's excess shows
      expect(sim.grants()[0].relay).toBe(0);
      sim.at(1060);
      expect(sim.grants()[0].relay).toBe(0); // 40 ms: still possibly a scheduling blip
      sim.at(1075);
      expect(sim.grants()[0].relay).toBe(495); // 55 ms: the excess is real, corrected anyway
    });
  });
  describe('a shard that refuses as saturated', () => {
    // Three shards: 0 and 1 admit, 2 refuses new upgrades (its loop is behind) and holds fewer.
    function setup(open: [number, number, number], saturated2: boolean) {
      const ledger = new AdmissionLedger(3, 100_000);
      for (let i = 0; i < 3; i++) ledger.up(i);
      let g = ledger.grants();
      const report = () =>
        open.forEach((n, i) => ledger.report(i, { held: n, open: n, reserved: 0, consumed: n, issued: g[i].issued, gen: g[i].gen, saturated: i === 2 && saturated2 }));
      report();
      g = ledger.grants(); // new grants (more credits), confirmed below
      report();
      return ledger;
    }

    it('is reported by its gate: saturated, or at its probation ceiling', () => {
      const sent: FromShard[] = [];
      const gate = new AdmissionGate((m) => sent.push(m), () => 1e9);
      const reported = () => {
        gate.flush();
        const m = sent.at(-1);
        return m?.t === 'load' ? m.saturated : undefined;
      };
      expect(reported()).toBe(false);
      gate.saturated = true;
      expect(reported()).toBe(true);
      gate.saturated = false;
      expect(reported()).toBe(false);
      gate.onGrant({ t: 'grant', issued: 10, relay: 0, gen: 1, canRelay: false, full: false, multi: false, refuse: null, draining: false });
      expect(gate.admit()).toBe(true);
      gate.ceiling = 1;
      expect(reported()).toBe(true);
    });

    it('gets no relays: they would turn a client the others can serve into a refusal', () => {
      expect(setup([1000, 1000, 600], false).relayTarget(0)).toBe(2);
      expect(setup([1000, 1000, 600], true).relayTarget(0)).toBe(1);
    });

    it('is left out of the balance: the others do not relay among themselves for its deficit', () => {
      const relays = (l: AdmissionLedger) => l.grants().map((x) => x.relay);
      expect(relays(setup([1000, 1000, 600], false))).toEqual([65, 65, 0]); // 133 over the mean of 867, tolerance 8: half of the 129 beyond half of it
      expect(relays(setup([1000, 1000, 600], true))).toEqual([0, 0, 0]);
    });
  });
});
