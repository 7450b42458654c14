// gcp:delete: prints what goes, refuses without --yes when there is no terminal, destroys with it.
import { afterEach, describe, expect, it } from 'vitest';
import { createFakes, runScript, stackOutputs, summary, type Fakes, type Rule } from './support/fakes.js';

const SCRIPT = 'scripts/ops/delete.mjs';
const LIST = 'Stack name                     Path\nnetwork                        cdktf.out/stacks/network\nbackend                        cdktf.out/stacks/backend\nws                             cdktf.out/stacks/ws\nloadtest                       cdktf.out/stacks/loadtest\n';
const RULES: Rule[] = [
  { tool: 'cdktf', match: '^list', stdout: LIST },
  { tool: 'cdktf', match: '^output', outputs: stackOutputs() },
  { tool: 'cdktf', match: '^destroy', stdout: 'Destroy complete! Resources: 14 destroyed.\n' },
];

describe('gcp:delete', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it('refuses without --yes when there is no terminal to confirm at, and destroys nothing', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('not confirmed: nothing destroyed (pass --yes');
    expect(r.stdout).toContain('stacks: network, backend, ws, loadtest');
    expect(fakes.calls().some((c) => c.argv[0] === 'destroy')).toBe(false);
  });

  it('with --yes prints what will be destroyed, then destroys every stack', async () => {
    fakes = createFakes({ rules: RULES });
    const r = await runScript(SCRIPT, ['--yes'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('stacks: network, backend, ws, loadtest');
    expect(r.stdout).toMatch(/^ {2}ws_instance: odin-ws$/m);
    expect(r.stdout).toMatch(/^ {2}project: odin-test$/m);
    expect(r.stdout.indexOf('project: odin-test')).toBeLessThan(r.stdout.indexOf('Destroy complete!'));
    expect(summary(fakes.calls(), 3)).toEqual(['cdktf list', 'cdktf output * --outputs-file', 'cdktf destroy * --auto-approve']);
  });

  it('still destroys when the outputs are gone (a half-deleted deployment), and fails with destroy\'s stderr', async () => {
    fakes = createFakes({
      rules: [
        { tool: 'cdktf', match: '^output', exit: 1, stderr: 'No state\n' },
        { tool: 'cdktf', match: '^destroy', exit: 1, stderr: 'Error: deleting network: resourceInUseByAnotherResource\n' },
        ...RULES,
      ],
    });
    const r = await runScript(SCRIPT, ['--yes'], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('resourceInUseByAnotherResource');
    expect(summary(fakes.calls(), 1)).toEqual(['cdktf list', 'cdktf output', 'cdktf destroy']);
  });
});
