// The load generator against the real server (dist/server.mjs, 3 shards, embedded feed): a small
// capacity run, and a run past the guard's limit.
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';
import { runLoadtestCli, tempOut } from './run-loadtest.js';

describe('loadtest against the real server', () => {
  let srv: RunningServer | null = null;
  afterEach(async () => {
    await srv?.stop();
    srv = null;
  });

  it('runs 300 connections: fields present, no gaps, shards within 2% of the mean + 4, HTML with chart data', async () => {
    srv = await startServer({ env: { WS_SHARDS: '3', FEED_RATE: '5', FEED_TOKENS: 'AAA,BBB' } });
    const out = tempOut();
    const run = await runLoadtestCli(['--url', srv.wsUrl, '--target', '300', '--hold', '3', '--ramp', '1000', '--channels', 'trades:*', '--out', out, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    for (const k of ['schema', 'status', 'mode', 'machine', 'generator', 'server_info', 'target', 'capacity', 'reached', 'slo', 'limited_by', 'limited_by_detail', 'connections', 'refusals', 'deliveries', 'seq', 'latency_ms', 'shard_spread', 'shard_spread_pct', 'steps', 'timeline', 'files']) {
      expect(r, k).toHaveProperty(k);
    }
    expect(r.status).toBe('completed');
    expect(r.health_url).toBe(srv.healthUrl);
    expect(r.connections).toMatchObject({ attempted: 300, opened: 300, refused: 0, connect_errors: {}, closed_by_server: {} });
    expect(r.reached).toBe(true);
    expect(r.seq).toEqual({ gaps: 0, missing: 0, duplicates: 0, reordered: 0, epoch_changes: 0 });
    expect(r.deliveries.total).toBeGreaterThan(0);
    expect(r.latency_ms_run.count).toBe(r.deliveries.total);
    expect(r.latency_ms.count).toBe(r.deliveries.hold);
    expect(r.deliveries.hold).toBe(r.steps[0].hold.deliveries);
    // Every handshake of the step is timed, whatever its outcome (here all 300 opened).
    expect(r.steps[0].handshake_ms.count).toBe(300);
    expect(r.steps[0].handshake_ms.p99).toBeGreaterThanOrEqual(r.steps[0].handshake_ms.p50);
    expect(r.server_info).toMatchObject({ shards: 3, max_connections: 18000 });
    expect(r.shards_end).toHaveLength(3);
    expect(r.shards_end.reduce((a: number, s: { connections: number }) => a + s.connections, 0)).toBe(300);
    // The balance bound (2% at 1,000 per shard) is tests/server/accept-path.test.ts's. Here, at 100
    // per shard, a shard descheduled under the suite's load has its accept queue filled by the
    // kernel's hash meanwhile and takes it all at once: CI measured 7 and once 15 off the mean.
    // This is a gross check (a shard left out or doubled fails it); the report's figures follow.
    const mean = 300 / 3;
    for (const s of r.shards_end) expect(Math.abs(s.connections - mean), `shard ${s.id}`).toBeLessThanOrEqual(20);
    expect(r.shard_spread_pct).toBeCloseTo((Math.max(...r.shards_end.map((s: { connections: number }) => Math.abs(s.connections - mean))) / mean) * 100, 1);
    expect(r.shard_spread).toBe(Math.max(...r.shards_end.map((s: { connections: number }) => s.connections)) - Math.min(...r.shards_end.map((s: { connections: number }) => s.connections)));
    expect(r.generator.source_ips.count).toBeGreaterThan(1);
    expect(r.timeline.length).toBeGreaterThan(0);
    // The shards' saturation inputs ride along (the harness turns the verdict off: none saturated).
    const sampled = r.timeline.filter((row: { server_connections: number | null }) => row.server_connections !== null);
    expect(sampled.length).toBeGreaterThan(0);
    for (const row of sampled) {
      expect(typeof row.server_loop_lag_ms, JSON.stringify(row)).toBe('number');
      expect(typeof row.server_delivery_lag_ms, JSON.stringify(row)).toBe('number');
      expect(row.saturated_shards).toBe(0);
    }
    expect(typeof r.limited_by).toBe('string');

    const html = readFileSync(r.files.report_html, 'utf8');
    expect(existsSync(r.files.result_json)).toBe(true);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org)/);
    const m = /<script type="application\/json" id="chart-data">([\s\S]*?)<\/script>/.exec(html);
    expect(m).not.toBeNull();
    const charts = JSON.parse(m![1]);
    expect(Object.keys(charts.connections.shards).sort()).toEqual(['0', '1', '2']);
    expect(Math.max(...charts.connections.generator_open)).toBe(300);
    expect(charts.deliveries_per_s.some((x: number) => x > 0)).toBe(true);
    for (const k of ['p50', 'p90', 'p99', 'max']) expect(charts.latency_ms[k]).toHaveLength(charts.t.length);
    expect(charts.refusals.generator_refused).toHaveLength(charts.t.length);
    expect((html.match(/<svg /g) ?? []).length).toBeGreaterThanOrEqual(4);
  });

  // Idle clients use the handshake-only `lite` client by default; `ws` is the protocol-v1 client.
  it.each(['lite', 'ws'])('counts 503s past WS_MAX_CONNECTIONS as refusals, not connect errors, and blames the guard (%s client)', async (client) => {
    srv = await startServer({ env: { WS_SHARDS: '2', WS_MAX_CONNECTIONS: '50', WS_CPU_LIMIT: '64' } });
    const run = await runLoadtestCli(['--url', srv.wsUrl, '--target', '80', '--hold', '1', '--channels', 'none', '--client', client, '--out', tempOut(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    expect(r.connections).toMatchObject({ attempted: 80, opened: 50, refused: 30, connect_errors: {} });
    expect(r.refusals).toMatchObject({ count: 30, retry_after: '5', server_rejected: 30 });
    expect(r.reached).toBe(false);
    expect(r.slo.met).toBe(false);
    expect(r.limited_by).toBe('guard_refusals');
    expect(r.limited_by_detail).toMatch(/above the guard's max_connections 50/);
    expect(r.limited_by_detail).toMatch(/max_connections=30/);
    expect(r.steps[0].server.rejected_by_reason.max_connections).toBe(30);
    expect(r.config.client).toBe(client);
    expect(r.steps[0].retries).toBe(0);
  });

  // Refused clients come back after Retry-After (1 s here) while the hold lasts, as real ones do:
  // each return is one more timed handshake and, the server still full, one more refusal.
  it.each(['lite', 'ws'])('--retry-refused: refused clients retry after Retry-After, counted apart from new clients (%s client)', async (client) => {
    srv = await startServer({ env: { WS_SHARDS: '2', WS_MAX_CONNECTIONS: '50', WS_CPU_LIMIT: '64', WS_RETRY_AFTER_S: '1' } });
    const run = await runLoadtestCli(['--url', srv.wsUrl, '--target', '60', '--hold', '4', '--channels', 'none', '--client', client, '--retry-refused', '--out', tempOut(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    const st = r.steps[0];
    expect(r.connections).toMatchObject({ attempted: 60, opened: 50, connect_errors: {} });
    expect(st.retries).toBeGreaterThanOrEqual(10); // every refused client came back at least once
    // Each retry is refused again; one dialled just before a window boundary counts on either side.
    expect(Math.abs(st.refused - 10 - st.retries)).toBeLessThanOrEqual(1);
    expect(st.handshake_ms.count).toBeGreaterThanOrEqual(60 + st.retries - 10); // a retry still in flight at the end is not timed
    expect(st.server.rejected_by_reason.max_connections).toBe(st.refused);
  });
});
