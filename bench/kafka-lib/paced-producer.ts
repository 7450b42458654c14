// Publishes at a fixed rate for as long as it runs, every record stamped with its send time (the
// record timestamp becomes the message `ts`, so client latency is publish-to-receipt). Sends every
// TICK_MS what is due; when kafkajs cannot keep up it does not burst to catch up beyond a bound
// but counts how far behind it fell, so the achieved rate is the honest figure.
import * as hdr from 'hdr-histogram-js';
import type { Producer } from 'kafkajs';
import { connectProducer, type RecordSource } from './records.js';

const TICK_MS = 10; // as app/publisher does
const MAX_IN_FLIGHT = 4;
const MAX_BACKLOG_S = 0.25;

export class PacedProducer {
  private producer: Producer | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private startedAt = 0;
  private stoppedAt = 0;
  private due = 0; // records owed to the schedule so far, including skipped ones
  sent = 0;
  acked = 0;
  errors = 0;
  skipped = 0; // owed but never sent: the producer was too far behind
  private lastError: string | null = null;
  private cpu0 = process.cpuUsage();
  /** Per send: from building the batch (its records' timestamp) to the broker's ack. */
  private readonly ackMs = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: 3, autoResize: true });

  constructor(
    private readonly brokers: string,
    private readonly source: RecordSource,
    readonly rate: number,
  ) {}

  async start(): Promise<void> {
    this.producer = await connectProducer(this.brokers, 'odin-bench-paced');
    this.startedAt = Date.now();
    this.cpu0 = process.cpuUsage();
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  private tick() {
    const owed = Math.floor((this.rate * (Date.now() - this.startedAt)) / 1000) - this.due;
    if (owed <= 0 || this.inFlight.size >= MAX_IN_FLIGHT || !this.producer) return;
    const backlogCap = Math.max(1, Math.round(this.rate * MAX_BACKLOG_S));
    const n = Math.min(owed, backlogCap);
    this.skipped += owed - n;
    this.due += owed;
    this.sent += n;
    const builtAt = Date.now();
    const p = this.producer
      .sendBatch({ acks: -1, topicMessages: this.source.next(n, builtAt) })
      .then(
        () => {
          this.acked += n;
          this.ackMs.recordValue(Math.max(1, Date.now() - builtAt));
        },
        (e: Error) => {
          this.errors += n;
          this.lastError = e.message;
        },
      )
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** Stops sending, waits for the sends in flight, disconnects. Idempotent. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.stoppedAt) this.stoppedAt = Date.now();
    await Promise.allSettled([...this.inFlight]);
    const p = this.producer;
    this.producer = null;
    await p?.disconnect().catch(() => {});
  }

  summary() {
    const seconds = ((this.stoppedAt || Date.now()) - this.startedAt) / 1000;
    const cpu = process.cpuUsage(this.cpu0);
    return {
      target_rate: this.rate,
      seconds: Math.round(seconds * 10) / 10,
      sent: this.sent,
      acked: this.acked,
      errors: this.errors,
      last_error: this.lastError,
      skipped_behind: this.skipped,
      send_to_ack_ms: this.ackMs.totalCount ? { sends: this.ackMs.totalCount, p50: this.ackMs.getValueAtPercentile(50), p99: this.ackMs.getValueAtPercentile(99), max: this.ackMs.maxValue } : null,
      achieved_rate: Math.round(this.acked / Math.max(0.001, seconds)),
      bench_process_cpu_s: Math.round(((cpu.user + cpu.system) / 1e6) * 100) / 100,
    };
  }
}
