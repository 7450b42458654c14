// Latency histograms (ms). Workers encode their per-interval histogram; the coordinator decodes
// and adds them, so percentiles are exact across processes rather than averaged.
import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

export const newHistogram = (): Histogram =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: 3, autoResize: true });

export const encodeHistogram = (h: Histogram): string | null => (h.totalCount ? hdr.encodeIntoCompressedBase64(h) : null);

export const decodeHistogram = (encoded: string): Histogram => hdr.decodeFromCompressedBase64(encoded);

export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
}

export function summarize(h: Histogram): LatencySummary {
  if (!h.totalCount) return { count: 0, p50: null, p90: null, p99: null, p999: null, max: null, mean: null };
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    mean: Math.round(h.mean * 100) / 100,
  };
}
