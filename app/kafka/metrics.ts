// The consumer pool's Prometheus metrics, registered on the registry the server hands in.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { REJECT_REASONS, type RejectReason } from './record-mapper.js';

export interface KafkaMetrics {
  records: Counter;
  rejected: Counter<'reason'>;
  batchSize: Histogram;
  lag: Gauge<'topic' | 'partition'>;
  connected: Gauge;
  paused: Gauge;
  pauses: Counter;
}

export function createKafkaMetrics(
  registry: Registry,
  /** partitionLag: records behind per `${topic}/${partition}` key, as of the last fetch. */
  sample: { partitionLag(): ReadonlyMap<string, number>; connected(): boolean },
): KafkaMetrics {
  const registers = [registry];
  const rejected = new Counter({
    name: 'odin_ws_kafka_records_rejected_total',
    help: 'Kafka records skipped because they cannot become a message, by reason',
    labelNames: ['reason'],
    registers,
  });
  // Every reason shows from the start, so a rate() over it works before the first bad record.
  for (const reason of REJECT_REASONS) rejected.inc({ reason } satisfies { reason: RejectReason }, 0);
  return {
    records: new Counter({
      name: 'odin_ws_kafka_records_total',
      help: 'Kafka records handed to the broadcast bus',
      registers,
    }),
    rejected,
    batchSize: new Histogram({
      name: 'odin_ws_kafka_batch_size',
      help: 'Messages per micro-batch handed to the broadcast bus',
      buckets: [1, 2, 5, 10, 20, 30, 40, 50, 100, 200, 500],
      registers,
    }),
    lag: new Gauge({
      name: 'odin_ws_kafka_consumer_lag',
      help: 'Records behind the high watermark per assigned topic and partition, as of the last fetch (sum() for the total)',
      labelNames: ['topic', 'partition'],
      registers,
      collect() {
        // Reset first: a partition that moved to another group member must not keep its last lag.
        this.reset();
        for (const [key, lag] of sample.partitionLag()) {
          const cut = key.lastIndexOf('/'); // topic names cannot contain '/'
          this.set({ topic: key.slice(0, cut), partition: key.slice(cut + 1) }, lag);
        }
      },
    }),
    paused: new Gauge({ name: 'odin_ws_kafka_paused', help: '1 while fetching is paused because the shards are behind (bus congested)', registers }),
    pauses: new Counter({ name: 'odin_ws_kafka_pauses_total', help: 'Times fetching was paused because the shards were behind', registers }),
    connected: new Gauge({
      name: 'odin_ws_kafka_connected',
      help: '1 while the consumer is in its group and fetching from the broker',
      registers,
      collect() {
        this.set(sample.connected() ? 1 : 0);
      },
    }),
  };
}
