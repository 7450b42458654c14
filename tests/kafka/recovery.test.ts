// The pool survives the broker going away and its own restarts, and delivers at-least-once.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaConsumerPool } from '../../app/kafka/consumer-pool.js';
import { createTopics, produce, startPrivateBroker, testBrokers, uniqueName, waitFor } from '../support/kafka.js';
import { makePool, poolConfig, RecordingDispatch } from './helpers.js';

const running: KafkaConsumerPool[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.stop();
});

const records = (from: number, to: number, token = 'ODIN7') =>
  Array.from({ length: to - from }, (_, i) => ({ key: token, value: JSON.stringify({ seq: from + i }) }));
const seqs = (d: RecordingDispatch) => d.messages.map((m) => (JSON.parse(m.data) as { seq: number }).seq);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('kafka consumer pool across restarts', () => {
  it('resumes after the committed offset when the pool restarts between two batches', async () => {
    const brokers = testBrokers();
    const prefix = uniqueName('resume');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`], partitions: 1 });
    const config = poolConfig(brokers, prefix);

    await produce(brokers, `${prefix}.trades`, records(0, 120));
    const first = new RecordingDispatch();
    const a = makePool(config, first).pool;
    await a.start();
    await waitFor(() => first.messages.length >= 120, 'first batch');
    await a.stop();
    expect(seqs(first)).toEqual(range(0, 120));

    await produce(brokers, `${prefix}.trades`, records(120, 200));
    const second = new RecordingDispatch();
    const b = makePool(config, second).pool;
    running.push(b);
    await b.start();
    await waitFor(() => second.messages.length >= 80, 'second batch');
    // A clean stop commits what was dispatched: the new pool starts exactly after it.
    expect(seqs(second)).toEqual(range(120, 200));
  });

  it('re-delivers a batch the bus refused instead of committing past it (at-least-once)', async () => {
    const brokers = testBrokers();
    const prefix = uniqueName('refuse');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`], partitions: 1 });
    await produce(brokers, `${prefix}.trades`, records(0, 30));
    const dispatch = new RecordingDispatch(1); // throws for the first batch
    const { pool } = makePool(poolConfig(brokers, prefix), dispatch);
    running.push(pool);
    await pool.start();
    await waitFor(() => new Set(seqs(dispatch)).size >= 30, 'all records after the refusal');
    expect([...new Set(seqs(dispatch))].sort((x, y) => x - y)).toEqual(range(0, 30));
    expect(pool.health().connected).toBe(true);
  });

  describe('with a broker that stops and comes back', () => {
    let broker: Awaited<ReturnType<typeof startPrivateBroker>>;
    beforeAll(async () => {
      broker = await startPrivateBroker();
    });
    afterAll(async () => {
      await broker?.teardown();
    });

    it('reports disconnected, reconnects by itself and receives what is published after the restart', async () => {
      const prefix = uniqueName('outage');
      await createTopics({ brokers: broker.brokers, topics: [`${prefix}.trades`, `${prefix}.prices`], partitions: 3 });
      const dispatch = new RecordingDispatch();
      const { pool, lines } = makePool(poolConfig(broker.brokers, prefix), dispatch);
      running.push(pool);
      await pool.start();
      await produce(broker.brokers, `${prefix}.trades`, records(0, 50));
      await waitFor(() => dispatch.messages.length >= 50, 'records before the outage');
      expect(pool.health().connected).toBe(true);

      await broker.stop();
      await waitFor(() => pool.health().connected === false, 'health to show the broker gone');
      await broker.start();
      await waitFor(() => pool.health().connected === true, 'reconnect after the broker restart', 90_000);

      await produce(broker.brokers, `${prefix}.trades`, records(50, 150));
      await waitFor(() => new Set(seqs(dispatch)).size >= 150, 'records published after the restart', 60_000);
      // Nothing lost; duplicates would be allowed (at-least-once) but a clean outage has none to replay.
      expect([...new Set(seqs(dispatch))].sort((x, y) => x - y)).toEqual(range(0, 150));
      expect(lines.filter((l) => (l.level as number) >= 50)).toEqual([]); // no error-level lines: the outage is a warning
    });

    it('starts while the broker is down, keeps retrying, and consumes once it is up', async () => {
      const prefix = uniqueName('late');
      await createTopics({ brokers: broker.brokers, topics: [`${prefix}.trades`, `${prefix}.prices`], partitions: 1 });
      await produce(broker.brokers, `${prefix}.prices`, records(0, 20, 'LATE'));
      await broker.stop();
      const dispatch = new RecordingDispatch();
      const { pool, lines } = makePool(poolConfig(broker.brokers, prefix), dispatch);
      running.push(pool);
      await pool.start(); // resolves although nothing answers
      expect(pool.health().connected).toBe(false);
      await waitFor(() => lines.some((l) => l.msg === 'kafka consumer could not start; retrying'), 'a failed first attempt', 90_000);
      await broker.start();
      await waitFor(() => dispatch.messages.length >= 20, 'records once the broker is up', 90_000);
      expect(seqs(dispatch)).toEqual(range(0, 20));
      expect(pool.health().connected).toBe(true);
    });
  });
});
