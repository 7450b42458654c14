// The server's shared Kafka consumer: ONE consumer group for the whole server (not one per shard),
// records -> micro-batches -> Dispatch (the broadcast bus).
//
// Delivery: at-least-once. A fetched batch's offset is resolved and committed only after every
// message of it was handed to dispatch() (which returning means accepted). A crash or a kill after
// dispatch but before the commit re-delivers those records on the next start (duplicates, never
// loss); a clean stop() commits first, so a restart resumes exactly after the last dispatched record.
import { Kafka, type Consumer, type EachBatchPayload } from 'kafkajs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Dispatch, MessageSource, SourceMessage } from '../common/contracts.js';
import type { KafkaConfig } from './config.js';
import { createKafkaMetrics, type KafkaMetrics } from './metrics.js';
import { createMicroBatcher, type Batcher } from './micro-batcher.js';
import { kafkajsLogCreator, createRateLimitedLog, type RateLimitedLog } from './rate-limited-log.js';
import { createRecordMapper, REJECT_REASONS, type RejectReason } from './record-mapper.js';
import { streamOfTopic } from '../common/channel.js';

// Fetch for latency: the broker answers as soon as one byte is there, and an idle fetch returns
// after 50 ms instead of kafkajs' 5 s (which also bounds how stale `connected` can be).
const MAX_WAIT_MS = 50;
// No fetch for this long while running: the broker is gone or the group is rebalancing.
const STALE_MS = 3_000;
// Stuck that long: kafkajs has given up or wedged; throw the consumer away and start a new one.
const STUCK_MS = 30_000;
// All partitions of a fetch are processed at once, so their records share one 10 ms batch window.
const PARTITIONS_CONCURRENTLY = 16;
const RELAUNCH_MIN_MS = 500;
const RELAUNCH_MAX_MS = 10_000;
const DISCONNECT_TIMEOUT_MS = 5_000;
const HEARTBEAT_WHILE_WAITING_MS = 1_000;

/**
 * What the pool needs from the bus to hold back (optional: any Dispatch works): congested while
 * the server as a whole cannot keep up; the pool pauses fetching until it clears.
 */
export interface FlowControl {
  readonly congested: boolean;
  onCongestion(fn: (congested: boolean) => void): void;
  /** Most shards hold a lot right now: hand on no more until drained() resolves. */
  readonly saturated: boolean;
  drained(): Promise<void>;
}

/** What the pool needs besides its Kafka settings. */
export interface PoolOptions {
  /** At the process's first join, start this far back in time (the recovery window's reach). */
  readonly seekBackMs: number;
}

export class KafkaConsumerPool implements MessageSource {
  readonly kind = 'kafka' as const;
  private readonly log: Logger;
  private readonly limited: RateLimitedLog;
  private readonly metrics: KafkaMetrics;
  private readonly batcher: Batcher<SourceMessage>;
  private readonly map: ReturnType<typeof createRecordMapper>;
  private consumer: Consumer | null = null;
  private state: 'idle' | 'running' | 'stopped' = 'idle';
  private relaunchTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private relaunches = 0;
  private launching: Promise<void> | null = null;
  private lastFetchAt = 0;
  private launchedAt = 0;
  private lastMessageAt = 0;
  private recordsTotal = 0;
  private readonly rejectedBy: Record<RejectReason, number>;
  private readonly lagByPartition = new Map<string, number>();
  private paused = false;
  private pauses = 0;
  /** Per `topic/partition`: the offset after which this process has every record (see floor()). */
  private readonly coverage = new Map<string, number>();
  /** Per `topic/partition`: the highest offset dispatched, so a redelivered record is dispatched once. */
  private readonly dispatched = new Map<string, number>();
  /** The first join's starting offsets (per topic, per partition), from the broker by time. */
  private seekPlan: Map<string, Map<number, string>> | null = null;
  private partitionCounts: Map<string, number> | null = null;
  private readonly topicOfStream = new Map<string, string>();
  private redelivered = 0;

  constructor(
    private readonly config: KafkaConfig,
    private readonly dispatch: Dispatch & Partial<FlowControl>,
    logger: Logger,
    registry: Registry,
    private readonly opts: PoolOptions = { seekBackMs: 0 },
  ) {
    for (const t of config.topics) this.topicOfStream.set(streamOfTopic(t), t);
    this.log = logger.child({ part: 'kafka' });
    this.limited = createRateLimitedLog(this.log);
    this.rejectedBy = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
    this.map = createRecordMapper({ streams: config.streams, maxRecordBytes: config.maxRecordBytes });
    this.metrics = createKafkaMetrics(registry, { partitionLag: () => this.lagByPartition, connected: () => this.connected() });
    this.batcher = createMicroBatcher<SourceMessage>({
      maxSize: config.batchSize,
      maxDelayMs: config.batchTimeoutMs,
      sink: (batch) => {
        this.dispatch.dispatch(batch);
        this.recordsTotal += batch.length;
        this.lastMessageAt = Date.now();
        this.metrics.records.inc(batch.length);
        this.metrics.batchSize.observe(batch.length);
      },
    });
    dispatch.onCongestion?.((congested) => this.setPaused(congested));
  }

  /** Pauses fetching while the bus is congested; what was fetched is still dispatched. */
  private setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    if (paused) {
      this.pauses++;
      this.metrics.pauses.inc();
    }
    this.metrics.paused.set(paused ? 1 : 0);
    if (!paused) this.lastFetchAt = Math.max(this.lastFetchAt, Date.now() - STALE_MS / 2); // no stale/stuck verdict for the pause
    this.log.info({ paused }, paused ? 'kafka fetching paused: the shards are behind' : 'kafka fetching resumed');
    this.applyPause(this.consumer);
  }

  private applyPause(consumer: Consumer | null): void {
    if (!consumer) return;
    const topics = this.config.topics.map((topic) => ({ topic }));
    try {
      if (this.paused) consumer.pause(topics);
      else consumer.resume(topics);
    } catch {
      // Not running yet: tryLaunch applies the state once run() has started.
    }
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.log.info({ group: this.config.group, topics: this.config.topics }, 'shared consumer pool started');
    this.log.info({ batch_size: this.config.batchSize, batch_timeout_ms: this.config.batchTimeoutMs }, 'Kafka batching enabled');
    this.watchdog = setInterval(() => this.checkStuck(), 1_000);
    this.watchdog.unref();
    // Not awaited: with the broker down, connecting retries for a long while, and the server must
    // serve (and handle signals) meanwhile. health() tells whether the consumer is connected.
    void this.launch();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    if (this.relaunchTimer) clearTimeout(this.relaunchTimer);
    if (this.watchdog) clearInterval(this.watchdog);
    this.relaunchTimer = this.watchdog = null;
    // A launch still connecting sees it was superseded and disconnects its own consumer.
    await this.dropConsumer();
    this.batcher.stop();
    this.log.info({ group: this.config.group, records_total: this.recordsTotal }, 'shared consumer pool stopped');
  }

  health(): Record<string, unknown> {
    return {
      connected: this.connected(),
      paused: this.paused,
      pauses_total: this.pauses,
      group: this.config.group,
      topics: [...this.config.topics],
      lag: this.lag(),
      last_message_age_ms: this.lastMessageAt ? Date.now() - this.lastMessageAt : null,
      records_total: this.recordsTotal,
      redelivered_skipped: this.redelivered,
      rejected_total: Object.values(this.rejectedBy).reduce((a, b) => a + b, 0),
      rejected: { ...this.rejectedBy },
    };
  }

  floor(stream: string, origin: string): number | 'pending' | null {
    const topic = this.topicOfStream.get(stream);
    const m = /^p(\d{1,9})$/.exec(origin);
    if (!topic || !m) return null;
    const partition = Number(m[1]);
    const f = this.coverage.get(`${topic}/${partition}`);
    if (f !== undefined) return f;
    const count = this.partitionCounts?.get(topic);
    return count !== undefined && partition >= count ? null : 'pending';
  }

  /**
   * The first join's starting points: every partition's first offset at or after now - seekBackMs
   * (its end when there is none), so the recovery window is rebuilt right after a restart. Later
   * joins of this process resume from the committed offsets (and skip what was dispatched).
   */
  private async planSeek(kafka: Kafka): Promise<void> {
    if (this.seekPlan || this.opts.seekBackMs <= 0 || this.config.fromBeginning) return;
    const admin = kafka.admin();
    try {
      await admin.connect();
      const plan = new Map<string, Map<number, string>>();
      const counts = new Map<string, number>();
      const at = Date.now() - this.opts.seekBackMs;
      for (const topic of this.config.topics) {
        const [byTime, ends] = await Promise.all([admin.fetchTopicOffsetsByTimestamp(topic, at), admin.fetchTopicOffsets(topic)]);
        const end = new Map(ends.map((e) => [e.partition, e.high]));
        const parts = new Map<number, string>();
        for (const p of byTime) parts.set(p.partition, Number(p.offset) >= 0 ? p.offset : (end.get(p.partition) ?? p.offset));
        plan.set(topic, parts);
        counts.set(topic, ends.length);
      }
      this.seekPlan = plan;
      this.partitionCounts = counts;
    } catch (e) {
      this.limited.log('warn', 'seek-plan', { error: (e as Error).message }, 'kafka: could not read offsets by time; resuming from the committed offsets');
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  /** At a join, seeks the assigned partitions the plan has not yet moved (each once per process). */
  private applySeek(consumer: Consumer, assignment: Record<string, number[]>): void {
    const plan = this.seekPlan;
    if (!plan) return;
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) {
        const offset = plan.get(topic)?.get(partition);
        if (offset === undefined) continue;
        try {
          consumer.seek({ topic, partition, offset });
        } catch {
          continue;
        }
        plan.get(topic)!.delete(partition);
        this.coverage.set(`${topic}/${partition}`, Number(offset) - 1);
        this.dispatched.delete(`${topic}/${partition}`);
      }
    }
  }

  private connected(): boolean {
    // Paused, kafkajs stops fetching but stays in the group (heartbeats go on).
    if (this.paused) return this.state === 'running' && this.consumer !== null;
    return this.state === 'running' && this.consumer !== null && Date.now() - this.lastFetchAt < STALE_MS;
  }

  private lag(): number {
    let sum = 0;
    for (const l of this.lagByPartition.values()) sum += l;
    return sum;
  }

  private launch(): Promise<void> {
    this.launching = this.tryLaunch().finally(() => {
      this.launching = null;
    });
    return this.launching;
  }

  /** Builds a fresh client and consumer; on failure schedules the next try with bounded backoff. */
  private async tryLaunch(): Promise<void> {
    if (this.state !== 'running') return;
    const kafka = new Kafka({
      clientId: `odin-ws-${this.config.group}`,
      brokers: [...this.config.brokers],
      connectionTimeout: 3_000,
      requestTimeout: 10_000,
      logCreator: kafkajsLogCreator(this.log),
      retry: { initialRetryTime: 300, maxRetryTime: 5_000, retries: 8 },
    });
    const consumer = kafka.consumer({
      groupId: this.config.group,
      sessionTimeout: 10_000,
      heartbeatInterval: 2_000,
      maxWaitTimeInMs: MAX_WAIT_MS,
      minBytes: 1,
      allowAutoTopicCreation: false,
      retry: {
        initialRetryTime: 300,
        maxRetryTime: 5_000,
        retries: 8,
        // Every failure is worth another try: the broker may come back at any time.
        restartOnFailure: async () => true,
      },
    });
    this.consumer = consumer;
    this.launchedAt = Date.now();
    const { GROUP_JOIN, FETCH, CRASH } = consumer.events;
    consumer.on(GROUP_JOIN, (e) => {
      this.lastFetchAt = Date.now();
      this.relaunches = 0;
      this.lagByPartition.clear();
      this.log.info({ group: this.config.group, assignment: e.payload.memberAssignment }, 'kafka consumer joined group');
      this.applySeek(consumer, e.payload.memberAssignment);
    });
    consumer.on(FETCH, () => {
      this.lastFetchAt = Date.now();
    });
    consumer.on(CRASH, (e) => {
      this.lastFetchAt = 0;
      this.limited.log('warn', 'crash', { error: e.payload.error.message, restart: e.payload.restart }, 'kafka consumer crashed');
      // kafkajs restarts by itself when restart is true; otherwise start over with a new consumer.
      if (!e.payload.restart && this.consumer === consumer) this.scheduleRelaunch();
    });
    const superseded = () => this.consumer !== consumer;
    try {
      await consumer.connect();
      if (superseded()) throw new Error('superseded');
      await this.planSeek(kafka);
      if (superseded()) throw new Error('superseded');
      await consumer.subscribe({ topics: [...this.config.topics], fromBeginning: this.config.fromBeginning });
      if (superseded()) throw new Error('superseded');
      await consumer.run({
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: PARTITIONS_CONCURRENTLY,
        eachBatch: (payload) => this.eachBatch(payload),
      });
      if (superseded()) await consumer.disconnect();
      else this.applyPause(consumer);
    } catch (e) {
      if (superseded()) {
        await consumer.disconnect().catch(() => {});
        return;
      }
      this.limited.log('warn', 'launch', { error: (e as Error).message, brokers: this.config.brokers }, 'kafka consumer could not start; retrying');
      this.scheduleRelaunch();
    }
  }

  private async eachBatch({ batch, resolveOffset, commitOffsetsIfNecessary, heartbeat, isRunning, isStale }: EachBatchPayload) {
    const group = this.batcher.group();
    let last: string | null = null;
    const key = `${batch.topic}/${batch.partition}`;
    for (const record of batch.messages) {
      if (!isRunning() || isStale()) break;
      const offset = Number(record.offset);
      const seen = this.dispatched.get(key);
      // Without a seek, a partition is complete from the first record this process fetched of it.
      if (!this.coverage.has(key)) this.coverage.set(key, offset - 1);
      last = record.offset;
      if (seen !== undefined && offset <= seen) {
        // Redelivered (a rebalance or a relaunch resumed before what was dispatched): once only.
        this.redelivered++;
        continue;
      }
      this.dispatched.set(key, offset);
      const r = this.map(batch.topic, batch.partition, record);
      if (r.ok) group.push(r.message);
      else this.reject(r.reason, batch.topic, batch.partition, record.offset);
      // A fetch (up to megabytes, e.g. catching up on lag) can outrun the shards: after each
      // hand-over, wait while most of them are full rather than make the bus drop for them.
      while (this.batcher.pending === 0 && this.dispatch.saturated && isRunning() && !isStale()) {
        await this.waitDrained();
        await heartbeat(); // stay in the group however long the shards take
      }
    }
    // Commit only what the bus accepted; if dispatch threw, this throws and kafkajs re-fetches.
    await group.done();
    if (last === null) return;
    resolveOffset(last);
    await commitOffsetsIfNecessary();
    this.lagByPartition.set(`${batch.topic}/${batch.partition}`, Math.max(0, Number(batch.highWatermark) - Number(last) - 1));
  }

  private waitDrained(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.dispatch.drained?.() ?? Promise.resolve(),
      new Promise<void>((r) => {
        timer = setTimeout(r, HEARTBEAT_WHILE_WAITING_MS);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private reject(reason: RejectReason, topic: string, partition: number, offset: string) {
    this.rejectedBy[reason]++;
    this.metrics.rejected.inc({ reason });
    this.limited.log('warn', `reject:${reason}`, { reason, topic, partition, offset }, 'kafka record rejected');
  }

  private scheduleRelaunch() {
    if (this.state !== 'running' || this.relaunchTimer) return;
    const delay = Math.min(RELAUNCH_MAX_MS, RELAUNCH_MIN_MS * 2 ** this.relaunches) * (0.8 + Math.random() * 0.4);
    this.relaunches++;
    this.relaunchTimer = setTimeout(async () => {
      this.relaunchTimer = null;
      await this.dropConsumer();
      await this.launch();
    }, delay);
  }

  private checkStuck() {
    if (this.state !== 'running' || this.launching || this.relaunchTimer || this.paused) return;
    const since = Math.max(this.lastFetchAt, this.launchedAt);
    if (Date.now() - since > STUCK_MS) {
      this.limited.log('warn', 'stuck', { since_ms: Date.now() - since }, 'kafka consumer stuck; starting a new one');
      this.scheduleRelaunch();
    }
  }

  /** Disconnects the current consumer (commits, leaves the group); bounded, since the broker may be gone. */
  private async dropConsumer() {
    const consumer = this.consumer;
    this.consumer = null;
    this.lastFetchAt = 0;
    if (!consumer) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), DISCONNECT_TIMEOUT_MS);
    });
    const result = await Promise.race([consumer.disconnect().then(() => 'ok' as const, (e: Error) => e), timeout]);
    clearTimeout(timer);
    if (result !== 'ok') {
      this.log.warn({ error: result === 'timeout' ? 'timeout' : result.message }, 'kafka consumer did not disconnect cleanly');
    }
  }
}
