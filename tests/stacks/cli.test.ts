// The whole app through its real entry: `npm run synth` (and infra:hcl) run stacks/main.ts, the
// cdktf library's App.synth(), under the project's Node; no cdktf CLI, no terraform, offline.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OUTPUT_NAMES, STACK_NAMES } from '../../stacks/outputs.js';

const root = path.resolve(import.meta.dirname, '../..');
const work = mkdtempSync(path.join(tmpdir(), 'odin-synth-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const scripts = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

/** Runs a command in the repo with a hard time bound; resolves with its exit code and output. */
function run(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, ODIN_ENV: '', CDKTF_OUTDIR: '', SYNTH_HCL_OUTPUT: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}
const npm = (script: string, args: string[], env: Record<string, string> = {}) => run('npm', ['run', '--silent', script, '--', ...args], env);

const clean = { GCP_PROJECT: 'odin-ws-cli', GCP_REGION: '', GCP_ZONE: '', WS_SHARDS: '', TF_STATE_BUCKET: '' };

describe('npm run synth (stacks/main.ts, the cdktf library)', () => {
  it('runs the app cdktf.json names, with no CLI in the way', () => {
    const cdktf = JSON.parse(readFileSync(path.join(root, 'cdktf.json'), 'utf8')) as { app: string; output: string };
    expect(scripts.synth).toBe(cdktf.app);
    expect(cdktf.output).toBe('cdktf.out');
    expect(Object.values(scripts).some((s) => /\bcdktf\s/.test(s))).toBe(false);
  });

  it('writes every stack with the contract outputs and the manifest, offline, with no path of this machine in it', async () => {
    const outdir = path.join(work, 'json');
    const r = await npm('synth', ['--output', outdir], clean);
    expect(r.code, r.out).toBe(0);
    const outputs: string[] = [];
    for (const name of STACK_NAMES) {
      const file = path.join(outdir, 'stacks', name, 'cdk.tf.json');
      expect(existsSync(file), `${file} missing`).toBe(true);
      const json = JSON.parse(readFileSync(file, 'utf8'));
      expect(json.provider.google[0].project).toBe('odin-ws-cli');
      expect(json.terraform.backend.local.path).toBe(`../../../terraform.dev.${name}.tfstate`);
      const text = readFileSync(file, 'utf8');
      expect(text).not.toContain(root);
      expect(text).not.toContain(outdir);
      outputs.push(...Object.keys(json.output ?? {}));
    }
    expect(outputs.sort()).toEqual([...OUTPUT_NAMES].sort());
    const manifest = JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8'));
    expect(Object.keys(manifest.stacks).sort()).toEqual([...STACK_NAMES].sort());
    expect(manifest.stacks.ws.workingDirectory).toBe('stacks/ws');
    expect(manifest.stacks.ws.synthesizedStackPath).toBe('stacks/ws/cdk.tf.json');
    expect(manifest.stacks.ws.dependencies.sort()).toEqual(['backend', 'network']);
    expect(manifest.stacks.network.dependencies).toEqual(['bootstrap']);
    expect(JSON.stringify(manifest)).not.toContain(root);
  });

  it('takes CDKTF_OUTDIR when no --output is given, and removes the directory of a stack it no longer has', async () => {
    const outdir = path.join(work, 'env-out');
    let r = await npm('synth', [], { ...clean, CDKTF_OUTDIR: outdir, TF_STATE_BUCKET: 'odin-tf-state-cli' });
    expect(r.code, r.out).toBe(0);
    expect(JSON.parse(readFileSync(path.join(outdir, 'stacks', 'state', 'cdk.tf.json'), 'utf8')).terraform.backend.local).toBeTruthy();
    expect(JSON.parse(readFileSync(path.join(outdir, 'stacks', 'ws', 'cdk.tf.json'), 'utf8')).terraform.backend.gcs.bucket).toBe('odin-tf-state-cli');
    // terraform init leaves .terraform/ in a stack directory: a re-synth keeps it.
    mkdirSync(path.join(outdir, 'stacks', 'ws', '.terraform'));
    r = await npm('synth', [], { ...clean, CDKTF_OUTDIR: outdir });
    expect(r.code, r.out).toBe(0);
    expect(existsSync(path.join(outdir, 'stacks', 'state'))).toBe(false);
    expect(existsSync(path.join(outdir, 'stacks', 'ws', '.terraform'))).toBe(true);
    expect(Object.keys(JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8')).stacks)).not.toContain('state');
  });

  it('refuses an output directory that is a file, or an unknown flag (exit 2, with what is accepted)', async () => {
    const file = path.join(work, 'a-file');
    writeFileSync(file, 'x');
    let r = await npm('synth', ['--output', file], clean);
    expect(r.code).toBe(2);
    expect(r.out).toContain(`--output=${JSON.stringify(file)}: exists and is not a directory`);
    r = await npm('synth', ['--out', 'x'], clean);
    expect(r.code).toBe(2);
    expect(r.out).toContain('usage: node --import tsx stacks/main.ts [--output DIR] [--hcl]');
  });

  it('infra:hcl exports HCL through the library (the way off CDKTF), into a nested output directory', async () => {
    expect(scripts['infra:hcl']).toBe(`${scripts.synth} --hcl --output cdktf.out/hcl`);
    const outdir = path.join(work, 'nested', 'hcl');
    const r = await npm('synth', ['--hcl', '--output', outdir], { ...clean, WS_SHARDS: '4' });
    expect(r.code, r.out).toBe(0);
    const hcl = readFileSync(path.join(outdir, 'stacks', 'ws', 'cdk.tf'), 'utf8');
    expect(hcl).toMatch(/resource "google_compute_instance"/);
    expect(hcl).toContain('WS_SHARDS=4');
    expect(hcl).toMatch(/output "ws_instance"/);
    expect(readFileSync(path.join(outdir, 'stacks', 'bootstrap', 'cdk.tf'), 'utf8')).toMatch(/output "ws_url"/);
    expect(JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8')).stacks.ws.synthesizedStackPath).toBe('stacks/ws/cdk.tf');
  });

  it('fails with the field named when the config is invalid', async () => {
    const r = await npm('synth', ['--output', path.join(work, 'bad')], { ...clean, GCP_ZONE: 'mars-1', GCP_PROJECT: 'X' });
    expect(r.code).toBe(1);
    expect(r.out).toContain('zone (from GCP_ZONE="mars-1")');
    expect(r.out).toContain('project (from GCP_PROJECT="X")');
  });

  it('refuses to synthesize without a project: no placeholder ever reaches a plan', async () => {
    const r = await npm('synth', ['--output', path.join(work, 'none')], { ...clean, GCP_PROJECT: '' });
    expect(r.code).toBe(1);
    expect(r.out).toContain('project: is required: the GCP project id to deploy into (set GCP_PROJECT');
    expect(r.out).not.toMatch(/at .*\.ts:\d+/); // a message, not a stack trace
    expect(existsSync(path.join(work, 'none'))).toBe(false);
  });
});
