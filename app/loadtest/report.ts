// Writes <out>/<timestamp>/result.json and a self-contained report.html (inline SVG, the chart
// data embedded as JSON in <script id="chart-data">): viewable offline, nothing fetched.
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { LoadtestResult } from './run.js';
import { escapeHtml, lineChart, type Series } from './svg-chart.js';

export interface ChartData {
  t: number[];
  connections: { generator_open: number[]; server_total: Array<number | null>; shards: Record<string, Array<number | null>> };
  deliveries_per_s: number[];
  latency_ms: { p50: Array<number | null>; p90: Array<number | null>; p99: Array<number | null>; max: Array<number | null>; generator_lag: number[] };
  refusals: { generator_refused: number[]; server_rejected: Array<number | null>; connect_errors: number[] };
  cpu: { server: Array<number | null>; generator: number[]; machine_busy_cores: Array<number | null> };
}

export function chartData(r: LoadtestResult): ChartData {
  const tl = r.timeline;
  const shardIds = [...new Set(tl.flatMap((row) => row.shards.map((s) => s.id)))].sort((a, b) => a - b);
  const shards: Record<string, Array<number | null>> = {};
  for (const id of shardIds) shards[String(id)] = tl.map((row) => row.shards.find((s) => s.id === id)?.connections ?? null);
  return {
    t: tl.map((row) => row.t),
    connections: { generator_open: tl.map((row) => row.open), server_total: tl.map((row) => row.server_connections), shards },
    deliveries_per_s: tl.map((row) => row.deliveries_per_s),
    latency_ms: { p50: tl.map((row) => row.p50), p90: tl.map((row) => row.p90), p99: tl.map((row) => row.p99), max: tl.map((row) => row.max), generator_lag: tl.map((row) => row.generator_lag_ms) },
    refusals: { generator_refused: tl.map((row) => row.refused_total), server_rejected: tl.map((row) => row.server_rejected), connect_errors: tl.map((row) => row.connect_errors_total) },
    cpu: {
      server: tl.map((row) => row.server_cpu),
      generator: tl.map((row) => row.generator_cpu),
      machine_busy_cores: tl.map((row) => (row.machine_busy === null ? null : Math.round(row.machine_busy * r.machine.cores * 100) / 100)),
    },
  };
}

const zip = (t: number[], ys: ReadonlyArray<number | null>): Array<[number, number | null]> => t.map((x, i) => [x, ys[i] ?? null]);

export function renderHtml(r: LoadtestResult): string {
  const d = chartData(r);
  const charts = [
    lineChart(
      [
        ...Object.entries(d.connections.shards).map(([id, ys]): Series => ({ name: `shard ${id}`, points: zip(d.t, ys) })),
        { name: 'server total', points: zip(d.t, d.connections.server_total), dashed: true },
        { name: 'generator open', points: zip(d.t, d.connections.generator_open), dashed: true },
      ],
      { title: 'Connections over time, per shard', yLabel: 'connections' },
    ),
    lineChart([{ name: 'deliveries/s', points: zip(d.t, d.deliveries_per_s) }], { title: 'Deliveries per second (messages received, all clients)', yLabel: 'messages/s' }),
    lineChart(
      [
        ...(['p50', 'p90', 'p99', 'max'] as const).map((k): Series => ({ name: k, points: zip(d.t, d.latency_ms[k]) })),
        { name: 'generator lag p99', points: zip(d.t, d.latency_ms.generator_lag), dashed: true },
      ],
      { title: 'Latency percentiles over time (receive time minus source ts)', yLabel: 'ms', hline: { y: r.slo.p99_ms, label: `SLO p99 ${r.slo.p99_ms} ms` } },
    ),
    lineChart(
      [
        { name: 'refused (503, generator)', points: zip(d.t, d.refusals.generator_refused) },
        { name: 'rejected (server /health)', points: zip(d.t, d.refusals.server_rejected), dashed: true },
        { name: 'connect errors', points: zip(d.t, d.refusals.connect_errors) },
      ],
      { title: 'Refusals and connect errors (cumulative)', yLabel: 'count' },
    ),
    lineChart(
      [
        { name: 'server', points: zip(d.t, d.cpu.server) },
        { name: 'generator', points: zip(d.t, d.cpu.generator) },
        { name: 'machine busy', points: zip(d.t, d.cpu.machine_busy_cores), dashed: true },
      ],
      { title: 'CPU (cores)', yLabel: 'cores' },
    ),
  ];
  const lat = r.latency_ms;
  const summary: Array<[string, string]> = [
    ['status', r.status],
    ['mode', r.mode === 'search' ? `search (steps ${r.steps.map((s) => s.target).join(', ')})` : `target ${r.target}`],
    ['capacity (within SLO)', r.capacity === null ? 'none' : String(r.capacity)],
    ['limited by', `${r.limited_by}: ${r.limited_by_detail}`],
    ['SLO', `${r.slo.met ? 'met' : 'not met'} (p99 <= ${r.slo.p99_ms} ms, zero loss, no refusals)${r.slo.violations.length ? `: ${r.slo.violations.join('; ')}` : ''}`],
    ['connections', `attempted ${r.connections.attempted}, opened ${r.connections.opened}, peak open ${r.connections.peak_open}, refused ${r.connections.refused}`],
    ['connect errors', JSON.stringify(r.connections.connect_errors)],
    ['deliveries', `${r.deliveries.total} total, ${r.deliveries.per_s}/s in the reported hold`],
    ['sequence', `gaps ${r.seq.gaps}, missing ${r.seq.missing}, duplicates ${r.seq.duplicates}, reordered ${r.seq.reordered}, epoch restarts ${r.seq.epoch_changes}`],
    ['latency (ms, reported hold)', `p50 ${lat.p50}, p90 ${lat.p90}, p99 ${lat.p99}, p99.9 ${lat.p999}, max ${lat.max} (whole run incl. ramps: p99 ${r.latency_ms_run.p99}, max ${r.latency_ms_run.max})`],
    ['per-shard spread', `${r.shard_spread} at the end of the hold (largest deviation from the mean ${r.shard_spread_pct ?? 'n/a'}%; max spread during hold ${r.shard_spread_max_hold}); ${r.shards_end.map((s) => `#${s.id}=${s.connections}`).join(' ')}`],
    ['server', `max_connections ${r.server_info.max_connections}, cpu_limit ${r.server_info.cpu_limit}, shards ${r.server_info.shards}`],
    ['generator', `${r.generator.workers} workers, ${r.generator.cpu_s} CPU-s, max worker RSS ${r.generator.rss_mb_max} MB, fd ${r.generator.fd_limit?.note ?? 'n/a'}, source IPs ${r.generator.source_ips.count}`],
    ['machine', `${r.machine.cpu_model}, ${r.machine.cores} cores, ${r.machine.memory_mb} MB`],
    ['warnings', r.warnings.join('; ') || 'none'],
  ];
  const stepRows = r.steps
    .map(
      (s) =>
        `<tr><td>${s.target}</td><td>${s.open_at_end}</td><td>${s.slo.met ? 'yes' : 'no'}</td><td>${s.hold.deliveries_per_s}</td><td>${s.latency_ms.p99 ?? ''}</td><td>${s.seq.missing}</td><td>${s.refused}</td><td>${s.server.shard_spread ?? ''}</td><td>${s.server.cpu_mean ?? ''}</td><td>${s.generator.cpu_cores}</td><td>${escapeHtml(s.limited_by)}</td></tr>`,
    )
    .join('');
  const json = JSON.stringify(d).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>odin-ws load test ${escapeHtml(r.started_at)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#111;max-width:960px}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #d1d5db;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f4f6}section{margin:18px 0}</style>
</head><body>
<h1>odin-ws load test</h1>
<p>${escapeHtml(r.url)} &middot; ${escapeHtml(r.started_at)} &middot; ${r.duration_s} s</p>
<table>${summary.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>
<h2>Steps</h2>
<table><tr><th>target</th><th>open</th><th>SLO met</th><th>deliveries/s</th><th>p99 ms</th><th>missing</th><th>refused</th><th>shard spread</th><th>server cores</th><th>generator cores</th><th>limited by</th></tr>${stepRows}</table>
${charts.map((c) => `<section>${c}</section>`).join('\n')}
<script type="application/json" id="chart-data">${json}</script>
</body></html>
`;
}

/** `reports/2025-11-28T07-10-00Z`, with a suffix if that directory already exists. */
export function reportDir(outDir: string, at: Date): string {
  const stamp = at.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
  let dir = path.resolve(outDir, stamp);
  for (let i = 2; existsSync(dir) && i < 1000; i++) dir = path.resolve(outDir, `${stamp}-${i}`);
  return dir;
}

export function writeReport(r: LoadtestResult, outDir: string): { dir: string; result_json: string; report_html: string } {
  const dir = reportDir(outDir, new Date(r.started_at));
  mkdirSync(dir, { recursive: true });
  const files = { dir, result_json: path.join(dir, 'result.json'), report_html: path.join(dir, 'report.html') };
  writeFileSync(files.result_json, `${JSON.stringify({ ...r, files }, null, 2)}\n`);
  writeFileSync(files.report_html, renderHtml(r));
  return files;
}
