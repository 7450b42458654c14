import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface BusMetrics {
  batches: Counter;
  messages: Counter;
  batchSize: Histogram;
  latency: Histogram;
  channels: Gauge;
  evictions: Counter;
  pendingBytes: Gauge<'shard'>;
  droppedBytes: Counter<'shard'>;
  droppedMessages: Counter<'shard'>;
  congested: Gauge;
  congestions: Counter;
}

export function createBusMetrics(registry: Registry): BusMetrics {
  const registers = [registry];
  return {
    batches: new Counter({ name: 'odin_ws_bus_batches_total', help: 'Batches flushed by the broadcast bus', registers }),
    messages: new Counter({ name: 'odin_ws_bus_messages_total', help: 'Messages accepted by the broadcast bus', registers }),
    batchSize: new Histogram({ name: 'odin_ws_bus_batch_size', help: 'Messages per bus batch', buckets: [1, 2, 5, 10, 20, 50, 100, 200], registers }),
    latency: new Histogram({
      name: 'odin_ws_bus_latency_seconds',
      help: 'Source timestamp to bus acceptance',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    }),
    // The bus sets collect() on the gauges it samples.
    channels: new Gauge({ name: 'odin_ws_bus_channels', help: 'Channels the bus keeps state for (seq, epoch)', registers }),
    evictions: new Counter({ name: 'odin_ws_bus_channel_evictions_total', help: 'Channel states forgotten (idle, or over WS_BUS_MAX_CHANNELS)', registers }),
    pendingBytes: new Gauge({ name: 'odin_ws_bus_pending_bytes', help: 'Bus output bytes buffered in the front for a shard', labelNames: ['shard'], registers }),
    droppedBytes: new Counter({ name: 'odin_ws_bus_dropped_bytes_total', help: 'Bus output bytes dropped for a shard over WS_BUS_SHARD_BUFFER_BYTES', labelNames: ['shard'], registers }),
    droppedMessages: new Counter({ name: 'odin_ws_bus_dropped_messages_total', help: 'Bus messages dropped for a shard over WS_BUS_SHARD_BUFFER_BYTES', labelNames: ['shard'], registers }),
    congested: new Gauge({ name: 'odin_ws_bus_congested', help: '1 while most shards are behind and the Kafka source is paused', registers }),
    congestions: new Counter({ name: 'odin_ws_bus_congestions_total', help: 'Times the bus became congested (source paused)', registers }),
  };
}
