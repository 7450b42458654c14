// Builds the bundles once (tests run the real dist/server.mjs, as production does) and starts the
// real Kafka broker unless KAFKA_BROKERS points at one.
import { bundle } from '../scripts/build.mjs';

export default async function setup(): Promise<() => Promise<void>> {
  await bundle();
  const teardowns: Array<() => Promise<void>> = [];
  if (process.env.ODIN_TEST_KAFKA !== '0') {
    const mod = await import('./support/kafka.js').catch(() => null);
    if (mod?.setupKafka) {
      const k = await mod.setupKafka();
      process.env.KAFKA_TEST_BROKERS = k.brokers;
      teardowns.push(k.teardown);
    }
  }
  return async () => {
    for (const t of teardowns) await t();
  };
}
