// Builds the real stacks from a config object (no env, no config file) and returns each
// stack's synthesized Terraform JSON, plus readers for the rendered startup scripts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Testing } from 'cdktf';
import { buildStacks } from '../../stacks/app.js';
import { loadAssets } from '../../stacks/assets.js';
import { StackConfigSchema, type StackConfig, type StackConfigInput } from '../../stacks/config/schema.js';
import type { StackName } from '../../stacks/outputs.js';
import { fromTerraformLiteral } from '../../stacks/render.js';

export type TfJson = {
  terraform: { backend?: Record<string, Record<string, unknown>> };
  resource: Record<string, Record<string, Record<string, any>>>;
  data?: Record<string, Record<string, Record<string, any>>>;
  output?: Record<string, { value: string }>;
  provider?: Record<string, unknown[]>;
};

export const BASE_CONFIG: StackConfigInput = {
  env: 'test',
  project: 'odin-ws-test',
};

export function makeConfig(overrides: Partial<StackConfigInput> = {}): StackConfig {
  return StackConfigSchema.parse({ ...BASE_CONFIG, ...overrides });
}

type Always = Exclude<StackName, 'state'>;
export interface Synthesized {
  config: StackConfig;
  stacks: Record<Always, TfJson> & { state?: TfJson };
  raw: Record<Always, string> & { state?: string };
}

export function synthAll(overrides: Partial<StackConfigInput> = {}): Synthesized {
  const config = makeConfig(overrides);
  const built = buildStacks(Testing.app(), config, loadAssets());
  const raw: Synthesized['raw'] = {
    bootstrap: Testing.synth(built.bootstrap),
    network: Testing.synth(built.network),
    backend: Testing.synth(built.backend),
    ws: Testing.synth(built.ws),
    loadtest: Testing.synth(built.loadtest),
    ...(built.state ? { state: Testing.synth(built.state) } : {}),
  };
  const stacks = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, JSON.parse(v)])) as Synthesized['stacks'];
  return { config, stacks, raw };
}

/** All resources of one type in a stack, as an array. */
export function resources(stack: TfJson, type: string): Array<Record<string, any>> {
  return Object.values(stack.resource?.[type] ?? {});
}

/** The single resource of a type (fails the test if there is not exactly one). */
export function only(stack: TfJson, type: string): Record<string, any> {
  const all = resources(stack, type);
  if (all.length !== 1) throw new Error(`expected exactly one ${type}, found ${all.length}`);
  return all[0];
}

/** The startup script as the VM will receive it (Terraform's template escapes undone). */
export function startupScript(stack: TfJson): string {
  return fromTerraformLiteral(only(stack, 'google_compute_instance').metadata['startup-script']);
}

/** The content a startup script stages for `dest` (the heredoc body). */
export function stagedFile(script: string, dest: string): string {
  const start = script.indexOf(`cat >"$ODIN_STAGE"${dest} <<'ODIN_FILE_EOF'\n`);
  if (start < 0) throw new Error(`no staged file ${dest}`);
  const bodyStart = script.indexOf('\n', start) + 1;
  return script.slice(bodyStart, script.indexOf('\nODIN_FILE_EOF\n', bodyStart) + 1);
}

export function parseEnvFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/**
 * Runs bash on a script file with stdin closed: node's pipes are sockets, and bash reads
 * ~/.bashrc when its stdin is a socket (it takes that for rshd).
 */
export function runBash(args: string[], env: Record<string, string | undefined> = {}) {
  return spawnSync('bash', args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

/** `bash -n` on a script text: returns bash's stderr, empty when the syntax is fine. */
export function bashSyntaxErrors(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'odin-bash-n-'));
  try {
    const file = path.join(dir, 'script.sh');
    writeFileSync(file, text);
    const r = runBash(['-n', file]);
    return r.status === 0 ? '' : r.stderr || `bash -n exited ${r.status}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
