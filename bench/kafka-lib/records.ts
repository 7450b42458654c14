// The benchmark's records: ~200-byte JSON values keyed over a fixed set of tokens, spread evenly
// over a topic pair (<prefix>.trades, <prefix>.prices), built from the publisher's market model so
// they look like what the real publisher sends (each value carries its per-channel seq and ts).
import { Kafka, logLevel, Partitioners, type Message, type Producer } from 'kafkajs';
import { Market, type Stream } from '../../app/publisher/market.js';

export const tokenNames = (n: number) => Array.from({ length: n }, (_, i) => `BK${i + 1}`);

export function kafkaClient(brokers: string, clientId: string) {
  return new Kafka({ clientId, brokers: [brokers], logLevel: logLevel.ERROR });
}

/** Record i of a sequence: streams alternate, tokens rotate, so every channel gets the same rate. */
export class RecordSource {
  private readonly market: Market;
  private i = 0;

  constructor(
    private readonly topics: { trades: string; prices: string },
    private readonly tokens: readonly string[],
    private readonly valueBytes: number,
  ) {
    this.market = new Market(tokens);
  }

  /** The next `n` records, grouped by topic, stamped `now` (record timestamp and value ts). */
  next(n: number, now: number): Array<{ topic: string; messages: Message[] }> {
    const by: Record<Stream, Message[]> = { trades: [], prices: [] };
    const ts = String(now);
    for (let k = 0; k < n; k++, this.i++) {
      const stream: Stream = this.i % 2 === 0 ? 'trades' : 'prices';
      const token = this.tokens[Math.floor(this.i / 2) % this.tokens.length];
      by[stream].push({ key: token, value: this.value(stream, token, now), timestamp: ts });
    }
    return (['trades', 'prices'] as const).filter((s) => by[s].length).map((s) => ({ topic: this.topics[s], messages: by[s] }));
  }

  private value(stream: Stream, token: string, now: number): string {
    const v = this.market.next(stream, token, now);
    const base = JSON.stringify({ ...v, pad: '' });
    return JSON.stringify({ ...v, pad: 'x'.repeat(Math.max(0, this.valueBytes - base.length)) });
  }
}

export async function connectProducer(brokers: string, clientId: string): Promise<Producer> {
  const producer = kafkaClient(brokers, clientId).producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  return producer;
}

/**
 * Produces `total` records as fast as one kafkajs producer goes (batches of `batch`, a few in
 * flight, acks from all replicas) and returns the rate it reached: the producer's ceiling here.
 */
export async function preload(o: { brokers: string; source: RecordSource; total: number; batch?: number; inFlight?: number; deadlineMs: number }) {
  const batch = o.batch ?? 2000;
  const inFlight = o.inFlight ?? 4;
  const producer = await connectProducer(o.brokers, 'odin-bench-preload');
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  let queued = 0;
  try {
    const running = new Set<Promise<unknown>>();
    while (queued < o.total) {
      if (Date.now() - t0 > o.deadlineMs) throw new Error(`preload of ${o.total} records not done within ${o.deadlineMs} ms (${queued} queued)`);
      const n = Math.min(batch, o.total - queued);
      queued += n;
      const p = producer.sendBatch({ acks: -1, topicMessages: o.source.next(n, Date.now()) });
      running.add(p);
      void p.finally(() => running.delete(p)).catch(() => {});
      if (running.size >= inFlight) await Promise.race(running);
    }
    await Promise.all(running);
  } finally {
    await producer.disconnect();
  }
  const seconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { records: o.total, seconds, records_per_s: Math.round(o.total / seconds), producer_cpu_s: (cpu.user + cpu.system) / 1e6 };
}
