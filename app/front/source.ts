// Picks the message source: Kafka when KAFKA_BROKERS is set, else the embedded feed.
import type { Registry } from 'prom-client';
import type { Dispatch, MessageSource } from '../common/contracts.js';
import type { Logger } from '../common/logger.js';
import type { ServerConfig } from '../config/config.js';
import { EmbeddedFeed } from '../feed/embedded-feed.js';
import { KafkaConsumerPool } from '../kafka/consumer-pool.js';

export function createSource(config: ServerConfig, sink: Dispatch, log: Logger, registry: Registry): MessageSource {
  if (config.kafka) return new KafkaConsumerPool(config.kafka, sink, log, registry, { seekBackMs: config.recoveryWindowMs });
  return new EmbeddedFeed(
    { tokens: config.feedTokens, streams: config.feedStreams, rate: config.feedRate, payloadBytes: config.feedPayloadBytes },
    sink,
    log.child({ part: 'feed' }),
  );
}
