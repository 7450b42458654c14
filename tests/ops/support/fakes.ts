// Fake gcloud/terraform executables on PATH (see fake-cli.mjs) and a runner for the ops scripts
// as real child processes without a terminal. The synth the scripts run is the real one (offline),
// into a cdktf.out of the fakes' own directory (CDKTF_OUTDIR), so runs never share one.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../../..');
const FAKE_CLI = path.join(import.meta.dirname, 'fake-cli.mjs');

export type Tool = 'gcloud' | 'terraform';
export interface Rule {
  tool: Tool;
  /** Regex tested against the argv joined by spaces; absent matches every call of the tool. */
  match?: string;
  stdout?: string;
  stderr?: string;
  exit?: number;
  /** Created under the last argument (a local scp destination). */
  files?: Record<string, string>;
  /** Answer only the first N matching calls, then let later rules answer. */
  times?: number;
  /** Regex with one group: {{1}} in stdout becomes that group of the latest earlier call it matches. */
  fromCall?: string;
}
export interface Call {
  tool: Tool;
  argv: string[];
  env: Record<string, string | null>;
}

export interface Fakes {
  dir: string;
  env: NodeJS.ProcessEnv;
  calls(): Call[];
  setRules(rules: Rule[]): void;
  cleanup(): void;
}

/**
 * tools: which fakes exist. isolated: PATH holds only the fakes and the few system programs the
 * scripts use (so a real gcloud/terraform elsewhere on PATH cannot be found).
 */
export function createFakes({ rules = [], tools = ['gcloud', 'terraform'], isolated = false }: { rules?: Rule[]; tools?: Tool[]; isolated?: boolean } = {}): Fakes {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-ops-fakes-'));
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  for (const tool of tools) {
    fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\nexec '${process.execPath}' '${FAKE_CLI}' ${tool} "$@"\n`, { mode: 0o755 });
  }
  let pathVar = `${bin}${path.delimiter}${process.env.PATH ?? ''}`;
  if (isolated) {
    const sys = path.join(dir, 'sys');
    fs.mkdirSync(sys);
    for (const prog of ['bash', 'sh', 'git', 'node']) {
      const found = (process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, prog)).find((p) => fs.existsSync(p));
      if (found) fs.symlinkSync(prog === 'node' ? process.execPath : found, path.join(sys, prog));
    }
    pathVar = `${bin}${path.delimiter}${sys}`;
  }
  const fakes: Fakes = {
    dir,
    // One project for the whole run, as an operator's shell would have it (the stacks and the
    // scripts resolve it the same way); no config override from the developer's own shell.
    env: { ...process.env, PATH: pathVar, FAKE_CLI_DIR: dir, ODIN_ENV: '', GCP_PROJECT: 'odin-test', GOOGLE_CLOUD_PROJECT: '', GCP_REGION: '', GCP_ZONE: '', WS_SHARDS: '', TF_STATE_BUCKET: '', CDKTF_OUTDIR: path.join(dir, 'cdktf.out') },
    calls() {
      const file = path.join(dir, 'calls.jsonl');
      if (!fs.existsSync(file)) return [];
      return fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Call);
    },
    setRules(r) {
      fs.writeFileSync(path.join(dir, 'rules.json'), JSON.stringify(r));
    },
    cleanup() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  fakes.setRules(rules);
  return fakes;
}

/** The stack a terraform call runs in (its -chdir=<outdir>/stacks/<stack>), else undefined. */
export const stackOf = (c: Call) => /^-chdir=.*\/stacks\/([\w-]+)$/.exec(c.argv[0] ?? '')?.[1];

/**
 * `tool argv...` of each call, for order assertions; a terraform call's -chdir shows as its stack
 * (`terraform ws apply -input=false -auto-approve`).
 */
export const summary = (calls: Call[], words = 3) =>
  calls.map((c) => {
    const stack = c.tool === 'terraform' ? stackOf(c) : undefined;
    return [c.tool, ...(stack ? [stack, ...c.argv.slice(1, words + 1)] : c.argv.slice(0, words))].join(' ');
  });

/** A rule matching terraform calls in one stack's directory: `stack` (regex part) and the argv after -chdir. */
export const inStack = (stack: string, rest = '') => `^-chdir=\\S*/stacks/${stack} ${rest}`;

/** Fake `terraform output -json` answers, one per stack, from `{ stack: { name: value } }`. */
export function outputRules(byStack: Record<string, Record<string, string>>, extra: Partial<Rule> = {}): Rule[] {
  return Object.entries(byStack).map(([stack, values]) => ({
    tool: 'terraform' as const,
    match: inStack(stack, 'output -json$'),
    stdout: `${JSON.stringify(Object.fromEntries(Object.entries(values).map(([k, value]) => [k, { sensitive: false, type: 'string', value }])))}\n`,
    ...extra,
  }));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node <script> args` from the project root, stdin closed (no terminal), bounded in time. */
export function runScript(script: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 90_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, script), ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${script} ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Outputs per stack (as stacks/outputs.ts places them) for a deployment whose WS server answers at healthUrl. */
export function stackOutputs({ healthUrl = 'http://127.0.0.1:9/health', wsUrl = 'ws://127.0.0.1:9/ws' } = {}): Record<string, Record<string, string>> {
  return {
    bootstrap: { ws_url: wsUrl, health_url: healthUrl, ws_external_ip: '127.0.0.1' },
    network: { zone: 'us-central1-a', project: 'odin-test' },
    backend: {
      backend_internal_ip: '10.10.0.3',
      grafana_url: 'http://10.10.0.3:3010',
      console_url: 'http://10.10.0.3:8080',
      publisher_status_url: 'http://10.10.0.3:3003/status',
      backend_instance: 'odin-backend',
    },
    ws: { ws_internal_ip: '10.10.0.2', ws_instance: 'odin-ws' },
    loadtest: { loadtest_internal_ip: '10.10.0.4', loadtest_instance: 'odin-loadtest' },
  };
}

/** Every API the bootstrap stack enables, as `gcloud services list` prints them. */
export const ALL_APIS = [
  'serviceusage.googleapis.com', 'cloudresourcemanager.googleapis.com', 'compute.googleapis.com', 'iam.googleapis.com', 'iap.googleapis.com',
  'oslogin.googleapis.com', 'logging.googleapis.com', 'monitoring.googleapis.com', 'storage.googleapis.com', 'secretmanager.googleapis.com',
];

/** An IAM policy granting `member` the given roles. */
export const iamPolicy = (member: string, roles: string[]) => JSON.stringify({ bindings: roles.map((role) => ({ role, members: [member] })) });

export const OPERATOR = 'operator@example.com';
export const GOOD_ROLES = ['roles/owner', 'roles/iap.tunnelResourceAccessor', 'roles/compute.osAdminLogin', 'roles/iam.serviceAccountUser'];

/** A preflight that passes: authenticated, ADC, project, billing, APIs, quota, roles. */
export function preflightRules({ cpusFree = 24, apis = ALL_APIS, roles = GOOD_ROLES } = {}): Rule[] {
  return [
    { tool: 'gcloud', match: '^auth list', stdout: `${OPERATOR}\n` },
    { tool: 'gcloud', match: '^auth application-default print-access-token', stdout: 'ya29.token\n' },
    { tool: 'gcloud', match: '^projects describe odin-test', stdout: 'odin-test\n' },
    { tool: 'gcloud', match: '^billing projects describe', stdout: 'True\n' },
    { tool: 'gcloud', match: '^services list --enabled', stdout: `${apis.join('\n')}\n` },
    { tool: 'gcloud', match: '^compute regions describe us-central1', stdout: JSON.stringify({ quotas: [{ metric: 'CPUS', limit: 24, usage: 24 - cpusFree }, { metric: 'E2_CPUS', limit: 24, usage: 24 - cpusFree }] }) },
    { tool: 'gcloud', match: '^projects get-iam-policy odin-test', stdout: iamPolicy(`user:${OPERATOR}`, roles) },
  ];
}
