// The synth entry (`npm run synth`, cdktf.json's app): the cdktf library writes
// <outdir>/manifest.json and <outdir>/stacks/<stack>/cdk.tf.json (cdk.tf with --hcl), the layout
// terraform then runs in per stack. The only place that reads env and files: the config
// (ODIN_ENV selects stacks/config/<env>.json; GCP_PROJECT, GCP_REGION, GCP_ZONE, WS_SHARDS
// and TF_STATE_BUCKET override it) and the VM asset files.
//   node --import tsx stacks/main.ts [--output DIR] [--hcl]   (DIR: else CDKTF_OUTDIR, else cdktf.out)
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { App } from 'cdktf';
import { loadAssets } from './assets.js';
import { buildStacks } from './app.js';
import { ConfigError, loadConfig } from './config/load.js';

const USAGE = 'usage: node --import tsx stacks/main.ts [--output DIR] [--hcl]  (DIR defaults to $CDKTF_OUTDIR, else cdktf.out)';

function fail(message: string, code: number): never {
  console.error(message);
  process.exit(code);
}

/** The output directory from --output or CDKTF_OUTDIR, checked before anything is written. */
function outputDir(flag: string | undefined): string {
  const [raw, from] = flag !== undefined ? [flag, '--output'] : [process.env.CDKTF_OUTDIR, 'CDKTF_OUTDIR'];
  if (raw === undefined || (from === 'CDKTF_OUTDIR' && raw.trim() === '')) return 'cdktf.out';
  if (raw.trim() === '' || /[\u0000-\u001f]/.test(raw)) fail(`${from}=${JSON.stringify(raw)}: must be a directory path (no control characters)`, 2);
  const dir = path.resolve(raw);
  if (dir === path.parse(dir).root || dir === process.cwd()) fail(`${from}=${JSON.stringify(raw)}: must be a directory of its own, not / or the project itself`, 2);
  if (existsSync(dir) && !statSync(dir).isDirectory()) fail(`${from}=${JSON.stringify(raw)}: exists and is not a directory`, 2);
  return raw;
}

/** Stack directories a previous synth left that this one no longer has (e.g. `state` without a bucket), as the CLI did. */
function removeOrphans(outdir: string): void {
  const manifest = JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8')) as { stacks: Record<string, unknown> };
  const stacksDir = path.join(outdir, 'stacks');
  for (const entry of readdirSync(stacksDir, { withFileTypes: true })) {
    if (entry.isDirectory() && !(entry.name in manifest.stacks)) rmSync(path.join(stacksDir, entry.name), { recursive: true, force: true });
  }
}

function main(): void {
  let values;
  try {
    ({ values } = parseArgs({ args: process.argv.slice(2), strict: true, options: { output: { type: 'string' }, hcl: { type: 'boolean', default: false } } }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  const outdir = outputDir(values.output);
  let config;
  try {
    config = loadConfig({ env: process.env });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    fail(err.message, 1);
  }
  // App creates only the last level of a nested outdir.
  mkdirSync(outdir, { recursive: true });
  // The flag decides: App would let a stray SYNTH_HCL_OUTPUT in the env override it.
  process.env.SYNTH_HCL_OUTPUT = String(values.hcl);
  const app = new App({ outdir, hclOutput: values.hcl });
  buildStacks(app, config, loadAssets());
  try {
    app.synth();
  } catch (err) {
    fail(`synth failed: ${(err as Error).message}`, 1);
  }
  removeOrphans(outdir);
}

main();
