// Synthetic market data: a random walk per token, one record shape per stream. Each value carries
// its own seq per (stream, token), i.e. per channel, so a subscriber can check it saw every record.

import { streamOfTopic } from '../common/channel.js';

export type Stream = 'trades' | 'prices';

export function streamOf(topic: string): Stream {
  const s = streamOfTopic(topic);
  if (s !== 'trades' && s !== 'prices') throw new Error(`topic ${topic} is neither .trades nor .prices`);
  return s;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export class Market {
  private readonly price = new Map<string, number>();
  private readonly seq = new Map<string, number>();

  constructor(
    tokens: readonly string[],
    private readonly random: () => number = Math.random,
  ) {
    tokens.forEach((t, i) => this.price.set(t, 50 + ((i * 37) % 200)));
  }

  /** The next record value for (stream, token), as a JSON-serialisable object. */
  next(stream: Stream, token: string, now: number): Record<string, unknown> {
    const key = `${stream}:${token}`;
    const seq = (this.seq.get(key) ?? 0) + 1;
    this.seq.set(key, seq);
    const last = this.price.get(token) ?? 100;
    const px = Math.max(0.01, last * (1 + (this.random() - 0.5) * 0.002));
    this.price.set(token, px);
    if (stream === 'trades') {
      return { seq, ts: now, token, price: round(px, 4), size: 1 + Math.floor(this.random() * 500), side: this.random() < 0.5 ? 'buy' : 'sell' };
    }
    const half = px * 0.0005;
    return { seq, ts: now, token, bid: round(px - half, 4), ask: round(px + half, 4), mid: round(px, 4) };
  }
}
