// A bus wired to in-process targets that decode what they are sent, as a shard does.
import { Registry } from 'prom-client';
import { RecoveryWindow } from '../../../app/bus/recovery-window.js';
import { BroadcastBus, type BusOptions, type BusTarget } from '../../../app/bus/broadcast-bus.js';
import { createBusMetrics } from '../../../app/bus/bus-metrics.js';
import { BatchDecoder } from '../../../app/common/ipc.js';
import { createLogger } from '../../../app/common/logger.js';
import type { SourceMessage } from '../../../app/common/contracts.js';

export interface Received {
  channel: string;
  epoch: string;
  seq: number;
}

/** Receives like a shard: decodes each batch; `keep` false only counts (for the memory test). */
export class TestTarget implements BusTarget {
  incarnation = 1;
  pendingBytes = 0;
  readonly exact = new Set<string>();
  readonly wild = new Set<string>();
  readonly got: Received[] = [];
  received = 0;
  batches = 0;
  private readonly decoder = new BatchDecoder();

  constructor(
    readonly id: number,
    private readonly keep = true,
  ) {}

  wants(channel: string, wildcard: string): boolean {
    return this.exact.has(channel) || this.wild.has(wildcard);
  }

  wantsExact(channel: string): boolean {
    return this.exact.has(channel);
  }

  write(batch: Buffer): void {
    this.batches++;
    this.decoder.push(batch, (msgs) => {
      this.received += msgs.length;
      if (!this.keep) return;
      for (const m of msgs) {
        const o = JSON.parse(m.payload.toString()) as Received;
        this.got.push({ channel: o.channel, epoch: o.epoch, seq: o.seq });
      }
    });
  }
}

export const OPTS: BusOptions = { batchSize: 100, flushMs: 5, channelIdleMs: 1000, maxChannels: 1_000_000, shardBufferBytes: 1 << 20 };

/** The recovery window off (windowMs 0) unless a test passes one. */
export const noWindow = () => new RecoveryWindow({ windowMs: 0, maxMessages: 1, maxBytes: 1 << 20, maxReplayBytes: 1 << 20 }, { floor: () => null });

export function makeBus(targets: TestTarget[], opts: Partial<BusOptions> = {}, window: RecoveryWindow = noWindow()): BroadcastBus {
  const bus = new BroadcastBus({ ...OPTS, ...opts }, { forEachTarget: (fn) => targets.forEach(fn) }, createLogger('silent', {}), createBusMetrics(new Registry()), window);
  bus.start();
  return bus;
}

let offset = 0;
export const msg = (stream: string, token: string, ts = Date.now()): SourceMessage => ({ stream, token, ts, data: '{"p":1}', origin: 't', offset: ++offset });
