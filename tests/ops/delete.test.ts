// gcp:delete: prints what goes, refuses without --yes when there is no terminal, keeps the static
// address unless --all, turns off the WS VM's deletion protection before destroying it.
import { afterEach, describe, expect, it } from 'vitest';
import { createFakes, runScript, stackOutputs, summary, type Fakes, type Rule } from './support/fakes.js';

const SCRIPT = 'scripts/ops/delete.mjs';
const LIST = ['Stack name                     Path', ...['bootstrap', 'network', 'backend', 'ws', 'loadtest'].map((s) => `${s.padEnd(31)}cdktf.out/stacks/${s}`)].join('\n') + '\n';
const RULES: Rule[] = [
  { tool: 'cdktf', match: '^list', stdout: LIST },
  { tool: 'cdktf', match: '^output', outputs: stackOutputs() },
  { tool: 'cdktf', match: '^destroy', stdout: 'Destroy complete! Resources: 14 destroyed.\n' },
  { tool: 'gcloud', match: '^compute instances update', stdout: 'Updated\n' },
];

describe('gcp:delete', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it('refuses without --yes when there is no terminal to confirm at, and destroys nothing', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not confirmed: nothing destroyed (pass --yes');
    expect(r.stdout).toContain('stacks: loadtest, ws, backend, network');
    expect(fakes.calls().some((c) => c.argv[0] === 'destroy' || c.argv[1] === 'instances')).toBe(false);
  });

  it('with --yes keeps the bootstrap stack (static address, secrets), lifts deletion protection, then destroys the rest', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, ['--yes'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}ws_instance: odin-ws$/m);
    expect(r.stdout).toContain('kept: the static address odin-dev-ws-external (127.0.0.1), the secrets, the APIs');
    expect(summary(fakes.calls(), 7)).toEqual([
      'cdktf list',
      'cdktf output * --outputs-file ' + fakes.calls()[1].argv[3],
      'gcloud compute instances update odin-dev-ws --no-deletion-protection --zone us-central1-a',
      'cdktf destroy loadtest ws backend network --auto-approve',
    ]);
  });

  it('--all also destroys the bootstrap stack; the state bucket is never destroyed, its removal is printed', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, ['--yes', '--all'], { ...fakes.env, TF_STATE_BUCKET: 'odin-tf-state' });
    expect(r.code, r.stderr).toBe(0);
    const destroy = fakes.calls().find((c) => c.argv[0] === 'destroy')!;
    expect(destroy.argv).toEqual(['destroy', 'loadtest', 'ws', 'backend', 'network', 'bootstrap', '--auto-approve']);
    expect(r.stdout).toContain('gcloud storage rm -r gs://odin-tf-state');
  });

  it("still destroys when the outputs are gone (a half-deleted deployment), and fails with destroy's stderr", async () => {
    fakes = createFakes({
      rules: [
        { tool: 'cdktf', match: '^output', exit: 1, stderr: 'No state\n' },
        { tool: 'cdktf', match: '^destroy', exit: 1, stderr: 'Error: deleting network: resourceInUseByAnotherResource\n' },
        { tool: 'gcloud', match: '^compute instances update', exit: 1, stderr: 'not found\n' },
        ...RULES,
      ],
    });
    const r = await runScript(SCRIPT, ['--yes'], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('resourceInUseByAnotherResource');
    expect(summary(fakes.calls(), 1)).toEqual(['cdktf list', 'cdktf output', 'gcloud compute', 'cdktf destroy']);
  });
});
