// Run with --expose-gc: 1,000,000 distinct keys through the bus into a wildcard subscriber's decoder,
// then the channels go idle and are evicted. Prints heap + array buffers (MB) at each point.
import { makeBus, TestTarget } from './bus-fixtures.js';
import type { SourceMessage } from '../../../app/common/contracts.js';

const gc = (globalThis as { gc?: () => void }).gc!;
const mb = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return Math.round(((m.heapUsed + m.arrayBuffers) / 1048576) * 10) / 10;
};
const IDLE_MS = 300;
const t = new TestTarget(0, false);
t.wild.add('orders:*');
const bus = makeBus([t], { channelIdleMs: IDLE_MS, maxChannels: 2_000_000 });
// Warm up the code paths, then let that one channel go.
bus.dispatch([{ stream: 'orders', token: 'warm', ts: Date.now(), data: '{}', origin: 't', offset: 0 }]);
bus.flush();
await new Promise((r) => setTimeout(r, IDLE_MS * 3));
const baseline = mb();
const ts = Date.now();
for (let i = 0; i < 1_000_000; i += 1000) {
  const batch: SourceMessage[] = [];
  for (let k = i; k < i + 1000; k++) batch.push({ stream: 'orders', token: `order-${k}`, ts, data: '{"qty":1}', origin: 't', offset: k + 1 });
  bus.dispatch(batch);
  bus.flush();
}
const peakChannels = bus.channelCount;
const peak = mb();
await new Promise((r) => setTimeout(r, IDLE_MS * 4));
const after = mb();
const result = { baseline_mb: baseline, peak_mb: peak, after_mb: after, peak_channels: peakChannels, channels_after: bus.channelCount, evictions: bus.evictions, delivered: t.received };
bus.stop();
process.stdout.write(`${JSON.stringify(result)}\n`);
