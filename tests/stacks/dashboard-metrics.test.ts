// The Grafana dashboard queries only metrics the server exports (issue 11). Exported names come
// from a real server's /metrics (embedded feed), from the Kafka consumer's registry (those appear
// only with a broker), and from an explicit list of names still being added in app/front and
// app/shard. Also: the JSON parses, every panel has a datasource and an expr, and, when the Debian
// `prometheus` package is installed (.ci/run installs it), every expr is valid PromQL (promtool)
// and evaluates without error on a real Prometheus scraping the real server, with data wherever
// the server exports the metrics it selects.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafkaMetrics } from '../../app/kafka/metrics.js';
import { ASSET_DIR } from '../../stacks/assets.js';
import { startServer, until, type RunningServer } from '../support/server.js';

/**
 * Metrics of issue 11 that the coordinator adds in app/front and app/shard. A name stays here
 * until a real server exports it; the test then finds it in /metrics as well.
 */
const PENDING_SERVER_METRICS: ReadonlyArray<{ name: string; type: 'gauge' | 'counter' | 'histogram'; labels: string[] }> = [
  { name: 'odin_ws_shard_up', type: 'gauge', labels: ['shard'] }, // 1 up, 0 down
  { name: 'odin_ws_shard_restarts_total', type: 'counter', labels: ['shard', 'cause'] }, // cause = crash|hang
  { name: 'odin_ws_shard_heartbeat_rtt_seconds', type: 'gauge', labels: ['shard'] },
  { name: 'odin_ws_shard_event_loop_lag_seconds', type: 'gauge', labels: ['shard'] }, // p99 of the last interval
  { name: 'odin_ws_shard_delivery_lag_seconds', type: 'gauge', labels: ['shard'] }, // p99 of the last interval
  { name: 'odin_ws_delivery_latency_seconds', type: 'histogram', labels: [] }, // bus flush -> client write
  { name: 'odin_ws_relays_in_flight', type: 'gauge', labels: ['shard'] },
  { name: 'odin_ws_build_info', type: 'gauge', labels: ['version'] }, // = 1
];

interface Panel {
  id: number;
  title: string;
  type: string;
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ refId?: string; expr?: string; datasource?: { type?: string; uid?: string } }>;
}

const dashboardText = readFileSync(path.join(ASSET_DIR, 'dashboard-odin-ws.json'), 'utf8');

/** The series names a histogram or summary exposes under its family name. */
function seriesNames(name: string, type: string): string[] {
  if (type === 'histogram') return [`${name}_bucket`, `${name}_sum`, `${name}_count`];
  if (type === 'summary') return [name, `${name}_sum`, `${name}_count`];
  return [name];
}

/** Family names and types from Prometheus text exposition (`# TYPE name type`). */
function exportedFromText(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) for (const n of seriesNames(m[1], m[2])) out.add(n);
  return out;
}

/** Label names seen per series name in Prometheus text exposition (series with samples only). */
function labelsFromText(text: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const m of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /gm)) {
    const set = out.get(m[1]) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(l[1]);
    out.set(m[1], set);
  }
  return out;
}

/** The label lists of `by (...)` clauses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((x) => x.trim()).filter(Boolean));
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);

/** Metric names a PromQL expression selects: identifiers that are not functions, labels or keywords. */
function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // strings (label values)
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery durations, incl. $__rate_interval
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  const names: string[] = [];
  for (const m of stripped.matchAll(/(?<![\w$:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || PROMQL_WORDS.has(m[1].toLowerCase())) continue; // a function call or a keyword
    names.push(m[1]);
  }
  return names;
}

describe('dashboard metrics', () => {
  const dashboard = JSON.parse(dashboardText) as { panels: Panel[] };
  const panels = dashboard.panels;
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })));

  let srv: RunningServer | null = null;
  let scraped = '';
  beforeAll(async () => {
    srv = await startServer({ env: { WS_SHARDS: '2' } });
    scraped = await (await fetch(srv.metricsUrl)).text();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it('parses, and every panel has a Prometheus datasource and a non-empty expr in every target', () => {
    expect(panels.length).toBeGreaterThan(0);
    for (const p of panels) {
      expect(p.datasource?.type, `panel "${p.title}" datasource`).toBe('prometheus');
      expect(p.datasource?.uid, `panel "${p.title}" datasource uid`).toBeTruthy();
      expect(p.targets?.length, `panel "${p.title}" has no targets`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(t.expr?.trim(), `panel "${p.title}" target ${t.refId}`).toBeTruthy();
        expect(t.datasource?.uid ?? p.datasource?.uid, `panel "${p.title}" target ${t.refId}`).toBe(p.datasource?.uid);
      }
    }
  });

  it('has the issue 11 panels, each on its metric', () => {
    const exprOf = (title: RegExp) => {
      const found = panels.filter((p) => title.test(p.title));
      expect(found, `no panel matching ${title}`).toHaveLength(1);
      return found[0].targets!.map((t) => t.expr).join('\n');
    };
    expect(exprOf(/shard up/i)).toMatch(/by \(shard\) \(odin_ws_shard_up\)/);
    expect(exprOf(/restarts by cause/i)).toMatch(/by \(shard, cause\) \(increase\(odin_ws_shard_restarts_total\[/);
    expect(exprOf(/heartbeat/i)).toMatch(/by \(shard\) \(odin_ws_shard_heartbeat_rtt_seconds\)/);
    expect(exprOf(/event-loop lag/i)).toMatch(/by \(shard\) \(odin_ws_shard_event_loop_lag_seconds\)/);
    expect(exprOf(/event-loop lag/i)).toMatch(/by \(shard\) \(odin_ws_shard_delivery_lag_seconds\)/);
    expect(exprOf(/bus output buffered/i)).toMatch(/by \(shard\) \(odin_ws_bus_pending_bytes\)/);
    const dropped = exprOf(/bus output dropped/i);
    expect(dropped).toMatch(/by \(shard\) \(rate\(odin_ws_bus_dropped_bytes_total\[/);
    expect(dropped).toMatch(/by \(shard\) \(rate\(odin_ws_bus_dropped_messages_total\[/);
    expect(exprOf(/relays in flight/i)).toMatch(/by \(shard\) \(odin_ws_relays_in_flight\)/);
    const delivery = exprOf(/delivery latency/i);
    for (const q of ['0.5', '0.99']) expect(delivery).toContain(`histogram_quantile(${q}, sum by (le) (rate(odin_ws_delivery_latency_seconds_bucket[`);
    expect(exprOf(/client closes/i)).toMatch(/by \(reason\) \(rate\(odin_ws_client_closes_total\[/);
    expect(exprOf(/refusals/i)).toMatch(/by \(reason\) \(rate\(odin_ws_rejected_total\[/);
    expect(exprOf(/kafka.*lag/i)).toMatch(/by \(topic, partition\) \(odin_ws_kafka_consumer_lag\)/);
    expect(exprOf(/build/i)).toMatch(/by \(version\) \(odin_ws_build_info\)/);
  });

  it('references only metric names the server exports', async () => {
    const fromServer = exportedFromText(scraped);
    expect(fromServer.has('odin_ws_connections'), 'the scrape has the server metrics').toBe(true);
    const kafkaRegistry = new Registry();
    createKafkaMetrics(kafkaRegistry, { partitionLag: () => new Map(), connected: () => false });
    const fromKafka = new Set((await kafkaRegistry.getMetricsAsJSON()).flatMap((m) => seriesNames(m.name, String(m.type))));
    const pending = new Set(PENDING_SERVER_METRICS.flatMap((m) => seriesNames(m.name, m.type)));
    const unknown: string[] = [];
    let referenced = 0;
    for (const { panel, expr } of exprs) {
      const names = metricNamesIn(expr);
      expect(names.length, `no metric found in "${expr}" (${panel})`).toBeGreaterThan(0);
      for (const n of names) {
        referenced++;
        if (!fromServer.has(n) && !fromKafka.has(n) && !pending.has(n)) unknown.push(`${n} (panel "${panel}")`);
      }
    }
    expect(referenced).toBeGreaterThan(panels.length);
    expect(unknown, 'dashboard metric names the server does not export').toEqual([]);
  });

  it('groups only by labels the selected metrics carry', async () => {
    const labels = labelsFromText(scraped);
    const kafkaRegistry = new Registry();
    createKafkaMetrics(kafkaRegistry, { partitionLag: () => new Map([['odin.trades/0', 1]]), connected: () => true });
    for (const [k, v] of labelsFromText(await kafkaRegistry.metrics())) labels.set(k, v);
    for (const m of PENDING_SERVER_METRICS) {
      for (const n of seriesNames(m.name, m.type)) if (!labels.has(n)) labels.set(n, new Set(n.endsWith('_bucket') ? [...m.labels, 'le'] : m.labels));
    }
    const wrong: string[] = [];
    let checked = 0;
    for (const { panel, expr } of exprs) {
      const sets = metricNamesIn(expr).map((n) => labels.get(n));
      // A counter with labels but no sample yet shows no labels: judge only what is known.
      if (sets.some((x) => x === undefined || x.size === 0)) continue;
      const known = new Set(sets.flatMap((x) => [...x!]));
      for (const l of groupingLabels(expr)) {
        checked++;
        if (!known.has(l)) wrong.push(`by (${l}) in "${expr}" (panel "${panel}"): the metric has ${[...known].join(', ')}`);
      }
    }
    expect(checked).toBeGreaterThan(10);
    expect(wrong).toEqual([]);
  });

  it('finds metric names in PromQL the way Prometheus reads it', () => {
    expect(metricNamesIn('histogram_quantile(0.99, sum by (le) (rate(odin_ws_x_bucket{shard="1",le!="+Inf"}[$__rate_interval])))')).toEqual(['odin_ws_x_bucket']);
    expect(metricNamesIn('sum by (topic, partition) (a_total) / on (shard) group_left (version) b offset 5m')).toEqual(['a_total', 'b']);
    expect(metricNamesIn('max(up) or vector(0)')).toEqual(['up']);
  });

  it('exports Kafka lag per topic and partition (the lag panel groups by them)', async () => {
    const registry = new Registry();
    const lag = new Map([
      ['odin.trades/0', 7],
      ['odin.trades/3', 0],
      ['odin.prices/1', 12],
    ]);
    createKafkaMetrics(registry, { partitionLag: () => lag, connected: () => true });
    let text = await registry.metrics();
    expect(text).toContain('odin_ws_kafka_consumer_lag{topic="odin.trades",partition="0"} 7');
    expect(text).toContain('odin_ws_kafka_consumer_lag{topic="odin.trades",partition="3"} 0');
    expect(text).toContain('odin_ws_kafka_consumer_lag{topic="odin.prices",partition="1"} 12');
    // A partition given up in a rebalance no longer shows its last lag.
    lag.delete('odin.prices/1');
    text = await registry.metrics();
    expect(text).not.toContain('topic="odin.prices"');
  });

  // promtool (Debian package `prometheus`) checks the syntax. Under CI it must be there: .ci/run
  // installs it; elsewhere the test says how to get it.
  const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
  const skipPromtool = !promtool && !process.env.CI;
  if (skipPromtool) console.warn('dashboard PromQL syntax check skipped: promtool is not installed (apt-get install prometheus)');
  it.skipIf(skipPromtool)('every expr is valid PromQL (promtool check rules)', () => {
    expect(promtool, 'promtool is not installed: apt-get install prometheus').toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'odin-promql-'));
    try {
      // Grafana's $__rate_interval and $__range are not PromQL: give them a concrete window.
      const rules = exprs.map((e, i) => `      - record: dashboard:expr_${i}\n        expr: ${JSON.stringify(e.expr.replace(/\$__(rate_interval|interval|range)/g, '1m'))}`);
      const file = path.join(dir, 'rules.yml');
      writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`SUCCESS: ${exprs.length} rules found`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const prometheus = spawnSync('prometheus', ['--version'], { encoding: 'utf8' }).status === 0;
  const skipPrometheus = !prometheus && !process.env.CI;
  if (skipPrometheus) console.warn('dashboard queries on a real Prometheus skipped: prometheus is not installed (apt-get install prometheus)');
  it.skipIf(skipPrometheus)('every query evaluates on a real Prometheus scraping the server, with data where the server has the metrics', async () => {
    expect(prometheus, 'prometheus is not installed: apt-get install prometheus').toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'odin-prometheus-'));
    const port = await freePort();
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: odin-ws\n    static_configs:\n      - targets: ["127.0.0.1:${srv!.port}"]\n`,
    );
    let proc: ChildProcess | null = null;
    let log = '';
    try {
      proc = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      proc.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
      const query = async (q: string) => {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`);
        return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
      };
      // rate() needs two samples in its window: wait for a few scrapes of a healthy target.
      await until(async () => (await query('sum(count_over_time(up{job="odin-ws"}[1m])) >= 4 and sum(up{job="odin-ws"}) == 1')).data?.result.length, `Prometheus scraping the server (log: ${log})`, 30_000, 250);
      const inScrape = new Set(labelsFromText(await (await fetch(srv!.metricsUrl)).text()).keys());
      const failed: string[] = [];
      for (const { panel, expr } of exprs) {
        const r = await query(expr.replace(/\$__(rate_interval|interval)/g, '5s').replace(/\$__range/g, '1m'));
        if (r.status !== 'success') failed.push(`${panel}: ${expr}: ${r.error}`);
        else if (metricNamesIn(expr).every((n) => inScrape.has(n)) && !r.data?.result.length) failed.push(`${panel}: ${expr}: no data although the server exports its metrics`);
      }
      expect(failed).toEqual([]);
    } finally {
      proc?.kill('SIGTERM');
      if (proc && proc.exitCode === null) await new Promise((r) => proc!.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
