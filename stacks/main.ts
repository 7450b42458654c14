// The app entry that cdktf.json runs. The only place that reads env and files: the config
// (ODIN_ENV selects stacks/config/<env>.json; GCP_PROJECT, GCP_REGION, GCP_ZONE, WS_SHARDS
// and TF_STATE_BUCKET override it) and the VM asset files.
import { mkdirSync } from 'node:fs';
import { App } from 'cdktf';
import { loadAssets } from './assets.js';
import { buildStacks } from './app.js';
import { ConfigError, loadConfig } from './config/load.js';

function main(): void {
  let config;
  try {
    config = loadConfig({ env: process.env });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
  // `cdktf synth --output a/b` passes a nested outdir that App will not create by itself.
  const outdir = process.env.CDKTF_OUTDIR;
  if (outdir) mkdirSync(outdir, { recursive: true });
  const app = new App();
  buildStacks(app, config, loadAssets());
  app.synth();
}

main();
