// Produces synthetic records at a steady rate, round-robin over every (topic, token), so each
// channel gets rate / (topics x tokens) records per second. A broker outage is counted, never fatal.
import { Kafka, Partitioners, type Message, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { kafkajsLogCreator, createRateLimitedLog, type RateLimitedLog } from '../kafka/rate-limited-log.js';
import type { PublisherConfig } from './config.js';
import { Market, streamOf } from './market.js';

const TICK_MS = 10;
// Further behind than this (broker slow or down), the backlog is skipped rather than burst out.
const MAX_BACKLOG_S = 1;
const MAX_PER_SEND = 5_000;

export interface PublisherStatus {
  rate: number;
  sent: number;
  errors: number;
  skipped: number;
  broker: { connected: boolean; brokers: string[] };
  uptime_s: number;
  tokens: number;
  topics: string[];
}

export class Publisher {
  private readonly producer: Producer;
  private readonly market: Market;
  private readonly limited: RateLimitedLog;
  private readonly pairs: Array<{ topic: string; token: string }>;
  private readonly m: { sent: Counter<'topic'>; errors: Counter; skipped: Counter };
  private next = 0;
  private sent = 0;
  private errors = 0;
  private skipped = 0;
  private connected = false;
  private producerUp = false;
  private startedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private tick: Promise<void> | null = null;
  private running = false;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly config: PublisherConfig,
    private readonly log: Logger,
    registry: Registry,
    private readonly onDone: () => void = () => {},
  ) {
    this.market = new Market(config.tokens);
    this.limited = createRateLimitedLog(log);
    this.pairs = config.topics.flatMap((topic) => config.tokens.map((token) => ({ topic, token })));
    const kafka = new Kafka({
      clientId: 'odin-publisher',
      brokers: [...config.brokers],
      connectionTimeout: 2_000,
      requestTimeout: 5_000,
      logCreator: kafkajsLogCreator(log),
      // Few quick retries: while the broker is away the loop counts errors and moves on.
      retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1_000 },
    });
    this.producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
    this.producer.on(this.producer.events.CONNECT, () => (this.producerUp = true));
    this.producer.on(this.producer.events.DISCONNECT, () => {
      this.producerUp = false;
      this.connected = false;
    });
    const registers = [registry];
    this.m = {
      sent: new Counter({ name: 'odin_publisher_records_sent_total', help: 'Records the broker acknowledged', labelNames: ['topic'], registers }),
      errors: new Counter({ name: 'odin_publisher_send_errors_total', help: 'Records that failed to send', registers }),
      skipped: new Counter({ name: 'odin_publisher_records_skipped_total', help: 'Records not produced because the publisher fell behind', registers }),
    };
    const isConnected = () => this.connected;
    new Gauge({
      name: 'odin_publisher_broker_connected',
      help: '1 while the last send succeeded',
      registers,
      collect() {
        this.set(isConnected() ? 1 : 0);
      },
    });
  }

  start(): void {
    if (this.running || this.stopping) return;
    this.running = true;
    this.startedAt = Date.now();
    this.log.info({ brokers: this.config.brokers, rate: this.config.rate, tokens: this.config.tokens.length, topics: this.config.topics }, 'publisher started');
    this.schedule();
  }

  /** Stops producing, waits for the send in flight, disconnects. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.running = false;
      if (this.timer) clearTimeout(this.timer);
      await this.tick;
      await this.producer.disconnect().catch(() => {});
      this.log.info({ sent: this.sent, errors: this.errors, skipped: this.skipped }, 'publisher stopped');
    })();
    return this.stopping;
  }

  status(): PublisherStatus {
    return {
      rate: this.config.rate,
      sent: this.sent,
      errors: this.errors,
      skipped: this.skipped,
      broker: { connected: this.connected, brokers: [...this.config.brokers] },
      uptime_s: this.startedAt ? Math.round((Date.now() - this.startedAt) / 1000) : 0,
      tokens: this.config.tokens.length,
      topics: [...this.config.topics],
    };
  }

  private schedule() {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.tick = this.produceDue().finally(() => this.schedule());
    }, TICK_MS);
  }

  private async produceDue() {
    const { rate, maxRecords } = this.config;
    let target = Math.floor((rate * (Date.now() - this.startedAt)) / 1000);
    if (maxRecords > 0) target = Math.min(target, maxRecords);
    let due = target - this.produced();
    const behind = due - Math.ceil(rate * MAX_BACKLOG_S);
    if (behind > 0) {
      this.skipped += behind;
      this.m.skipped.inc(behind);
      due -= behind;
    }
    if (due > 0) await this.send(Math.min(due, MAX_PER_SEND));
    if (maxRecords > 0 && this.produced() >= maxRecords && this.running) {
      this.running = false;
      this.onDone();
    }
  }

  private produced() {
    return this.sent + this.errors + this.skipped;
  }

  private async send(n: number) {
    const now = Date.now();
    const byTopic = new Map<string, Message[]>();
    for (let i = 0; i < n; i++) {
      const { topic, token } = this.pairs[this.next];
      this.next = (this.next + 1) % this.pairs.length;
      const value = JSON.stringify(this.market.next(streamOf(topic), token, now));
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push({ key: token, value, timestamp: String(now) });
    }
    try {
      if (!this.producerUp) await this.producer.connect();
      await this.producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
      this.sent += n;
      for (const [topic, messages] of byTopic) this.m.sent.inc({ topic }, messages.length);
      if (!this.connected) this.log.info({ brokers: this.config.brokers }, 'publisher connected to broker');
      this.connected = true;
    } catch (e) {
      this.errors += n;
      this.m.errors.inc(n);
      this.connected = false;
      this.limited.log('warn', 'send', { error: (e as Error).message, records: n }, 'publisher send failed');
    }
  }
}
