// Picks the message source: Kafka when KAFKA_BROKERS is set, else the embedded feed.
import type { Registry } from 'prom-client';
import type { Dispatch, MessageSource } from '../common/contracts.js';
import type { Logger } from '../common/logger.js';
import type { ServerConfig } from '../config/config.js';
import { EmbeddedFeed } from '../feed/embedded-feed.js';

export type SourceResult = { ok: true; source: MessageSource } | { ok: false; problems: string[] };

export async function createSource(config: ServerConfig, sink: Dispatch, log: Logger, _registry: Registry): Promise<SourceResult> {
  if (config.kafkaEnv) {
    return { ok: false, problems: ['KAFKA_BROKERS: the Kafka source is not wired yet'] };
  }
  const feed = new EmbeddedFeed(
    { tokens: config.feedTokens, streams: config.feedStreams, rate: config.feedRate, payloadBytes: config.feedPayloadBytes },
    sink,
    log.child({ part: 'feed' }),
  );
  return { ok: true, source: feed };
}
