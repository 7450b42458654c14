// Synthetic market data for when no broker is configured, so the server is useful on a fresh
// machine. Every channel (stream x token) gets `rate` messages per second; a tick emits all the
// channels' messages together, as a real feed bursts on each market update.
import type { Coverage } from '../bus/recovery-window.js';
import type { Dispatch, MessageSource, SourceMessage } from '../common/contracts.js';
import type { Logger } from '../common/logger.js';

export interface EmbeddedFeedOptions {
  readonly tokens: readonly string[];
  readonly streams: readonly string[];
  readonly rate: number; // per channel per second
  readonly payloadBytes: number;
}

const MIN_TICK_MS = 10;

export class EmbeddedFeed implements MessageSource, Coverage {
  readonly kind = 'embedded' as const;
  /** This run's origin: positions of another run (a restarted server) are not comparable. */
  readonly origin = `e${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  private offset = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly tickMs: number;
  private owed = 0;
  private sent = 0;
  private readonly prices = new Map<string, number>();
  private readonly pad: string;

  constructor(
    private readonly opts: EmbeddedFeedOptions,
    private readonly sink: Dispatch,
    private readonly log: Logger,
  ) {
    this.tickMs = Math.max(MIN_TICK_MS, 1000 / opts.rate);
    this.pad = 'x'.repeat(Math.max(0, opts.payloadBytes - 90));
    opts.tokens.forEach((t, i) => this.prices.set(t, 100 + i));
  }

  async start(): Promise<void> {
    if (this.timer) return;
    this.log.info(
      { source: 'embedded', tokens: this.opts.tokens.length, streams: this.opts.streams, rate_per_channel: this.opts.rate, tick_ms: this.tickMs },
      'embedded feed started (no KAFKA_BROKERS set)',
    );
    this.timer = setInterval(() => this.tick(), this.tickMs);
  }

  private tick(): void {
    this.owed += (this.opts.rate * this.tickMs) / 1000;
    const rounds = Math.floor(this.owed);
    if (!rounds) return;
    this.owed -= rounds;
    const ts = Date.now();
    const batch: SourceMessage[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const token of this.opts.tokens) {
        const price = this.step(token);
        for (const stream of this.opts.streams) {
          batch.push({ stream, token, ts, data: this.payload(stream, price), origin: this.origin, offset: ++this.offset });
        }
      }
    }
    this.sent += batch.length;
    this.sink.dispatch(batch);
  }

  private step(token: string): number {
    const p = this.prices.get(token)! * (1 + (Math.random() - 0.5) / 500);
    this.prices.set(token, p);
    return p;
  }

  private payload(stream: string, price: number): string {
    const pad = this.pad ? `,"pad":"${this.pad}"` : '';
    if (stream === 'trades') {
      const side = Math.random() < 0.5 ? 'buy' : 'sell';
      return `{"price":${price.toFixed(4)},"size":${(Math.random() * 10).toFixed(3)},"side":"${side}"${pad}}`;
    }
    return `{"bid":${(price * 0.9995).toFixed(4)},"ask":${(price * 1.0005).toFixed(4)},"last":${price.toFixed(4)}${pad}}`;
  }

  /** Every message of this run is seen from its first. */
  floor(_stream: string, origin: string): number | null {
    return origin === this.origin ? 0 : null;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  health(): Record<string, unknown> {
    return { kind: 'embedded', sent: this.sent, channels: this.opts.tokens.length * this.opts.streams.length, rate_per_channel: this.opts.rate };
  }
}
