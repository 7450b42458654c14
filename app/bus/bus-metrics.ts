import { Counter, Histogram, type Registry } from 'prom-client';

export interface BusMetrics {
  batches: Counter;
  messages: Counter;
  batchSize: Histogram;
  latency: Histogram;
}

export function createBusMetrics(registry: Registry): BusMetrics {
  return {
    batches: new Counter({ name: 'odin_ws_bus_batches_total', help: 'Batches flushed by the broadcast bus', registers: [registry] }),
    messages: new Counter({ name: 'odin_ws_bus_messages_total', help: 'Messages accepted by the broadcast bus', registers: [registry] }),
    batchSize: new Histogram({ name: 'odin_ws_bus_batch_size', help: 'Messages per bus batch', buckets: [1, 2, 5, 10, 20, 50, 100, 200], registers: [registry] }),
    latency: new Histogram({
      name: 'odin_ws_bus_latency_seconds',
      help: 'Source timestamp to bus acceptance',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}
