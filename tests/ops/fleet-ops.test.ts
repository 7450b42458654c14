// gcp:stop/start, gcp:logs and gcp:delete on a fleet (ODIN_ENV=fleet: ws.count 3, loadtest.count 2),
// fake gcloud/terraform: the group is resized (never its nodes stopped: autohealing would recreate
// them), logs come from every node, and delete lifts no deletion protection (the nodes have none).
import { afterEach, describe, expect, it } from 'vitest';
import { createFakes, inStack, outputRules, runScript, stackOutputs, type Fakes } from './support/fakes.js';

const FLEET = { ODIN_ENV: 'fleet' };
const url = (zone: string, name: string) => `https://www.googleapis.com/compute/v1/projects/odin-test/zones/${zone}/instances/${name}`;

describe('a fleet: stop, start, logs, delete', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());
  const list = { tool: 'gcloud' as const, match: '^compute instances list', stdout: 'odin-fleet-backend\nodin-fleet-ws-a1b2\n' };

  it('stop resizes the group to 0 before stopping the backend; start starts the backend, then the group back to ws.count', async () => {
    fakes = createFakes({ rules: [list, { tool: 'gcloud', match: '^compute (instances (stop|start)|instance-groups managed resize)', stdout: 'ok\n' }] });
    let r = await runScript('scripts/ops/power.mjs', ['stop'], { ...fakes.env, ...FLEET });
    expect(r.code, r.stderr).toBe(0);
    let calls = fakes.calls().map((c) => c.argv.join(' '));
    expect(calls[0]).toBe('compute instance-groups managed resize odin-fleet-ws-group --size=0 --region us-central1 --project odin-test');
    // Only the backend: fleet nodes are never stopped one by one.
    expect(calls).toContain('compute instances stop odin-fleet-backend --zone us-central1-a --project odin-test');
    expect(r.stdout).toMatch(/Still billed while stopped: disks 3\.00 \+ static address 3\.65 \+ forwarding rules 18\.25 = 24\.90 USD\/month/);
    fakes.cleanup();
    fakes = createFakes({ rules: [list, { tool: 'gcloud', match: '^compute (instances (stop|start)|instance-groups managed resize)', stdout: 'ok\n' }] });
    r = await runScript('scripts/ops/power.mjs', ['start'], { ...fakes.env, ...FLEET });
    expect(r.code, r.stderr).toBe(0);
    calls = fakes.calls().map((c) => c.argv.join(' '));
    expect(calls.indexOf('compute instances start odin-fleet-backend --zone us-central1-a --project odin-test')).toBeLessThan(
      calls.indexOf('compute instance-groups managed resize odin-fleet-ws-group --size=3 --region us-central1 --project odin-test'),
    );
  });

  it('logs ws: the journal of every node, each in its zone', async () => {
    const { ws: _single, ...outputs } = stackOutputs();
    fakes = createFakes({
      rules: [
        ...outputRules(outputs),
        { tool: 'gcloud', match: '^compute instance-groups managed list-instances ', stdout: JSON.stringify([{ instance: url('us-central1-b', 'odin-fleet-ws-c3d4') }, { instance: url('us-central1-a', 'odin-fleet-ws-a1b2') }]) },
        { tool: 'gcloud', match: '^compute ssh ', stdout: 'a log line\n' },
      ],
    });
    const r = await runScript('scripts/ops/logs.mjs', ['ws', '--lines', '5'], { ...fakes.env, ...FLEET });
    expect(r.code, r.stderr).toBe(0);
    const ssh = fakes.calls().filter((c) => c.argv[1] === 'ssh');
    expect(ssh.map((c) => [c.argv[2], c.argv[c.argv.indexOf('--zone') + 1]])).toEqual([['odin-fleet-ws-a1b2', 'us-central1-a'], ['odin-fleet-ws-c3d4', 'us-central1-b']]);
    expect(r.stdout).toContain('== ws (odin-fleet-ws-a1b2: odin-ws)');
  });

  it('delete destroys the stacks without touching deletion protection', async () => {
    fakes = createFakes({ rules: [...outputRules(stackOutputs()), { tool: 'terraform', match: inStack('[\\w-]+', 'destroy'), stdout: 'Destroy complete!\n' }] });
    const r = await runScript('scripts/ops/delete.mjs', ['--yes'], { ...fakes.env, ...FLEET });
    expect(r.code, r.stderr).toBe(0);
    expect(fakes.calls().some((c) => c.argv.includes('--no-deletion-protection'))).toBe(false);
    expect(fakes.calls().filter((c) => c.argv[1] === 'destroy').length).toBe(4);
  });
});
