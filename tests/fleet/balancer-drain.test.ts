// The fleet rehearsal's balancer (HAProxy in TCP mode, health-checking /health) against a node
// draining with WS_DRAIN_NOTICE_MS: the balancer takes the node out of rotation while the node
// still serves its clients, so new connections land elsewhere and only then are its clients
// closed with 1001.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Fleet } from '../../scripts/local-fleet.mjs';
import { TestClient } from '../support/client.js';
import { testBrokers, uniqueName } from '../support/kafka.js';
import { until } from '../support/server.js';

let fleet: Fleet;
let dir: string;
const clients: TestClient[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-fleet-'));
  fleet = await startFleet({ dir, port: 0, brokers: testBrokers(), topics: [`${uniqueName('fleet')}.trades`], noticeMs: 5000, rate: 20, tokens: 2 });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await fleet?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function nodeHealth(name: string) {
  const r = await fetch(fleet.nodeUrl(name), { signal: AbortSignal.timeout(3000) });
  return (await r.json()) as { system: { total_connections: number; rejected_by_reason: Record<string, number> } };
}

async function connectAll(n: number): Promise<TestClient[]> {
  const cs = await Promise.all(Array.from({ length: n }, () => TestClient.connect(fleet.url)));
  for (const c of cs) await c.subscribe(['trades:*']);
  clients.push(...cs);
  return cs;
}

describe('HAProxy in front of draining nodes', () => {
  it('stops routing to a draining node before that node closes its clients', async () => {
    const first = await connectAll(30);
    await until(() => first.every((c) => c.messages.length > 0), 'every client streaming through the balancer');
    const counts = new Map<string, number>();
    for (const n of fleet.nodes) counts.set(n.name, (await nodeHealth(n.name)).system.total_connections);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(30);
    const victim = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
    const others = fleet.nodes.map((n) => n.name).filter((n) => n !== victim);
    const refusedBefore = (await nodeHealth(victim)).system.rejected_by_reason.draining ?? 0;

    const exited = fleet.signal(victim, 'SIGTERM');
    await until(async () => (await fleet.status()).get(victim) === 'DOWN', `HAProxy marks ${victim} DOWN`, 20_000);
    // The balancer has given up on the node, and the node has not closed anyone yet.
    expect(first.filter((c) => c.closeCode !== null)).toHaveLength(0);
    const marks = first.map((c) => c.messages.length);

    const second = await connectAll(30);
    expect(first.filter((c) => c.closeCode !== null)).toHaveLength(0);
    const victimNow = (await nodeHealth(victim)).system;
    expect(victimNow.total_connections).toBe(counts.get(victim));
    expect(victimNow.rejected_by_reason.draining ?? 0).toBe(refusedBefore);
    let elsewhere = 0;
    for (const n of others) elsewhere += (await nodeHealth(n)).system.total_connections;
    expect(elsewhere).toBe(30 - counts.get(victim)! + 30);
    await until(() => second.every((c) => c.messages.length > 0), 'new clients streaming from the other nodes');

    // The draining node's clients were still served, then closed with 1001; nobody else was.
    expect(await exited).toBe(0);
    const closed = first.filter((c) => c.closeCode !== null);
    expect(closed).toHaveLength(counts.get(victim)!);
    for (const c of closed) expect(c.closeCode).toBe(1001);
    for (const c of closed) expect(c.messages.length).toBeGreaterThan(marks[first.indexOf(c)]);
    expect(second.every((c) => c.closeCode === null)).toBe(true);
  });
});
