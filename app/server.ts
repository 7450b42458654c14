// odin-ws server entry. The same bundle runs as the front process (default) or, when forked by
// the front with ODIN_ROLE=shard, as one shard.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { BroadcastBus } from './bus/broadcast-bus.js';
import { createBusMetrics } from './bus/bus-metrics.js';
import { RecoveryWindow } from './bus/recovery-window.js';
import type { MessageSource } from './common/contracts.js';
import { EXIT_CONFIG } from './common/errors.js';
import { createLogger, type Logger } from './common/logger.js';
import { parseConfig, type ServerConfig } from './config/config.js';
import { Front } from './front/front.js';
import { ShardPool } from './front/shard-pool.js';
import { runShard } from './shard/shard.js';
import { createSource } from './front/source.js';

async function main(): Promise<void> {
  if (process.env.ODIN_ROLE === 'shard') {
    runShard();
    return;
  }
  const parsed = parseConfig(process.env, process.argv.slice(2));
  if (!parsed.ok) {
    process.stderr.write(`odin-ws: invalid configuration (${parsed.problems.length} problem${parsed.problems.length > 1 ? 's' : ''}):\n`);
    for (const p of parsed.problems) process.stderr.write(`  - ${p}\n`);
    process.exit(EXIT_CONFIG);
  }
  const config = parsed.config;
  const log = createLogger(config.logLevel, { role: 'front' });
  for (const w of parsed.warnings) log.warn(w);
  logAuth(config, log);
  const registry = new Registry();

  const entry = fileURLToPath(import.meta.url);
  const pool = new ShardPool(config, entry, log);
  // The window asks the source how far back it has every record; the source needs the bus first.
  const window = new RecoveryWindow(
    { windowMs: config.recoveryWindowMs, maxMessages: config.recoveryMaxMessages, maxBytes: config.recoveryMaxBytes, maxReplayBytes: config.recoveryMaxReplayBytes },
    { floor: (stream, origin) => source.floor(stream, origin) },
  );
  const bus = new BroadcastBus(
    {
      batchSize: config.busBatchSize,
      flushMs: config.busFlushMs,
      shardBufferBytes: config.busShardBufferBytes,
      channelIdleMs: config.busChannelIdleMs,
      maxChannels: config.busMaxChannels,
    },
    pool,
    log,
    createBusMetrics(registry),
    window,
  );
  const source: MessageSource = createSource(config, bus, log, registry);

  log.info({ mode: config.mode, shards: config.shards }, 'sharded mode enabled');
  bus.start();
  pool.watchStalls((id) => bus.overCapSinceMs(id));
  const front = new Front(config, log, registry, pool, bus, source, window, releaseVersion(entry));
  await front.start();
  await source.start();

  let signalled = false;
  const onSignal = (sig: string) => {
    if (signalled) return;
    signalled = true;
    log.info({ signal: sig }, 'shutdown requested');
    const hard = setTimeout(() => {
      log.error('drain deadline passed; exiting');
      process.exit(1);
    }, config.drainNoticeMs + config.drainTimeoutMs + 2000);
    hard.unref();
    void front.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

/** The deploy writes release.json beside the bundles; a local build has none. */
function releaseVersion(entry: string): string {
  try {
    const v = JSON.parse(fs.readFileSync(path.join(path.dirname(entry), 'release.json'), 'utf8')).version;
    return typeof v === 'string' && v ? v : 'dev';
  } catch {
    return process.env.ODIN_VERSION || 'dev';
  }
}

/** Shards verify tokens (they answer the upgrades); the front only says how auth is set up. */
function logAuth(config: ServerConfig, log: Logger): void {
  if (!config.auth) return;
  const { secrets, requireExp, audience, issuer, clockToleranceS } = config.auth;
  log.info({ secrets: secrets.length, require_exp: requireExp, audience, issuer, clock_tolerance_s: clockToleranceS }, 'auth enabled');
}

main().catch((err) => {
  process.stderr.write(`odin-ws: fatal: ${err?.stack ?? err}\n`);
  process.exit(1);
});
