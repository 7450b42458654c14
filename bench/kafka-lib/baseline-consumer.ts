// The K1 baseline: a plain kafkajs consumer with default settings (eachMessage, a fresh group,
// from the beginning) that only counts, in this process, timed from its first record to its Nth.
import { kafkaClient } from './records.js';

export async function baselineConsume(o: { brokers: string; topics: string[]; group: string; total: number; deadlineMs: number }) {
  const consumer = kafkaClient(o.brokers, 'odin-bench-baseline').consumer({ groupId: o.group });
  const t0 = Date.now();
  let count = 0;
  let first = 0;
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: o.topics, fromBeginning: true });
    await consumer.run({
      eachMessage: async () => {
        if (++count === 1) first = Date.now();
        if (count === o.total) {
          done = Date.now();
          finish();
        }
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), o.deadlineMs)));
    const r = await Promise.race([finished, timeout]);
    clearTimeout(timer);
    if (r === 'timeout') throw new Error(`baseline consumer got ${count} of ${o.total} records within ${o.deadlineMs} ms`);
  } finally {
    await consumer.disconnect().catch(() => {});
  }
  const steady = (done - first) / 1000;
  return {
    records: count,
    seconds_first_to_last: Math.round(steady * 1000) / 1000,
    records_per_s: Math.round((o.total - 1) / Math.max(0.001, steady)),
    seconds_incl_join: Math.round((done - t0) / 10) / 100,
    records_per_s_incl_join: Math.round(o.total / ((done - t0) / 1000)),
    first_at: first,
    done_at: done,
  };
}
