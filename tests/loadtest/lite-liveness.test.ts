// The handshake-only lite client against the real server's liveness checks: it answers pings
// (so an idle run outlives many ping periods), and an idle-timeout close (4009) is reported by
// its code and named as the run's limit, not charged to a resource.
import { afterEach, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';
import { runLoadtestCli, tempOut } from './run-loadtest.js';

const PING_MS = 300;

async function closesByReason(srv: RunningServer, reason: string): Promise<number> {
  const text = await (await fetch(srv.metricsUrl)).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('odin_ws_client_closes_total{') && line.includes(`reason="${reason}"`)) n += Number(line.split(' ').pop());
  return n;
}

describe('lite client and the server liveness checks', () => {
  let srv: RunningServer | null = null;
  afterEach(async () => {
    await srv?.stop();
    srv = null;
  });

  it('answers pings: idle connections held through 10 ping periods are not cut off', async () => {
    srv = await startServer({ env: { WS_SHARDS: '1', WS_PING_INTERVAL_MS: String(PING_MS), WS_IDLE_TIMEOUT_MS: '0' } });
    const run = await runLoadtestCli(['--url', srv.wsUrl, '--target', '20', '--hold', String((10 * PING_MS) / 1000), '--channels', 'none', '--out', tempOut(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    expect(r.config.client).toBe('lite');
    expect(r.connections).toMatchObject({ opened: 20, closed_by_server: {} });
    expect(r.steps[0].open_at_end).toBe(20);
    expect(r.limited_by).toBe('none');
    expect(await closesByReason(srv, 'ping_timeout')).toBe(0);
  });

  it.each(['lite', 'ws'])('reports idle-timeout closes as 4009 and limited_by idle_timeout (%s client)', async (client) => {
    srv = await startServer({ env: { WS_SHARDS: '1', WS_PING_INTERVAL_MS: String(PING_MS), WS_IDLE_TIMEOUT_MS: '800' } });
    const run = await runLoadtestCli(['--url', srv.wsUrl, '--target', '10', '--hold', '3', '--channels', 'none', '--client', client, '--out', tempOut(), '--json']);
    expect(run.code, run.stderr).toBe(0);
    const r = run.result;
    expect(r.connections).toMatchObject({ opened: 10, closed_by_server: { '4009': 10 } });
    expect(r.slo.met).toBe(false);
    expect(r.limited_by).toBe('idle_timeout');
    expect(r.limited_by_detail).toMatch(/WS_IDLE_TIMEOUT_MS=0/);
    expect(await closesByReason(srv, 'idle')).toBe(10);
  });
});
