// The server's own latency histograms, scraped from /metrics every second, so K2 and K3 can split
// publish-to-client latency: `odin_ws_bus_latency_seconds` (record ts -> accepted by the bus: the
// producer, broker, consumer and micro-batcher) and `odin_ws_delivery_latency_seconds` (bus flush ->
// written to the clients by a shard); what is left of the client's figure is the kernel and the
// generator. K3 also reads `odin_ws_handshake_seconds` (accepted by a shard -> 101 or refusal
// written): the server's share of the generator's handshake time.
export const BUS_LATENCY = 'odin_ws_bus_latency_seconds';
export const DELIVERY_LATENCY = 'odin_ws_delivery_latency_seconds';
export const HANDSHAKE = 'odin_ws_handshake_seconds';

interface Scrape {
  at: number;
  byMetric: Map<string, Map<string, number>>; // metric -> le -> cumulative count
}

/** Cumulative bucket counts of one histogram, summed over its label sets (e.g. shards). */
export function parseBuckets(text: string, metric = BUS_LATENCY): Map<string, number> {
  const out = new Map<string, number>();
  const prefix = `${metric}_bucket`;
  for (const line of text.split('\n')) {
    if (!line.startsWith(prefix)) continue;
    const m = /le="([^"]+)"[^}]*\}\s+([0-9.e+]+)/.exec(line);
    if (m) out.set(m[1], (out.get(m[1]) ?? 0) + Number(m[2]));
  }
  return out;
}

export class BusLatencyScraper {
  private readonly scrapes: Scrape[] = [];
  private timer: NodeJS.Timeout | null = null;
  errors = 0;

  constructor(
    private readonly metricsUrl: string,
    private readonly metrics: readonly string[] = [BUS_LATENCY],
  ) {}

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
      const text = await res.text();
      const byMetric = new Map(this.metrics.map((m) => [m, parseBuckets(text, m)]));
      if ([...byMetric.values()].some((b) => b.size)) this.scrapes.push({ at: Date.now(), byMetric });
    } catch {
      this.errors++;
    }
  }

  /** Bucket counts between the scrapes bracketing [from, to], and the bucket bound holding p50/p99. */
  between(from: number, to: number, metric = BUS_LATENCY) {
    const s = this.scrapes;
    const a = [...s].reverse().find((x) => x.at <= from) ?? s[0];
    const b = s.find((x) => x.at >= to) ?? s[s.length - 1];
    if (!a || !b || b === a) return null;
    const ab = a.byMetric.get(metric) ?? new Map<string, number>();
    const bb = b.byMetric.get(metric) ?? new Map<string, number>();
    const les = [...bb.keys()];
    const delta = les.map((le) => ({ le, n: (bb.get(le) ?? 0) - (ab.get(le) ?? 0) }));
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
