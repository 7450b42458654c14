// odin-ws publisher entry: synthetic market data into Kafka, with GET /status on PUBLISHER_PORT.
// Runs on the backend VM next to the broker; `npm run publisher` locally.
import { collectDefaultMetrics, Registry } from 'prom-client';
import { createLogger } from '../common/logger.js';
import { parsePublisherConfig, usage } from './config.js';
import { Publisher } from './publisher.js';
import { startStatusServer } from './status-server.js';

async function main(): Promise<void> {
  const parsed = parsePublisherConfig(process.env, process.argv.slice(2));
  if (!parsed.ok) {
    process.stderr.write(`odin-publisher: invalid configuration:\n${parsed.problems.map((p) => `  - ${p}`).join('\n')}\n${usage()}\n`);
    process.exit(2);
  }
  const config = parsed.config;
  const log = createLogger(config.logLevel, { role: 'publisher' });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  let shuttingDown = false;
  const shutdown = async (reason: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ reason }, 'publisher shutting down');
    const hard = setTimeout(() => process.exit(1), 15_000);
    hard.unref();
    await publisher.stop();
    await server.close();
    process.exit(0);
  };
  const publisher = new Publisher(config, log, registry, () => void shutdown('max records sent'));
  const server = await startStatusServer({ host: config.host, port: config.port, status: () => publisher.status(), registry });
  log.info({ host: config.host, port: server.port }, 'publisher listening');
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  publisher.start();
}

main().catch((err) => {
  process.stderr.write(`odin-publisher: fatal: ${err?.stack ?? err}\n`);
  process.exit(1);
});
