// Continuity end to end with the official client: records stream over Kafka while the server is
// restarted (SIGTERM) three times and the client is moved to another server; every client ends
// with every record of its channels exactly once, in order.
import { afterAll, describe, expect, it } from 'vitest';
import { createTopics, produce, testBrokers, uniqueName } from '../support/kafka.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { byChannel, recordedClient, type Recorded } from './support.js';

const tokens = ['AAA', 'BBB', 'CCC', 'DDD'];
const FAST = { backoffBaseMs: 50, backoffMaxMs: 300, connectTimeoutMs: 3000, ackTimeoutMs: 15_000, pingIntervalMs: 1000, pongTimeoutMs: 5000 };

describe('official client: recovery over Kafka', () => {
  const brokers = testBrokers();
  const prefix = uniqueName('client-rec');
  const servers: RunningServer[] = [];
  const clients: Recorded[] = [];
  afterAll(async () => {
    for (const c of clients) c.client.close();
    for (const s of servers) await s.stop();
  });

  async function kafkaServer(group: string, args: string[] = []) {
    const s = await startServer({
      env: {
        WS_SHARDS: '2',
        KAFKA_BROKERS: brokers,
        KAFKA_TOPICS: `${prefix}.trades,${prefix}.prices`,
        KAFKA_CONSUMER_GROUP: group,
        KAFKA_FROM_BEGINNING: 'false', // (true reads all, without the seek-back that rebuilds the window)
        WS_RECONNECT_WINDOW_MS: '300',
      },
      args,
    });
    servers.push(s);
    await until(async () => (await getHealth(s.healthUrl)).body.kafka?.connected === true, 'kafka connected', 60_000);
    return s;
  }

  let sent = 0;
  async function publish(n: number) {
    const recs = Array.from({ length: n }, () => {
      const k = sent++;
      const token = tokens[k % tokens.length];
      return { key: token, value: JSON.stringify({ n: k, token }), timestamp: String(Date.now()) };
    });
    await produce(brokers, `${prefix}.trades`, recs);
  }

  it('loses and duplicates nothing through three SIGTERM restarts and a move to another server', async () => {
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`] });
    const group = uniqueName('g');
    let current = await kafkaServer(group);
    const port = current.port;
    let target = current.wsUrl;
    const specs = [['trades:*'], ['trades:AAA', 'trades:BBB'], ['trades:CCC']];
    for (const channels of specs) {
      const c = recordedClient({ url: () => target, ...FAST });
      clients.push(c);
      c.client.connect();
      await c.client.subscribe(channels);
    }
    await publish(200);
    const expectedOf = (c: Recorded, spec: string[]) =>
      sent * (spec.includes('trades:*') ? 1 : spec.length / tokens.length);
    const caughtUp = () => clients.every((c, i) => c.messages.length >= expectedOf(c, specs[i]));
    await until(caughtUp, 'first records on every client', 60_000);

    for (let restart = 0; restart < 3; restart++) {
      const publishing = publish(100);
      await current.stop();
      // Records keep coming while no server runs: the next one seeks back and replays them.
      await publishing;
      await publish(100);
      current = await kafkaServer(group, ['--lb-addr', `127.0.0.1:${port}`]);
      await publish(100);
      await until(caughtUp, `every record on every client after restart ${restart + 1}`, 60_000);
    }

    // Moved: a second server (its own group: it reads every partition) on another port. Whether
    // a restart's records come back as a replay or live depends on how fast the new consumer joins;
    // here the clients are held off (the old address refuses) while records are published, and
    // pointed at the new server only once it has them, so they must come back as a replay.
    const other = await kafkaServer(uniqueName('g2'));
    await publish(100);
    await until(caughtUp, 'every record before the move', 60_000);
    await current.stop();
    const had = (await getHealth(other.healthUrl)).body.kafka.records_total as number;
    await publish(100);
    await until(async () => (await getHealth(other.healthUrl)).body.kafka.records_total >= had + 100, 'the new server has what the clients missed', 60_000);
    target = other.wsUrl;
    await until(caughtUp, 'every record after the move', 60_000);

    for (const [i, c] of clients.entries()) {
      const want = new Map<string, number[]>();
      for (let k = 0; k < sent; k++) {
        const ch = `trades:${tokens[k % tokens.length]}`;
        if (specs[i].includes('trades:*') || specs[i].includes(ch)) want.set(ch, [...(want.get(ch) ?? []), k]);
      }
      const got = new Map([...byChannel(c.messages)].map(([ch, ms]) => [ch, ms.map((m) => (m.data as { n: number }).n)]));
      expect(Object.fromEntries([...got].sort()), `client ${i}`).toEqual(Object.fromEntries([...want].sort()));
      expect(c.gaps, `client ${i}`).toEqual([]);
      expect(c.client.stats.reconnects).toBe(4);
      expect(c.recovered.length).toBeGreaterThan(0);
      expect(c.messages.some((m) => m.replayed)).toBe(true);
    }
  }, 300_000);
});
