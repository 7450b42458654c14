// The consumer pool against the real broker, with a Dispatch that records what it is handed.
import { AssignerProtocol } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import type { KafkaConsumerPool } from '../../app/kafka/consumer-pool.js';
import { createTopics, describeStableGroup, produce, testBrokers, uniqueName, waitFor, withAdmin } from '../support/kafka.js';
import { makePool, metricValue, poolConfig, RecordingDispatch } from './helpers.js';

const running: KafkaConsumerPool[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});

function started(...args: Parameters<typeof makePool>) {
  const made = makePool(...args);
  running.push(made.pool);
  return made;
}

describe('kafka consumer pool', () => {
  it('hands every record to dispatch in order per token, with the exact value and timestamp, in batches of at most 50', async () => {
    const brokers = testBrokers();
    const prefix = uniqueName('order');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`], partitions: 3 });
    const tokens = ['ODIN1', 'ODIN2', 'ODIN3', 'ODIN4', 'ODIN5'];
    const sent = new Map<string, Array<{ data: string; ts: number }>>();
    const perTopic: Record<string, Array<{ key: string; value: string; timestamp: string }>> = { trades: [], prices: [] };
    const t0 = Date.now(); // within the broker's retention (see tests/kafka/server-e2e.test.ts)
    const N = 1_000;
    for (let i = 0; i < N; i++) {
      const stream = i % 3 === 0 ? 'prices' : 'trades';
      const token = tokens[i % tokens.length];
      // Irregular spacing: data must be the record's own text, not a re-serialisation.
      const data = i % 2 ? `{"seq":${i},"px": 101.5 ,"t":"${token}"}` : `{ "seq" : ${i}, "nested": {"a":[1,2]} }`;
      const ts = t0 + i;
      perTopic[stream].push({ key: token, value: data, timestamp: String(ts) });
      const k = `${stream}:${token}`;
      if (!sent.has(k)) sent.set(k, []);
      sent.get(k)!.push({ data, ts });
    }
    await produce(brokers, `${prefix}.trades`, perTopic.trades);
    await produce(brokers, `${prefix}.prices`, perTopic.prices);

    const dispatch = new RecordingDispatch();
    const { pool, registry, lines } = started(poolConfig(brokers, prefix), dispatch);
    await pool.start();
    await waitFor(() => dispatch.messages.length >= N, `${N} records dispatched`);

    const got = new Map<string, Array<{ data: string; ts: number }>>();
    for (const m of dispatch.messages) {
      const k = `${m.stream}:${m.token}`;
      if (!got.has(k)) got.set(k, []);
      got.get(k)!.push({ data: m.data, ts: m.ts });
    }
    expect(dispatch.messages).toHaveLength(N);
    expect(got).toEqual(sent);

    const sizes = dispatch.batches.map((b) => b.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(50);
    // A backlog of 1,000 fills whole batches: the batcher groups, it does not pass records one by one.
    expect(sizes.filter((s) => s === 50).length).toBeGreaterThan(0);

    expect(await metricValue(registry, 'odin_ws_kafka_records_total')).toBe(N);
    expect(await metricValue(registry, 'odin_ws_kafka_batch_size_count')).toBe(dispatch.batches.length);
    const health = pool.health();
    expect(health).toMatchObject({ connected: true, group: `${prefix}-group`, records_total: N, rejected_total: 0 });
    expect(health.topics).toEqual([`${prefix}.trades`, `${prefix}.prices`]);
    expect(typeof health.last_message_age_ms).toBe('number');

    expect(lines.find((l) => l.msg === 'shared consumer pool started')).toMatchObject({
      group: `${prefix}-group`,
      topics: [`${prefix}.trades`, `${prefix}.prices`],
    });
    expect(lines.find((l) => l.msg === 'Kafka batching enabled')).toMatchObject({ batch_size: 50, batch_timeout_ms: 10 });
  });

  it('counts and skips malformed records by reason while the good records around them arrive', async () => {
    const brokers = testBrokers();
    const prefix = uniqueName('bad');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`, `${prefix}.candles`], partitions: 1 });
    const good = (i: number) => ({ key: 'GOOD', value: JSON.stringify({ seq: i }) });
    await produce(brokers, `${prefix}.trades`, [
      good(1),
      { key: null, value: '{"seq":-1}' },
      good(2),
      { key: 'GOOD', value: 'not json at all' },
      { key: 'GOOD', value: '[1,2,3]' },
      { key: 'GOOD', value: '"a string"' },
      good(3),
      { key: 'GOOD', value: JSON.stringify({ pad: 'x'.repeat(2_000) }) },
      { key: 'bad key!', value: '{}' },
      { key: 'GOOD', value: null },
      good(4),
    ]);
    // A topic whose stream the server does not serve (the pool is told to read it anyway).
    await produce(brokers, `${prefix}.candles`, [{ key: 'GOOD', value: '{"seq":99}' }]);
    await produce(brokers, `${prefix}.prices`, [good(5)]);

    const dispatch = new RecordingDispatch();
    const config = poolConfig(brokers, prefix, {
      topics: [`${prefix}.trades`, `${prefix}.prices`, `${prefix}.candles`],
      maxRecordBytes: 1_024,
    });
    const { pool, registry, lines } = started(config, dispatch);
    await pool.start();
    await waitFor(() => (pool.health().rejected_total as number) >= 8 && dispatch.messages.length >= 5, 'good and bad records handled');

    expect(dispatch.messages.map((m) => `${m.stream}:${m.data}`).sort()).toEqual(
      [1, 2, 3, 4].map((i) => `trades:{"seq":${i}}`).concat('prices:{"seq":5}').sort(),
    );
    const expected = { no_key: 1, bad_key: 1, not_json: 2, not_object: 2, oversized: 1, unknown_topic: 1 };
    for (const [reason, n] of Object.entries(expected)) {
      expect(await metricValue(registry, 'odin_ws_kafka_records_rejected_total', { reason }), reason).toBe(n);
    }
    expect(pool.health()).toMatchObject({ rejected_total: 8, records_total: 5, rejected: expected });
    expect(lines.some((l) => l.msg === 'kafka record rejected' && l.reason === 'oversized')).toBe(true);
  });

  it('is one consumer group with one member that owns every partition of every topic', async () => {
    const brokers = testBrokers();
    const prefix = uniqueName('group');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`], partitions: 3 });
    const { pool } = started(poolConfig(brokers, prefix));
    await pool.start();
    await waitFor(() => pool.health().connected === true, 'pool connected');

    await withAdmin(brokers, async (admin) => {
      const ours = (await admin.listGroups()).groups.filter((g) => g.groupId.startsWith(prefix));
      expect(ours.map((g) => g.groupId)).toEqual([`${prefix}-group`]);
      const group = await describeStableGroup(admin, `${prefix}-group`);
      expect(group.state).toBe('Stable');
      expect(group.members).toHaveLength(1);
      const assignment = AssignerProtocol.MemberAssignment.decode(group.members[0].memberAssignment);
      const owned = Object.fromEntries(Object.entries(assignment!.assignment).map(([t, ps]) => [t, [...ps].sort()]));
      expect(owned).toEqual({ [`${prefix}.trades`]: [0, 1, 2], [`${prefix}.prices`]: [0, 1, 2] });
    });
  });
});
