// gcp:stop / gcp:start and gcp:grafana / gcp:console against fake gcloud.
import { afterEach, describe, expect, it } from 'vitest';
import { createFakes, runScript, type Fakes } from './support/fakes.js';

describe('gcp:stop and gcp:start', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());
  const list = { tool: 'gcloud' as const, match: '^compute instances list', stdout: 'odin-dev-ws\nodin-dev-backend\nsomeone-elses-vm\n' };

  it('stop stops the environment VMs that exist (disks and address kept) and prints what stopping still costs', async () => {
    fakes = createFakes({ rules: [list, { tool: 'gcloud', match: '^compute instances stop', stdout: 'Stopped\n' }] });
    const r = await runScript('scripts/ops/power.mjs', ['stop'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    const calls = fakes.calls().map((c) => c.argv.join(' '));
    expect(calls[0]).toBe('compute instances list --project odin-test --zones=us-central1-a --filter=labels.env=dev --format=value(name)');
    expect(calls[1]).toBe('compute instances stop odin-dev-ws odin-dev-backend --zone us-central1-a --project odin-test');
    // Disks 20 + 30 GB of pd-balanced and the unused static address, at the table's prices.
    expect(r.stdout).toMatch(/Still billed while stopped: disks 5\.00 \+ static address 7\.30 = 12\.30 USD\/month \(list prices of \d{4}-\d{2}-\d{2}\)/);
    expect(calls.some((c) => /delete|destroy/.test(c))).toBe(false);
  });

  it('start starts them again', async () => {
    fakes = createFakes({ rules: [list, { tool: 'gcloud', match: '^compute instances start', stdout: 'Started\n' }] });
    const r = await runScript('scripts/ops/power.mjs', ['start'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(fakes.calls()[1].argv.join(' ')).toBe('compute instances start odin-dev-ws odin-dev-backend --zone us-central1-a --project odin-test');
  });

  it('refuses anything but stop or start (exit 2, nothing run)', async () => {
    fakes = createFakes();
    const r = await runScript('scripts/ops/power.mjs', ['reboot'], fakes.env);
    expect(r.code).toBe(2);
    expect(fakes.calls()).toEqual([]);
  });
});

describe('gcp:grafana and gcp:console', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it.each([
    ['grafana', [], '3010', '3010'],
    ['console', [], '8080', '8080'],
    ['grafana', ['--port', '13010'], '3010', '13010'],
  ])('%s %s opens an IAP tunnel to the backend VM', async (ui, extra, remote, local) => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', match: '^compute start-iap-tunnel', stdout: 'Listening on port\n' }] });
    const r = await runScript('scripts/ops/tunnel.mjs', [ui, ...extra], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(fakes.calls().map((c) => c.argv.join(' '))).toEqual([
      `compute start-iap-tunnel odin-dev-backend ${remote} --local-host-port=localhost:${local} --zone us-central1-a --project odin-test`,
    ]);
    expect(r.stdout).toContain(`http://localhost:${local}/`);
  });

  it('refuses an unknown UI or a privileged local port', async () => {
    fakes = createFakes();
    for (const args of [['prometheus'], ['grafana', '--port', '80']]) expect((await runScript('scripts/ops/tunnel.mjs', args, fakes.env)).code).toBe(2);
    expect(fakes.calls()).toEqual([]);
  });
});
