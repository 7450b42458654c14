// The broadcast bus: accepts messages from a source, assigns each channel's seq, serialises each
// message ONCE, micro-batches, and writes each batch only to the shards that have a subscriber
// for at least one of its channels (targeted dispatch). It bounds what it keeps: per-shard output
// (a shard over its byte cap is dropped for, counted) and per-channel state (evicted when idle).
import type { Dispatch, HealthBody, SourceMessage } from '../common/contracts.js';
import { encodeBatch } from '../common/ipc.js';
import type { Logger } from '../common/logger.js';
import type { BusMetrics } from './bus-metrics.js';
import type { RecoveryWindow } from './recovery-window.js';

/** What the bus needs from the shard pool; it owns nothing about processes. */
export interface BusTargets {
  forEachTarget(fn: (target: BusTarget) => void): void;
}

export interface BusTarget {
  readonly id: number;
  /** Changes whenever the target is (re)started: the clients of an older incarnation are gone. */
  readonly incarnation: number;
  /** Bytes written to the target and not yet taken by it (what the front buffers for it). */
  readonly pendingBytes: number;
  /** True when the shard has a subscriber for the concrete channel or its `<stream>:*`. */
  wants(channel: string, wildcard: string): boolean;
  /** True when the shard has a subscriber for the concrete channel itself (not only `<stream>:*`). */
  wantsExact(channel: string): boolean;
  write(batch: Buffer): void;
}

export interface BusOptions {
  readonly batchSize: number;
  readonly flushMs: number;
  /** A channel with no message for this long and no concrete subscriber is forgotten. */
  readonly channelIdleMs: number;
  /** Past this many channels the least recently used evictable one is forgotten early. */
  readonly maxChannels: number;
  /** Bytes queued for one shard past which its batches are dropped (counted) instead. */
  readonly shardBufferBytes: number;
}

/** Per channel: its numbering and the bytes every message of it starts with, built once. */
interface ChannelState {
  seq: number;
  /** UTF-8 length of the channel name. (No Buffer per channel: a pooled slice would pin its slab.) */
  nameBytes: number;
  prefix: string; // `{"channel":"<channel>","epoch":"<epoch>","seq":`
  wildcard: string; // `<stream>:*`
  /** Its last message. */
  lastAt: number;
  /** When it last moved to the map's end: the map is ordered by it (least recently used first). */
  movedAt: number;
  /** Messages of it in the batch being built. */
  inBatch: number;
  /** Targets (id -> incarnation) whose last message of this channel was dropped: see pinned(). */
  lossy: Map<number, number> | null;
}

interface Pending {
  channel: string;
  state: ChannelState;
  segment: Buffer;
}

interface TargetState {
  target: BusTarget;
  incarnation: number;
  droppedBytes: number;
  droppedMessages: number;
  overCapSince: number | null;
  /** Since when its queue has been above half the cap (cleared below a quarter). */
  highSince: number | null;
}

/** over_cap_since_ms: since when (ms epoch) the shard's output has been over its cap, or null. */
export type BusTargetStats = HealthBody['bus']['shards'][number];

// A new channel looks this far from the least recently used end for one it may evict.
const EVICT_SCAN = 64;
// While a shard is behind, how often that is checked (no flush may come: the source is paused).
const CONGESTION_POLL_MS = 20;
// A shard is behind when its queue stayed above half the cap this long.
const BEHIND_MS = 100;

/** A flat copy: a template result is a tree of string pieces, kept per channel it costs more. */
const flat = (s: string): string => Buffer.from(s).toString();

export class BroadcastBus implements Dispatch {
  private readonly channels = new Map<string, ChannelState>();
  private readonly byTarget = new Map<number, TargetState>();
  private readonly wildcards = new Map<string, string>();
  private readonly epochBase: string;
  private readonly moveEveryMs: number;
  private generation = 0;
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private lastFlushAt = 0;
  private stopped = false;
  private congestedNow = false;
  private readonly congestionListeners: Array<(congested: boolean) => void> = [];
  private drainWait: { promise: Promise<void>; resolve(): void } | null = null;
  batches = 0;
  messages = 0;
  evictions = 0;

  constructor(
    private readonly opts: BusOptions,
    private readonly targets: BusTargets,
    private readonly log: Logger,
    private readonly metrics: BusMetrics,
    private readonly window: RecoveryWindow,
    now = Date.now(),
  ) {
    this.epochBase = now.toString(36);
    this.moveEveryMs = Math.min(1000, opts.channelIdleMs / 4);
    const m = metrics;
    (m.channels as unknown as { collect: () => void }).collect = () => m.channels.set(this.channels.size);
    (m.pendingBytes as unknown as { collect: () => void }).collect = () => {
      for (const s of this.targetStats()) m.pendingBytes.set({ shard: String(s.id) }, s.pending_bytes);
    };
  }

  start(): void {
    this.log.info({ batch_size: this.opts.batchSize, flush_ms: this.opts.flushMs }, 'broadcast batching enabled');
    this.log.info(
      { channel_idle_ms: this.opts.channelIdleMs, max_channels: this.opts.maxChannels, shard_buffer_bytes: this.opts.shardBufferBytes },
      'bus bounds enabled',
    );
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      this.sweep(now);
      this.window.expire(now);
    }, Math.min(10_000, Math.max(50, this.opts.channelIdleMs / 4)));
    this.sweeper.unref();
  }

  get channelCount(): number {
    return this.channels.size;
  }

  dispatch(batch: readonly SourceMessage[]): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const m of batch) {
      const channel = `${m.stream}:${m.token}`;
      let st = this.channels.get(channel);
      if (!st) {
        if (this.channels.size >= this.opts.maxChannels) this.evictForRoom(now);
        st = this.newChannel(channel, m.stream, now);
        this.channels.set(channel, st);
      } else if (now - st.movedAt > this.moveEveryMs) {
        // Keep the map in least-recently-used order cheaply: move an entry only now and then.
        this.refresh(channel, st, now);
      }
      st.lastAt = now;
      st.inBatch++;
      const seq = ++st.seq;
      // The source already checked `data` is a JSON object's text: splice it, don't re-encode.
      const json = `${st.prefix}${seq},"pos":"${m.origin}:${m.offset}","ts":${m.ts},"data":${m.data}}`;
      // Kept as the text the clients get: a replay sends these very bytes.
      this.window.store(channel, m.stream, m, json, now);
      const len = Buffer.byteLength(json);
      // The segment (see encodeSegment): u16 channel length, channel, u32 payload length, payload.
      const head = 2 + st.nameBytes;
      const segment = Buffer.allocUnsafe(head + 4 + len);
      segment.writeUInt16LE(st.nameBytes, 0);
      segment.write(channel, 2);
      segment.writeUInt32LE(len, head);
      segment.write(json, head + 4);
      this.pending.push({ channel, state: st, segment });
      this.metrics.latency.observe(Math.max(0, now - m.ts) / 1000);
      if (this.pending.length >= this.opts.batchSize) this.flush();
    }
    if (this.pending.length) this.schedule(now);
  }

  /**
   * Adaptive batching: when the last flush is older than the flush window and no shard is still
   * taking an earlier batch, go out at the end of this turn (whatever else arrives in this turn
   * joins); otherwise wait for the window's end or a full batch, as before.
   */
  private schedule(now: number): void {
    if (this.timer || this.immediate) return;
    const wait = this.lastFlushAt + this.opts.flushMs - now;
    if (wait > 0) this.timer = setTimeout(() => this.flush(), Math.min(this.opts.flushMs, wait));
    else if (this.anyPending()) this.timer = setTimeout(() => this.flush(), this.opts.flushMs);
    else {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.flush();
      });
    }
  }

  private anyPending(): boolean {
    let busy = false;
    this.targets.forEachTarget((t) => {
      if (t.pendingBytes > 0) busy = true;
    });
    return busy;
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.immediate = null;
    const batch = this.pending;
    if (!batch.length) return;
    this.pending = [];
    const now = Date.now();
    this.lastFlushAt = now;
    this.batches++;
    this.messages += batch.length;
    this.metrics.batches.inc();
    this.metrics.messages.inc(batch.length);
    this.metrics.batchSize.observe(batch.length);
    for (const p of batch) p.state.inBatch--;
    const cap = this.opts.shardBufferBytes;
    this.targets.forEachTarget((t) => {
      const segs: Buffer[] = [];
      const mine: Pending[] = [];
      for (const p of batch) {
        if (t.wants(p.channel, p.state.wildcard)) {
          segs.push(p.segment);
          mine.push(p);
        }
      }
      if (!segs.length) return;
      const frame = encodeBatch(segs);
      const ts = this.targetState(t);
      const queued = t.pendingBytes;
      // One batch always fits an empty pipe, so the bound is max(cap, one batch) per shard.
      if (queued > 0 && queued + frame.length > cap) {
        ts.droppedBytes += frame.length;
        ts.droppedMessages += segs.length;
        ts.overCapSince ??= now;
        this.metrics.droppedBytes.inc({ shard: String(t.id) }, frame.length);
        this.metrics.droppedMessages.inc({ shard: String(t.id) }, segs.length);
        for (const p of mine) (p.state.lossy ??= new Map()).set(t.id, t.incarnation);
        return;
      }
      t.write(frame);
      ts.overCapSince = null;
      // This shard's clients will see this seq: a gap before it is now visible to them.
      for (const p of mine) {
        const lossy = p.state.lossy;
        if (lossy && lossy.delete(t.id) && lossy.size === 0) p.state.lossy = null;
      }
    });
    this.checkCongestion();
  }

  /** Idempotent: flushes what is pending and accepts nothing more. */
  stop(): void {
    if (this.stopped) return;
    this.flush();
    this.stopped = true;
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.sweeper = this.pollTimer = null;
    this.drainWait?.resolve();
    this.drainWait = null;
  }

  // ---- per-channel state ----

  /** One `<stream>:*` string per stream (streams are few), shared by its channels. */
  private wildcardOf(stream: string): string {
    let w = this.wildcards.get(stream);
    if (!w) this.wildcards.set(stream, (w = `${stream}:*`));
    return w;
  }

  private newChannel(channel: string, stream: string, now: number): ChannelState {
    // The epoch names this numbering: a channel forgotten and seen again, or a restarted server,
    // starts a new one at seq 1, so a client can tell a restart of the numbering from a loss.
    const epoch = `${this.epochBase}-${(++this.generation).toString(36)}`;
    return {
      seq: 0,
      nameBytes: Buffer.byteLength(channel),
      prefix: flat(`{"channel":${JSON.stringify(channel)},"epoch":"${epoch}","seq":`),
      wildcard: this.wildcardOf(stream),
      lastAt: now,
      movedAt: now,
      inBatch: 0,
      lossy: null,
    };
  }

  /**
   * A channel is kept while a shard has a concrete subscriber for it, while it has a message in
   * the batch being built, and while a live shard missed its latest message (dropped over cap):
   * forgetting it then would restart its numbering and hide that gap from wildcard subscribers.
   */
  private pinned(channel: string, st: ChannelState, live: readonly BusTarget[]): boolean {
    if (st.inBatch > 0) return true;
    for (const t of live) if (t.wantsExact(channel)) return true;
    if (st.lossy) {
      for (const [id, inc] of st.lossy) {
        if (!live.some((t) => t.id === id && t.incarnation === inc)) st.lossy.delete(id);
      }
      if (st.lossy.size) return true;
      st.lossy = null;
    }
    return false;
  }

  private liveTargets(): BusTarget[] {
    const live: BusTarget[] = [];
    this.targets.forEachTarget((t) => live.push(t));
    return live;
  }

  private refresh(channel: string, st: ChannelState, now: number): void {
    this.channels.delete(channel);
    this.channels.set(channel, st);
    st.movedAt = now;
  }

  private evict(channel: string): void {
    this.channels.delete(channel);
    this.evictions++;
    this.metrics.evictions.inc();
  }

  /** Forgets every channel quiet for channelIdleMs that nothing pins. */
  sweep(now: number): void {
    const cutoff = now - this.opts.channelIdleMs;
    let live: BusTarget[] | null = null;
    for (const [channel, st] of this.channels) {
      if (st.movedAt > cutoff) break; // ordered by movedAt <= lastAt: the rest is not quiet
      live ??= this.liveTargets();
      if (st.lastAt > cutoff || this.pinned(channel, st, live)) this.refresh(channel, st, now);
      else this.evict(channel);
    }
  }

  /**
   * Over maxChannels: forget the least recently used channel nothing pins, even if it is not yet
   * quiet for channelIdleMs (its wildcard subscribers see a new epoch; nothing is lost). When the
   * first EVICT_SCAN are all pinned, the map grows past the cap; pinned channels are bounded by
   * the subscriptions (clients x WS_MAX_CHANNELS) and by what live shards missed.
   */
  private evictForRoom(now: number): void {
    let live: BusTarget[] | null = null;
    let scanned = 0;
    for (const [channel, st] of this.channels) {
      if (scanned++ >= EVICT_SCAN) return;
      live ??= this.liveTargets();
      if (this.pinned(channel, st, live)) this.refresh(channel, st, now);
      else return this.evict(channel);
    }
  }

  // ---- per-target output ----

  private targetState(t: BusTarget): TargetState {
    let ts = this.byTarget.get(t.id);
    if (!ts || ts.incarnation !== t.incarnation) {
      // A restarted shard starts clean: its old clients (and their gaps) are gone.
      ts = { target: t, incarnation: t.incarnation, droppedBytes: ts?.droppedBytes ?? 0, droppedMessages: ts?.droppedMessages ?? 0, overCapSince: null, highSince: null };
      this.byTarget.set(t.id, ts);
    }
    return ts;
  }

  /** Since when (ms epoch) shard `id`'s output has been over its cap, or null (for the supervisor). */
  overCapSinceMs(id: number): number | null {
    const ts = this.byTarget.get(id);
    if (!ts || ts.overCapSince === null) return null;
    if (ts.target.incarnation !== ts.incarnation || ts.target.pendingBytes < this.opts.shardBufferBytes / 2) ts.overCapSince = null;
    return ts.overCapSince;
  }

  targetStats(): BusTargetStats[] {
    return [...this.byTarget.values()]
      .sort((a, b) => a.target.id - b.target.id)
      .map((ts) => ({
        id: ts.target.id,
        pending_bytes: ts.target.pendingBytes,
        dropped_bytes: ts.droppedBytes,
        dropped_messages: ts.droppedMessages,
        over_cap_since_ms: this.overCapSinceMs(ts.target.id),
      }));
  }

  // ---- flow control for the source ----

  /**
   * Congested while a strict majority of the shards receiving data are behind (their queue stayed
   * above half the cap for BEHIND_MS, until it falls to a quarter): the server as a whole cannot
   * keep up. One hung shard is not that (it is dropped for instead).
   */
  get congested(): boolean {
    return this.congestedNow;
  }

  onCongestion(fn: (congested: boolean) => void): void {
    this.congestionListeners.push(fn);
  }

  /**
   * Right now a strict majority of the shards receiving data hold more than half their cap: a
   * source that can go faster than the shards (Kafka catching up on lag) waits for drained().
   */
  get saturated(): boolean {
    const cap = this.opts.shardBufferBytes;
    let live = 0;
    let high = 0;
    this.targets.forEachTarget((t) => {
      live++;
      if (t.pendingBytes > cap / 2) high++;
    });
    return high * 2 > live;
  }

  /** Resolves once the bus is no longer saturated (or stopped); one promise per episode. */
  drained(): Promise<void> {
    if (this.stopped || !this.saturated) return Promise.resolve();
    if (!this.drainWait) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.drainWait = { promise, resolve };
      this.checkCongestion(); // starts the sampling that will resolve it
    }
    return this.drainWait.promise;
  }

  private checkCongestion(): void {
    const now = Date.now();
    const cap = this.opts.shardBufferBytes;
    let live = 0;
    let behind = 0;
    let watching = false;
    this.targets.forEachTarget((t) => {
      live++;
      const ts = this.targetState(t);
      const queued = t.pendingBytes;
      if (queued > cap / 2) ts.highSince ??= now;
      else if (queued <= cap / 4) ts.highSince = null;
      if (ts.highSince === null) return;
      watching = true;
      // A burst fills a pipe for a moment; behind means it stayed full.
      if (now - ts.highSince >= BEHIND_MS) behind++;
    });
    // Sampled while any shard is high, since a paused source sends no flush to look again.
    if (watching && !this.pollTimer) {
      this.pollTimer = setInterval(() => this.checkCongestion(), CONGESTION_POLL_MS);
      this.pollTimer.unref();
    } else if (!watching && this.pollTimer) {
      clearInterval(this.pollTimer);
      this.pollTimer = null;
    }
    if (this.drainWait && (this.stopped || !this.saturated)) {
      this.drainWait.resolve();
      this.drainWait = null;
    }
    const next = behind * 2 > live;
    if (next === this.congestedNow) return;
    this.congestedNow = next;
    this.metrics.congested.set(next ? 1 : 0);
    if (next) this.metrics.congestions.inc();
    this.log.info({ congested: next, behind, shards: live }, next ? 'bus congested: most shards are behind' : 'bus drained');
    for (const fn of this.congestionListeners) fn(next);
  }

  health(): HealthBody['bus'] {
    return {
      batches: this.batches,
      messages: this.messages,
      batch_size: this.opts.batchSize,
      flush_ms: this.opts.flushMs,
      channels: this.channels.size,
      max_channels: this.opts.maxChannels,
      channel_idle_ms: this.opts.channelIdleMs,
      channel_evictions: this.evictions,
      shard_buffer_bytes: this.opts.shardBufferBytes,
      congested: this.congestedNow,
      shards: this.targetStats(),
    };
  }
}
