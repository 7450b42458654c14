// gcp:health:all against a locally started server: its real detailed /health body is what the fake
// SSH probe of the WS VM answers (on GCP it is read there from loopback), and its real public
// /health is fetched from here (the fake outputs point at it); the rest of what only the VPC sees
// comes from the fake gcloud's canned SSH probe output.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';
import { createFakes, outputRules, runScript, stackOutputs, type Fakes, type Rule } from './support/fakes.js';

const SCRIPT = 'scripts/ops/health-all.mjs';
const PUBLISHER = JSON.stringify({ rate: 200, sent: 12345, errors: 0, broker: { connected: true }, uptime_s: 60 });

let detail = '';
function rules(healthUrl: string, { units = 'active\nactive\nactive\nactive\nactive', kafka = 'open', grafana = '200' } = {}): Rule[] {
  return [
    ...outputRules(stackOutputs({ healthUrl })),
    { tool: 'gcloud', match: '^compute ssh odin-ws ', stdout: `@@health\n${detail}\n@@http 200\n@@units\nactive\n@@kafka\n${kafka}\n` },
    { tool: 'gcloud', match: '^compute ssh odin-backend ', stdout: `@@units\n${units}\n@@publisher\n${PUBLISHER}\n@@grafana\n${grafana}\n@@console\n200\n` },
  ];
}

describe('gcp:health:all', () => {
  let server: RunningServer;
  let fakes: Fakes;

  beforeAll(async () => {
    server = await startServer();
    detail = await (await fetch(server.healthUrl)).text();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(() => fakes?.cleanup());

  it('prints the real /health per shard, the publisher status and every check; exits 0 when all are up', async () => {
    fakes = createFakes({ rules: rules(server.healthUrl) });
    const r = await runScript(SCRIPT, [], fakes.env);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const health = await (await fetch(server.healthUrl)).json();
    expect(health.shards.length).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/^shard\s+pid\s+up\s+connections\s+channels\s+restarts$/m);
    for (const s of health.shards) expect(r.stdout).toMatch(new RegExp(`^${s.id}\\s+${s.pid}\\s+yes\\s+\\d+\\s+\\d+\\s+\\d+$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^OK\\s+ws /health\\s+${health.shards.length} shards up`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^OK\\s+ws public /health\\s+${server.healthUrl} ok$`, 'm'));
    expect(r.stdout).toMatch(/^OK\s+publisher \/status\s+rate 200\/s, sent 12345, errors 0, broker connected/m);
    for (const name of ['ws odin-ws', 'redpanda from ws', 'backend redpanda', 'backend grafana-server', 'grafana', 'redpanda console']) {
      expect(r.stdout).toMatch(new RegExp(`^OK\\s+${name}\\s`, 'm'));
    }
    expect(r.stdout).toContain('all healthy');
    // The probes ran over IAP SSH with the addresses from the outputs.
    const backendProbe = fakes.calls().find((c) => c.argv[2] === 'odin-backend')!;
    expect(backendProbe.argv.join(' ')).toContain('curl -sS -m 5 http://10.10.0.3:3003/status');
    const wsProbe = fakes.calls().find((c) => c.argv[2] === 'odin-ws')!;
    expect(wsProbe.argv.join(' ')).toContain('/dev/tcp/10.10.0.3/9092');
    // The detail comes from the VM's loopback, the one address WS_METRICS_ALLOW always admits.
    expect(wsProbe.argv.join(' ')).toContain('http://127.0.0.1:3004/health');
  });

  it('exits non-zero when a backend service is down or Redpanda is unreachable from the WS VM', async () => {
    fakes = createFakes({ rules: rules(server.healthUrl, { units: 'active\nfailed\nactive\nactive\nactive', kafka: 'closed' }) });
    const r = await runScript(SCRIPT, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^DOWN\s+backend redpanda\s+failed$/m);
    expect(r.stdout).toMatch(/^DOWN\s+redpanda from ws\s+10\.10\.0\.3:9092 closed$/m);
    expect(r.stdout).toMatch(/^OK\s+ws \/health/m);
    expect(r.stdout).toContain('2 check(s) DOWN');
  });

  it('exits non-zero when an SSH probe fails', async () => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', match: '^compute ssh odin-backend ', exit: 255, stderr: 'ERROR: (gcloud.compute.start-iap-tunnel) Error while connecting [4003: failed to connect to backend]\n' }, ...rules(server.healthUrl)] });
    const r = await runScript(SCRIPT, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^DOWN\s+publisher \/status\s+ssh failed: .*4003: failed to connect to backend/m);
    expect(r.stdout).toMatch(/^OK\s+ws odin-ws/m);
  });

  it('exits non-zero when the WS server is down (on the VM and on the public port)', async () => {
    await server.stop();
    fakes = createFakes({
      rules: [{ tool: 'gcloud', match: '^compute ssh odin-ws ', stdout: `@@health\ncurl: (7) Failed to connect to 127.0.0.1 port 3004\n@@http 000\n@@units\nfailed\n@@kafka\nopen\n` }, ...rules(server.healthUrl)],
    });
    const r = await runScript(SCRIPT, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^DOWN\s+ws \/health\s+HTTP 0, not a \/health body$/m);
    expect(r.stdout).toMatch(/^DOWN\s+ws public \/health\s+.*unreachable \(ECONNREFUSED\)$/m);
    expect(r.stdout).not.toContain('all healthy');
  });
});
