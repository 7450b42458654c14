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
  const gates = Array.from({ length: shards }, (_, i) => new AdmissionGate((m) => up[i].push(m), () => 1e9));
  for (let i = 0; i < shards; i++) ledger.up(i);
  const grant = () =>
    ledger.grants().forEach((g, i) => down[i].push({ t: 'grant', ...g, refuse: null, draining: false }));
  grant();
  let maxHeld = 0;
  for (const op of ops) {
    const i = op.shard % shards;
    switch (op.kind % 6) {
      case 0: // a client connects to shard i: relayed (through the front) or served here
        if (gates[i].shouldRelay()) {
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
          gates[i].flushForTest();
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

  it('once messages settle, every free slot can be admitted', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 40 }), (shards, max) => {
        const sim = simulate(shards, max, []);
        // deliver everything a few rounds, then fill: exactly `max` admissions succeed in all.
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < shards; i++) {
            for (const g of sim.down[i].splice(0)) sim.gates[i].onGrant(g);
            sim.gates[i].flushForTest();
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
});
