// Test doubles that are real objects: a Dispatch that records what the pool hands it, and a pino
// logger whose lines the test can read.
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Dispatch, SourceMessage } from '../../app/common/contracts.js';
import type { KafkaConfig } from '../../app/kafka/config.js';
import { KafkaConsumerPool } from '../../app/kafka/consumer-pool.js';

export class RecordingDispatch implements Dispatch {
  readonly batches: SourceMessage[][] = [];
  /** Throw for the first `refuse` batches (a bus that does not accept them). */
  constructor(private refuse = 0) {}
  dispatch(batch: readonly SourceMessage[]): void {
    if (this.refuse > 0) {
      this.refuse--;
      throw new Error('bus refused the batch');
    }
    this.batches.push([...batch]);
  }
  get messages(): SourceMessage[] {
    return this.batches.flat();
  }
}

export function memoryLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

export function poolConfig(brokers: string, prefix: string, over: Partial<KafkaConfig> = {}): KafkaConfig {
  return {
    brokers: [brokers],
    topics: [`${prefix}.trades`, `${prefix}.prices`],
    group: `${prefix}-group`,
    batchSize: 50,
    batchTimeoutMs: 10,
    maxRecordBytes: 65_536,
    fromBeginning: true,
    streams: ['trades', 'prices'],
    ...over,
  };
}

export function makePool(config: KafkaConfig, dispatch: Dispatch = new RecordingDispatch()) {
  const { logger, lines } = memoryLogger();
  const registry = new Registry();
  const pool = new KafkaConsumerPool(config, dispatch, logger, registry);
  return { pool, registry, lines };
}

/** The value of one sample of a metric (histogram samples by their `_count`/`_sum` names), by labels. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  for (const m of await registry.getMetricsAsJSON()) {
    const values = m.values as Array<{ labels: Record<string, unknown>; value: number; metricName?: string }>;
    const v = values.find((s) => (s.metricName ?? m.name) === name && Object.entries(labels).every(([k, val]) => s.labels[k] === val));
    if (v) return v.value;
  }
  return undefined;
}
