// The real Kafka broker for the tests (scripts/kafka.mjs runs Apache Kafka from the Maven jars).
// global-setup calls setupKafka() once and exports the address as KAFKA_TEST_BROKERS; a test that
// stops and restarts a broker starts its own with startPrivateBroker(), so the shared one stays up.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel, Partitioners, type Admin, type Message } from 'kafkajs';
import { until } from './server.js';
import { createTopics, defaultTopics, startBroker, waitReady, type Broker } from '../../scripts/kafka.mjs';

export { createTopics };

/** Uses KAFKA_BROKERS when set (e.g. from `npm run kafka:up`), else starts a broker in a temp dir. */
export async function setupKafka(): Promise<{ brokers: string; startMs: number | null; teardown(): Promise<void> }> {
  const external = process.env.KAFKA_BROKERS?.trim();
  if (external) {
    await waitReady({ brokers: external, timeoutMs: 30_000 });
    await createTopics({ brokers: external, topics: defaultTopics });
    return { brokers: external, startMs: null, teardown: async () => {} };
  }
  const broker = await startPrivateBroker({ log: (m) => process.stderr.write(`kafka: ${m}\n`) });
  return { brokers: broker.brokers, startMs: broker.startMs, teardown: broker.teardown };
}

/** A broker of the caller's own (fresh temp dir), for tests that stop and restart it. */
export async function startPrivateBroker(
  opts: { topics?: string[]; log?: (msg: string) => void } = {},
): Promise<Broker & { teardown(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-kafka-'));
  const broker = await startBroker({ dir, topics: opts.topics ?? defaultTopics, log: opts.log });
  return Object.assign(broker, {
    async teardown() {
      await broker.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  });
}

/** The broker global-setup started (or KAFKA_BROKERS); starts nothing itself. */
export function testBrokers(): string {
  const b = process.env.KAFKA_TEST_BROKERS ?? process.env.KAFKA_BROKERS;
  if (!b) throw new Error('no test broker: run through vitest (global-setup starts one) or set KAFKA_BROKERS');
  return b;
}

/** A name no other test run uses, so tests do not see each other's records or groups. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

function client(brokers: string) {
  return new Kafka({ clientId: 'odin-test', brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 3 } });
}

export async function withAdmin<T>(brokers: string, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

/**
 * The group's description once it is Stable (or the last one seen, for the caller to assert on):
 * a group that just formed may still be completing a rebalance, e.g. after a metadata refresh.
 */
export async function describeStableGroup(admin: Admin, groupId: string) {
  let group = (await admin.describeGroups([groupId])).groups[0];
  await waitFor(async () => {
    group = (await admin.describeGroups([groupId])).groups[0];
    return group.state === 'Stable';
  }, `group ${groupId} Stable`).catch(() => undefined);
  return group;
}

/** Sends records in order (one producer, acks from all replicas, idempotent so retries keep order). */
export async function produce(brokers: string, topic: string, messages: Message[]): Promise<void> {
  const producer = client(brokers).producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 500) {
      await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 500) });
    }
  } finally {
    await producer.disconnect();
  }
}

/** Polls until `check` holds or the deadline passes (a bound, not an assertion on time). */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  await until(check, what, timeoutMs);
}
