// The whole app through the real CLI entry: `cdktf synth` runs cdktf.json's app command.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OUTPUT_NAMES, STACK_NAMES } from '../../stacks/outputs.js';

const root = path.resolve(import.meta.dirname, '../..');
const cdktf = path.join(root, 'node_modules', '.bin', 'cdktf');
const work = mkdtempSync(path.join(tmpdir(), 'odin-synth-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs a command in the repo with a hard time bound; resolves with its exit code and output. */
function run(cmd: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, CHECKPOINT_DISABLE: '1', CI: '1', ODIN_ENV: '', ...env },
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

const clean = { GCP_PROJECT: 'odin-ws-cli', GCP_REGION: '', GCP_ZONE: '', WS_SHARDS: '', TF_STATE_BUCKET: '' };

describe('cdktf synth through cdktf.json', () => {
  it('synthesizes every stack with the contract outputs, offline, with no path of this machine in it', async () => {
    const outdir = path.join(work, 'json');
    const r = await run(cdktf, ['synth', '--output', outdir], clean);
    expect(r.code, r.out).toBe(0);
    const outputs: string[] = [];
    for (const name of STACK_NAMES) {
      const file = path.join(outdir, 'stacks', name, 'cdk.tf.json');
      expect(existsSync(file), `${file} missing`).toBe(true);
      const json = JSON.parse(readFileSync(file, 'utf8'));
      expect(json.provider.google[0].project).toBe('odin-ws-cli');
      expect(readFileSync(file, 'utf8')).not.toContain(root);
      outputs.push(...Object.keys(json.output ?? {}));
    }
    expect(outputs.sort()).toEqual([...OUTPUT_NAMES].sort());
    const manifest = JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8'));
    expect(Object.keys(manifest.stacks).sort()).toEqual([...STACK_NAMES].sort());
    expect(manifest.stacks.ws.dependencies.sort()).toEqual(['backend', 'network']);
    expect(manifest.stacks.network.dependencies).toEqual(['bootstrap']);
  });

  it('exports HCL into a nested output directory (the way off CDKTF)', async () => {
    const outdir = path.join(work, 'nested', 'hcl');
    const r = await run(cdktf, ['synth', '--hcl', '--output', outdir], { ...clean, WS_SHARDS: '4' });
    expect(r.code, r.out).toBe(0);
    const hcl = readFileSync(path.join(outdir, 'stacks', 'ws', 'cdk.tf'), 'utf8');
    expect(hcl).toMatch(/resource "google_compute_instance"/);
    expect(hcl).toContain('WS_SHARDS=4');
    expect(hcl).toMatch(/output "ws_instance"/);
    expect(readFileSync(path.join(outdir, 'stacks', 'bootstrap', 'cdk.tf'), 'utf8')).toMatch(/output "ws_url"/);
  });

  it('fails with the field named when the config is invalid', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', 'stacks/main.ts'], { ...clean, GCP_ZONE: 'mars-1', GCP_PROJECT: 'X' });
    expect(r.code).toBe(1);
    expect(r.out).toContain('zone (from GCP_ZONE="mars-1")');
    expect(r.out).toContain('project (from GCP_PROJECT="X")');
  });

  it('refuses to synthesize without a project: no placeholder ever reaches a plan', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', 'stacks/main.ts'], { ...clean, GCP_PROJECT: '' });
    expect(r.code).toBe(1);
    expect(r.out).toContain('project: is required: the GCP project id to deploy into (set GCP_PROJECT');
    expect(r.out).not.toMatch(/at .*\.ts:\d+/); // a message, not a stack trace
  });
});
