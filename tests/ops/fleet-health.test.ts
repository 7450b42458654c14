// gcp:health:all for a fleet (ODIN_ENV=fleet: ws.count 3), fake gcloud: every node of the group is
// probed over IAP SSH in its own zone (its real /health body from a local server), its state in
// the balancer is shown, and one node out of the balancer makes the run exit 1, naming it.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';
import { createFakes, outputRules, runScript, stackOutputs, type Fakes, type Rule } from './support/fakes.js';

const NODES = ['odin-fleet-ws-a1b2', 'odin-fleet-ws-c3d4'];
const ZONES = ['us-central1-a', 'us-central1-b'];
const url = (i: number) => `https://www.googleapis.com/compute/v1/projects/odin-test/zones/${ZONES[i]}/instances/${NODES[i]}`;
const PUBLISHER = JSON.stringify({ rate: 200, sent: 1, errors: 0, broker: { connected: true }, uptime_s: 60 });

describe('gcp:health:all for a fleet', () => {
  let server: RunningServer;
  let fakes: Fakes;
  let detail = '';
  beforeAll(async () => {
    server = await startServer();
    detail = await (await fetch(server.healthUrl)).text();
  });
  afterAll(async () => server?.stop());
  afterEach(() => fakes?.cleanup());

  const rules = (states: string[]): Rule[] => {
    const { ws: _single, ...outputs } = stackOutputs({ healthUrl: server.healthUrl });
    return [
      ...outputRules(outputs),
      { tool: 'gcloud', match: '^compute instance-groups managed list-instances odin-fleet-ws-group ', stdout: JSON.stringify(NODES.map((_, i) => ({ instance: url(i), instanceStatus: 'RUNNING' }))) },
      { tool: 'gcloud', match: '^compute backend-services get-health odin-fleet-ws-backend ', stdout: JSON.stringify([{ status: { healthStatus: states.map((healthState, i) => ({ instance: url(i), healthState })) } }]) },
      { tool: 'gcloud', match: '^compute ssh odin-fleet-ws-', stdout: `@@health\n${detail}\n@@http 200\n@@units\nactive\n@@kafka\nopen\n` },
      { tool: 'gcloud', match: '^compute ssh odin-backend ', stdout: `@@units\nactive\nactive\nactive\nactive\nactive\n@@publisher\n${PUBLISHER}\n@@grafana\n200\n@@console\n200\n` },
    ];
  };

  it('probes every node in its zone and shows it in the balancer; exits 0 when all are up', async () => {
    fakes = createFakes({ rules: rules(['HEALTHY', 'HEALTHY']) });
    const r = await runScript('scripts/ops/health-all.mjs', [], { ...fakes.env, ODIN_ENV: 'fleet' });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const [i, n] of NODES.entries()) {
      expect(r.stdout).toMatch(new RegExp(`^OK\\s+${n} /health\\s+\\d+ shards up`, 'm'));
      expect(r.stdout).toMatch(new RegExp(`^OK\\s+${n} in balancer\\s+HEALTHY$`, 'm'));
      const probe = fakes.calls().find((c) => c.argv[2] === n)!;
      expect(probe.argv).toEqual(expect.arrayContaining(['--zone', ZONES[i], '--tunnel-through-iap']));
    }
    expect(r.stdout).toMatch(/^OK\s+ws group odin-fleet-ws-group\s+2 node\(s\)/m);
    expect(r.stdout).toContain('all healthy');
  });

  it('a node out of the balancer is DOWN, named; exit 1', async () => {
    fakes = createFakes({ rules: rules(['HEALTHY', 'UNHEALTHY']) });
    const r = await runScript('scripts/ops/health-all.mjs', [], { ...fakes.env, ODIN_ENV: 'fleet' });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^DOWN\\s+${NODES[1]} in balancer\\s+UNHEALTHY$`, 'm'));
    expect(r.stdout).toContain('1 check(s) DOWN');
  });
});
