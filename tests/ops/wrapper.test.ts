// The gcloud/terraform wrapper, in process, against the fake executables.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, createFakes, type Fakes } from './support/fakes.js';

const { createGcp, OpsError } = await import(pathToFileURL(path.join(ROOT, 'scripts/ops/gcp.mjs')).href);

/** Collects what the wrapper prints. */
function sink() {
  let text = '';
  return { stream: { write: (d: string | Buffer) => ((text += String(d)), true) }, text: () => text };
}
const VM = { instance: 'odin-ws', zone: 'us-central1-a', project: 'odin-test' };

describe('gcp wrapper', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it('retries an SSH connection failure (exit 255), then returns the answer', async () => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', times: 2, exit: 255, stderr: 'Connection closed by UNKNOWN port 65535\n' }, { tool: 'gcloud', stdout: 'up\n' }] });
    const out = sink();
    const gcp = createGcp({ env: fakes.env, out: out.stream, err: out.stream, retryDelayMs: 1 });
    const r = await gcp.ssh(VM, 'uptime', { retries: 3 });
    expect(r.stdout).toBe('up\n');
    expect(fakes.calls()).toHaveLength(3);
    expect(out.text()).toMatch(/retrying in 0 s \(1\/3\)[\s\S]*retrying in 0 s \(2\/3\)/);
  });

  it('does not retry other failures, and throws with the command and its stderr', async () => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', exit: 1, stderr: 'ERROR: (gcloud.compute.ssh) Could not fetch resource: The resource was not found\n' }] });
    const out = sink();
    const gcp = createGcp({ env: fakes.env, out: out.stream, err: out.stream, retryDelayMs: 1 });
    const e = await gcp.ssh(VM, 'uptime', { retries: 3 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpsError);
    expect(e.message).toBe('failed (exit 1): gcloud compute ssh odin-ws --zone us-central1-a --project odin-test --tunnel-through-iap --quiet --command uptime');
    expect(e.detail).toContain('The resource was not found');
    expect(fakes.calls()).toHaveLength(1);
  });

  it('gives up after the last retry', async () => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', exit: 255, stderr: 'Connection closed\n' }] });
    const out = sink();
    const gcp = createGcp({ env: fakes.env, out: out.stream, err: out.stream, retryDelayMs: 1 });
    await expect(gcp.scp(VM, ['dist/x'], 'odin-ws:/tmp/', { retries: 2 })).rejects.toThrow(/failed \(exit 255\): gcloud compute scp/);
    expect(fakes.calls()).toHaveLength(3);
  });

  it('in dry-run prints the synth, the init and the command, runs nothing and needs no tool on PATH', async () => {
    fakes = createFakes({ tools: [], isolated: true });
    const out = sink();
    const gcp = createGcp({ dryRun: true, env: { ...fakes.env, CDKTF_OUTDIR: '' }, out: out.stream, err: out.stream });
    const r = await gcp.terraform('ws', ['plan', '-target=a b']);
    expect(r).toMatchObject({ exitCode: 0, dryRun: true });
    await gcp.terraform('ws', ['apply', '-input=false', '-auto-approve']);
    expect(out.text()).toBe(
      [
        '[dry-run] node --import tsx stacks/main.ts --output cdktf.out',
        '[dry-run] terraform -chdir=cdktf.out/stacks/ws init -input=false',
        "[dry-run] terraform -chdir=cdktf.out/stacks/ws plan '-target=a b'",
        // Synth and init once per run.
        '[dry-run] terraform -chdir=cdktf.out/stacks/ws apply -input=false -auto-approve',
        '',
      ].join('\n'),
    );
  });

  it('synthesizes for real before terraform, inits each stack once, and refuses a stack the synth did not write', async () => {
    fakes = createFakes({ rules: [{ tool: 'terraform', stdout: 'ok\n' }] });
    const out = sink();
    const gcp = createGcp({ env: fakes.env, out: out.stream, err: out.stream });
    await gcp.terraform('network', ['plan', '-input=false']);
    await gcp.terraform('network', ['apply', '-input=false', '-auto-approve']);
    const outdir = fakes.env.CDKTF_OUTDIR!;
    expect(fakes.calls().map((c) => c.argv.join(' '))).toEqual([
      `-chdir=${outdir}/stacks/network init -input=false`,
      `-chdir=${outdir}/stacks/network plan -input=false`,
      `-chdir=${outdir}/stacks/network apply -input=false -auto-approve`,
    ]);
    expect(fs.existsSync(path.join(outdir, 'stacks', 'network', 'cdk.tf.json'))).toBe(true);
    await expect(gcp.terraform('state', ['plan'])).rejects.toThrow('stack state is not synthesized (the stacks are: ');
    await expect(gcp.terraform('../etc', ['plan'])).rejects.toThrow('not a stack name: "../etc"');
    expect(fakes.calls()).toHaveLength(3);
  });
});
