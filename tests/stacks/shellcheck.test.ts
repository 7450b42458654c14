// shellcheck (the Debian package, installed by .ci/run) on every script in stacks/assets/ and on
// each rendered startup script as a VM receives it. Never skipped under CI: a missing
// shellcheck there fails; on a developer machine without it the test says how to install it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ASSET_DIR } from '../../stacks/assets.js';
import { fromTerraformLiteral } from '../../stacks/render.js';
import { only, startupScript, synthAll } from './helpers.js';

const found = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
const installed = found.status === 0;
const skip = !installed && !process.env.CI;
if (skip) console.warn('shellcheck tests skipped: shellcheck is not installed (apt-get install shellcheck)');

const work = mkdtempSync(path.join(tmpdir(), 'odin-shellcheck-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function shellcheck(file: string) {
  return spawnSync('shellcheck', ['--shell=bash', '--severity=style', '--format=gcc', file], { encoding: 'utf8' });
}

describe('shellcheck', () => {
  it.skipIf(skip)('is installed (under CI it must be: .ci/run installs it)', () => {
    expect(installed, 'shellcheck is not installed: apt-get install shellcheck').toBe(true);
  });

  const scripts = readdirSync(ASSET_DIR).filter((f) => f.endsWith('.sh'));
  it.skipIf(skip).each(scripts)('stacks/assets/%s is clean', (name) => {
    const r = shellcheck(path.join(ASSET_DIR, name));
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  const { stacks } = synthAll();
  it.skipIf(skip).each(['ws', 'backend', 'loadtest'] as const)('the rendered %s startup script is clean', (role) => {
    const file = path.join(work, `${role}.sh`);
    writeFileSync(file, startupScript(stacks[role]));
    const r = shellcheck(file);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  const fleet = synthAll({ ws: { count: 3 } }).stacks;
  it.skipIf(skip)('the rendered fleet node startup script (instance template) is clean', () => {
    const file = path.join(work, 'ws-fleet.sh');
    writeFileSync(file, fromTerraformLiteral(only(fleet.ws, 'google_compute_instance_template').metadata['startup-script']));
    const r = shellcheck(file);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
