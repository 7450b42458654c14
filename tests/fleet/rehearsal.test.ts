// The fleet rehearsal of the fleet issue: 500 clients of the official client stream through
// HAProxy while each of 3 servers is drained (SIGTERM with a drain notice) and restarted in turn,
// then one is SIGKILLed (its whole process group) and restarted. Every client ends connected and
// has every message of its channels exactly once, in order: checked by position against a direct
// Kafka consumer of the same topic (what the publisher produced).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OdinClient } from '../../app/client/index.js';
import { observeTopic, startFleet, type Fleet } from '../../scripts/local-fleet.mjs';
import { testBrokers, uniqueName } from '../support/kafka.js';
import { until } from '../support/server.js';

const CLIENTS = 500;
const TOKENS = ['ODIN1', 'ODIN2', 'ODIN3'];
const FAST = { backoffBaseMs: 100, backoffMaxMs: 1000, connectTimeoutMs: 5000, ackTimeoutMs: 10_000 };

interface Tracked {
  client: OdinClient;
  channels: string[];
  /** Positions delivered to the application, per channel, in order. */
  got: Map<string, string[]>;
  gaps: number;
  recovered: number;
  total: number;
  /** What happened, in order (for the report when a check fails). */
  events: string[];
}

let fleet: Fleet;
let dir: string;
let observer: Awaited<ReturnType<typeof observeTopic>> | undefined;
/** What the broker holds, per channel, in offset order (a channel's records share a partition). */
let truth = new Map<string, string[]>();
const tracked: Tracked[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-fleet-'));
  const topic = `${uniqueName('rehearsal')}.trades`;
  fleet = await startFleet({
    dir,
    port: 0,
    brokers: testBrokers(),
    topics: [topic],
    noticeMs: 2000,
    drainTimeoutMs: 5000,
    rate: 15,
    tokens: TOKENS.length,
    nodeExtraEnv: { WS_RECONNECT_WINDOW_MS: '2000' },
  });
  observer = await observeTopic({ brokers: fleet.brokers, topic, clientId: 'fleet-observer', groupId: uniqueName('observer') });
  truth = observer.truth;
}, 180_000);

afterAll(async () => {
  for (const t of tracked) t.client.close();
  await observer?.stop();
  await fleet?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function track(i: number): Tracked {
  // Two channels each, so every channel has many clients and clients differ.
  const channels = [`trades:${TOKENS[i % 3]}`, `trades:${TOKENS[(i + 1) % 3]}`];
  const t: Tracked = { client: new OdinClient({ url: fleet.url, ...FAST }), channels, got: new Map(channels.map((c) => [c, []])), gaps: 0, recovered: 0, total: 0, events: [] };
  const ev = (s: string) => t.events.length < 5000 && t.events.push(`${Date.now() % 1_000_000} ${s}`);
  t.client.on('message', (m) => {
    t.got.get(m.channel)?.push(m.pos ?? '(none)');
    t.total++;
    ev(`msg ${m.channel} ${m.pos}${m.replayed ? ' replayed' : ''} seq=${m.seq} epoch=${m.epoch}`);
  });
  t.client.on('gap', (g) => {
    t.gaps++;
    ev(`gap ${JSON.stringify(g)}`);
  });
  t.client.on('recovered', (r) => {
    t.recovered++;
    ev(`recovered ${JSON.stringify(r)}`);
  });
  t.client.on('state', (s) => ev(`state ${JSON.stringify(s)}`));
  tracked.push(t);
  return t;
}

/** Every client open and every one received something since `marks` (so it resubscribed). */
async function allStreaming(what: string) {
  const marks = tracked.map((t) => t.total);
  await until(() => tracked.every((t, i) => t.client.state === 'open' && t.total > marks[i]), what, 60_000, 200);
}

async function allUp(what: string) {
  await until(async () => [...(await fleet.status()).values()].every((s) => s === 'UP'), what, 30_000, 200);
}

describe('fleet rehearsal', () => {
  it('500 official clients survive a rolling restart and a node kill with every message exactly once, in order', async () => {
    for (let i = 0; i < CLIENTS; i += 100) {
      const batch = Array.from({ length: Math.min(100, CLIENTS - i) }, (_, j) => track(i + j));
      await Promise.all(batch.map((t) => t.client.connect().subscribe(t.channels)));
    }
    await allStreaming('every client streaming through the balancer');

    for (const n of fleet.nodes) {
      expect(await fleet.signal(n.name, 'SIGTERM')).toBe(0);
      await fleet.start(n.name);
      await allUp(`HAProxy sees ${n.name} back`);
      await allStreaming(`every client streaming after ${n.name} was drained`);
    }
    const victim = fleet.nodes[1].name;
    expect(await fleet.signal(victim, 'SIGKILL')).toBe('SIGKILL');
    await fleet.start(victim);
    await allUp(`HAProxy sees ${victim} back after the kill`);
    await allStreaming(`every client streaming after ${victim} was killed`);

    // Stop the source, then compare what each client got with what the broker holds.
    process.kill(fleet.publisher!.pid, 'SIGTERM');
    await until(async () => {
      const before = [...truth.values()].reduce((a, l) => a + l.length, 0);
      await new Promise((r) => setTimeout(r, 1000));
      return before === [...truth.values()].reduce((a, l) => a + l.length, 0) && before > 0;
    }, 'the observer has every record', 30_000);
    const lastOf = (ch: string) => truth.get(ch)!.at(-1);
    await until(() => tracked.every((t) => t.channels.every((c) => t.got.get(c)!.at(-1) === lastOf(c))), 'every client has the last record of its channels', 30_000, 200);

    let bad = 0;
    for (const t of tracked) {
      for (const c of t.channels) {
        const got = t.got.get(c)!;
        const all = truth.get(c)!;
        const from = all.indexOf(got[0]);
        const ok = from >= 0 && got.length === all.length - from && got.every((p, k) => p === all[from + k]);
        if (!ok && bad++ < 3) {
          expect.soft(got, `client ${tracked.indexOf(t)} ${c}`).toEqual(all.slice(Math.max(0, from)));
          if (process.env.ODIN_FLEET_DIAG) fs.appendFileSync(process.env.ODIN_FLEET_DIAG, `client ${tracked.indexOf(t)} ${c}\n${t.events.join('\n')}\n\n`);
        }
      }
    }
    expect(bad).toBe(0);
    expect(tracked.every((t) => t.client.state === 'open')).toBe(true);
    expect(tracked.filter((t) => t.gaps > 0)).toHaveLength(0);
    // Every client was moved at least once (each node was drained), so every one recovered.
    expect(tracked.every((t) => t.client.stats.reconnects >= 1)).toBe(true);
    const sum = (f: (t: Tracked) => number) => tracked.reduce((a, t) => a + f(t), 0);
    const figures = {
      clients: CLIENTS,
      records: [...truth.values()].reduce((a, l) => a + l.length, 0),
      delivered: sum((t) => t.total),
      reconnects: sum((t) => t.client.stats.reconnects),
      recoveries: sum((t) => t.recovered),
      replayed: sum((t) => t.client.stats.replayed),
      duplicates_dropped_by_client: sum((t) => t.client.stats.duplicates),
      gaps: sum((t) => t.gaps),
    };
    process.stdout.write(`fleet rehearsal: ${JSON.stringify(figures)}\n`);
    expect(figures.recoveries).toBeGreaterThan(0);
  }, 300_000);
});
