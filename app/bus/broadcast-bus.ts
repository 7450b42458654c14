// The broadcast bus: accepts messages from a source, assigns each channel's seq, serialises each
// message ONCE, micro-batches, and writes each batch only to the shards that have a subscriber
// for at least one of its channels (targeted dispatch).
import type { Dispatch, SourceMessage } from '../common/contracts.js';
import { encodeBatch, segmentHead } from '../common/ipc.js';
import type { Logger } from '../common/logger.js';
import type { BusMetrics } from './bus-metrics.js';

/** What the bus needs from the shard pool; it owns nothing about processes. */
export interface BusTargets {
  forEachTarget(fn: (target: BusTarget) => void): void;
}

export interface BusTarget {
  readonly id: number;
  /** True when the shard has a subscriber for the concrete channel or its `<stream>:*`. */
  wants(channel: string, wildcard: string): boolean;
  write(batch: Buffer): void;
}

export interface BusOptions {
  readonly batchSize: number;
  readonly flushMs: number;
}

/** Per channel: its seq and the bytes every message of it starts with, built once. */
interface ChannelState {
  seq: number;
  head: Buffer; // the segment's channel header (see encodeSegment)
  prefix: string; // `{"channel":"<channel>","seq":`
  wildcard: string; // `<stream>:*`
}

function newChannel(channel: string, stream: string): ChannelState {
  return { seq: 0, head: segmentHead(channel), prefix: `{"channel":${JSON.stringify(channel)},"seq":`, wildcard: `${stream}:*` };
}

interface Pending {
  channel: string;
  wildcard: string;
  segment: Buffer;
}

export class BroadcastBus implements Dispatch {
  private readonly channels = new Map<string, ChannelState>();
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  batches = 0;
  messages = 0;

  constructor(
    private readonly opts: BusOptions,
    private readonly targets: BusTargets,
    private readonly log: Logger,
    private readonly metrics: BusMetrics,
  ) {}

  start(): void {
    this.log.info({ batch_size: this.opts.batchSize, flush_ms: this.opts.flushMs }, 'broadcast batching enabled');
  }

  dispatch(batch: readonly SourceMessage[]): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const m of batch) {
      const channel = `${m.stream}:${m.token}`;
      let st = this.channels.get(channel);
      if (!st) {
        st = newChannel(channel, m.stream);
        this.channels.set(channel, st);
      }
      const seq = ++st.seq;
      // The source already checked `data` is a JSON object's text: splice it, don't re-encode.
      const json = `${st.prefix}${seq},"ts":${m.ts},"data":${m.data}}`;
      const len = Buffer.byteLength(json);
      const segment = Buffer.allocUnsafe(st.head.length + 4 + len);
      st.head.copy(segment, 0);
      segment.writeUInt32LE(len, st.head.length);
      segment.write(json, st.head.length + 4);
      this.pending.push({ channel, wildcard: st.wildcard, segment });
      this.metrics.latency.observe(Math.max(0, now - m.ts) / 1000);
      if (this.pending.length >= this.opts.batchSize) this.flush();
    }
    if (this.pending.length && !this.timer) {
      this.timer = setTimeout(() => this.flush(), this.opts.flushMs);
    }
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.pending;
    if (!batch.length) return;
    this.pending = [];
    this.batches++;
    this.messages += batch.length;
    this.metrics.batches.inc();
    this.metrics.messages.inc(batch.length);
    this.metrics.batchSize.observe(batch.length);
    this.targets.forEachTarget((t) => {
      const segs: Buffer[] = [];
      for (const p of batch) if (t.wants(p.channel, p.wildcard)) segs.push(p.segment);
      if (segs.length) t.write(encodeBatch(segs));
    });
  }

  /** Idempotent: flushes what is pending and accepts nothing more. */
  stop(): void {
    if (this.stopped) return;
    this.flush();
    this.stopped = true;
  }
}
