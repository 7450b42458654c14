// The server's own `odin_ws_bus_latency_seconds` histogram (record ts -> accepted by the bus),
// scraped from /metrics every second, so K2 can split publish-to-client latency into the Kafka part
// (producer, broker, consumer, micro-batcher) and the fan-out part (bus -> shard -> client).
const METRIC = 'odin_ws_bus_latency_seconds_bucket';

interface Scrape {
  at: number;
  buckets: Map<string, number>; // le -> cumulative count
}

export function parseBuckets(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(METRIC)) continue;
    const m = /le="([^"]+)"\}\s+([0-9.e+]+)/.exec(line);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

export class BusLatencyScraper {
  private readonly scrapes: Scrape[] = [];
  private timer: NodeJS.Timeout | null = null;
  errors = 0;

  constructor(private readonly metricsUrl: string) {}

  start(): this {
    void this.scrape();
    this.timer = setInterval(() => void this.scrape(), 1_000);
    return this;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.scrape();
  }

  private async scrape() {
    try {
      const res = await fetch(this.metricsUrl, { signal: AbortSignal.timeout(2_000) });
      const buckets = parseBuckets(await res.text());
      if (buckets.size) this.scrapes.push({ at: Date.now(), buckets });
    } catch {
      this.errors++;
    }
  }

  /** Bucket counts between the scrapes bracketing [from, to], and the bucket bound holding p50/p99. */
  between(from: number, to: number) {
    const s = this.scrapes;
    const a = [...s].reverse().find((x) => x.at <= from) ?? s[0];
    const b = s.find((x) => x.at >= to) ?? s[s.length - 1];
    if (!a || !b || b === a) return null;
    const les = [...b.buckets.keys()];
    const delta = les.map((le) => ({ le, n: (b.buckets.get(le) ?? 0) - (a.buckets.get(le) ?? 0) }));
    const count = delta.find((d) => d.le === '+Inf')?.n ?? 0;
    const bound = (q: number) => {
      const hit = delta.find((d) => d.n >= q * count);
      return !hit ? null : hit.le === '+Inf' ? '+Inf' : `<= ${Number(hit.le) * 1000} ms`;
    };
    return {
      window_s: Math.round((b.at - a.at) / 100) / 10,
      count,
      p50: count ? bound(0.5) : null,
      p99: count ? bound(0.99) : null,
      cumulative_ms: Object.fromEntries(delta.map((d) => [d.le === '+Inf' ? '+Inf' : String(Number(d.le) * 1000), d.n])),
    };
  }
}
