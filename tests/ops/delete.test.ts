// gcp:delete: prints what goes, refuses without --yes when there is no terminal, keeps the static
// address unless --all, turns off the WS VM's deletion protection before destroying, and destroys
// stack by stack in the reverse of the deploy order (fake gcloud/terraform, real synth).
import { afterEach, describe, expect, it } from 'vitest';
import { createFakes, inStack, outputRules, runScript, stackOf, stackOutputs, summary, type Call, type Fakes, type Rule } from './support/fakes.js';

const SCRIPT = 'scripts/ops/delete.mjs';
const RULES: Rule[] = [
  ...outputRules(stackOutputs()),
  { tool: 'terraform', match: inStack('[\\w-]+', 'destroy'), stdout: 'Destroy complete! Resources: 14 destroyed.\n' },
  { tool: 'gcloud', match: '^compute instances update', stdout: 'Updated\n' },
];
const destroyed = (calls: Call[]) => calls.filter((c) => c.tool === 'terraform' && c.argv[1] === 'destroy').map(stackOf);

describe('gcp:delete', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it('refuses without --yes when there is no terminal to confirm at, and destroys nothing', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not confirmed: nothing destroyed (pass --yes');
    expect(r.stdout).toContain('stacks: loadtest, ws, backend, network');
    expect(fakes.calls().some((c) => c.argv[1] === 'destroy' || c.argv[1] === 'instances')).toBe(false);
  });

  it('with --yes keeps the bootstrap stack (static address, secrets), lifts deletion protection, then destroys the rest in reverse order', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, ['--yes'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ {2}ws_instance: odin-ws$/m);
    expect(r.stdout).toContain('kept: the static address odin-dev-ws-external (127.0.0.1), the secrets, the APIs');
    const s = summary(fakes.calls(), 7);
    const protection = s.indexOf('gcloud compute instances update odin-dev-ws --no-deletion-protection --zone us-central1-a');
    expect(protection).toBeGreaterThan(s.indexOf('terraform ws output -json'));
    expect(s.slice(protection + 1)).toEqual([
      'terraform loadtest destroy -input=false -auto-approve',
      'terraform ws destroy -input=false -auto-approve',
      'terraform backend destroy -input=false -auto-approve',
      'terraform network destroy -input=false -auto-approve',
    ]);
    // Every stack was initialised (once) before terraform touched it.
    for (const stack of ['loadtest', 'ws', 'backend', 'network']) {
      const first = s.findIndex((c) => c.startsWith(`terraform ${stack} `));
      expect(s[first]).toBe(`terraform ${stack} init -input=false`);
      expect(s.filter((c) => c === `terraform ${stack} init -input=false`)).toHaveLength(1);
    }
  });

  it('--all also destroys the bootstrap stack, last; the state bucket is never destroyed, its removal is printed', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, ['--yes', '--all'], { ...fakes.env, TF_STATE_BUCKET: 'odin-tf-state' });
    expect(r.code, r.stderr).toBe(0);
    expect(destroyed(fakes.calls())).toEqual(['loadtest', 'ws', 'backend', 'network', 'bootstrap']);
    expect(r.stdout).toContain('gcloud storage rm -r gs://odin-tf-state');
  });

  it("still destroys when the outputs are gone (a half-deleted deployment), and stops at the first failing destroy with its stderr", async () => {
    fakes = createFakes({
      rules: [
        { tool: 'terraform', match: inStack('[\\w-]+', 'output'), exit: 1, stderr: 'No state\n' },
        { tool: 'terraform', match: inStack('backend', 'destroy'), exit: 1, stderr: 'Error: deleting network: resourceInUseByAnotherResource\n' },
        { tool: 'gcloud', match: '^compute instances update', exit: 1, stderr: 'not found\n' },
        ...RULES,
      ],
    });
    const r = await runScript(SCRIPT, ['--yes'], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('resourceInUseByAnotherResource');
    expect(destroyed(fakes.calls())).toEqual(['loadtest', 'ws', 'backend']);
  });
});
