#!/usr/bin/env node
// gcp:deploy: preflight, cost estimate, build a versioned release, `cdktf deploy` every stack,
// upload the release to each VM, restart its service (the WS server drains: clients get 1001
// and reconnect), then wait for the WS /health to report every shard up.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError, intFlag, isMain, parseOptions, runMain } from './cli.mjs';
import { INSTALL_HINTS, OpsError, ROOT, createGcp, findTool } from './gcp.mjs';
import { formatHealth, waitHealthy } from './health.mjs';
import { readOutputs } from './outputs.mjs';
import { assembleRelease, gitState, installScript, releaseVersion } from './release.mjs';

export const USAGE = `usage: deploy [--dry-run] [--project ID] [--skip-infra] [--health-timeout SECONDS]
  --project ID           GCP project (default: $GCP_PROJECT, else \`gcloud config get-value project\`)
  --skip-infra           do not run \`cdktf deploy\`; only ship a new release to the existing VMs
  --health-timeout S     how long to wait for a healthy /health after the restart (default 180)`;

/** Deploy order: the publisher (and broker host) first, the WS server last, then its health. */
export const ROLES = Object.freeze([
  { role: 'backend', instance: 'backend_instance', service: 'odin-publisher' },
  { role: 'loadtest', instance: 'loadtest_instance', service: null },
  { role: 'ws', instance: 'ws_instance', service: 'odin-ws' },
]);

const NEW_VM_RETRIES = 9;
const PROJECT_ID = /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const NEEDED = ['health_url', 'ws_instance', 'backend_instance', 'loadtest_instance', 'zone', 'project'];

/** Tools missing from PATH, each as its one-line install hint. Runs nothing. */
export function missingTools(env = process.env, root = ROOT) {
  return ['gcloud', 'terraform', 'cdktf'].filter((t) => !findTool(t, { env, root })).map((t) => INSTALL_HINTS[t]);
}

/** Authenticated and a project known; returns the project id. */
export async function preflight(gcp, { project, env = process.env }) {
  const auth = await gcp.gcloud(['auth', 'list', '--filter=status:ACTIVE', '--format=value(account)']);
  if (!gcp.dryRun && !auth.stdout.trim()) {
    throw new OpsError('gcloud is not authenticated: run `gcloud auth login` and `gcloud auth application-default login`');
  }
  let id = project || env.GCP_PROJECT || '';
  if (!id) {
    const got = await gcp.gcloud(['config', 'get-value', 'project']);
    id = gcp.dryRun ? '<project>' : got.stdout.trim();
  }
  if (!id || id === '(unset)') throw new OpsError('no GCP project set: run `gcloud config set project PROJECT_ID` or pass --project PROJECT_ID');
  return id;
}

/** The stacks engineer's estimate, if scripts/cost.mjs exports it; deploy never fails on it. */
export async function costEstimate(root = ROOT) {
  let mod;
  try {
    mod = await import(pathToFileURL(path.join(root, 'scripts', 'cost.mjs')).href);
  } catch (e) {
    return `cost estimate unavailable: scripts/cost.mjs could not be loaded (${e.code ?? e.message})`;
  }
  if (typeof mod.estimateMonthlyCost !== 'function') return 'cost estimate unavailable: scripts/cost.mjs has no estimateMonthlyCost export';
  try {
    const est = await mod.estimateMonthlyCost();
    if (typeof mod.formatEstimate === 'function') return mod.formatEstimate(est);
    return typeof est === 'string' ? est : JSON.stringify(est, null, 2);
  } catch (e) {
    return `cost estimate unavailable: ${e.message}`;
  }
}

export async function deploy(gcp, { project, skipInfra = false, healthTimeoutS = 180, log = (s) => process.stdout.write(`${s}\n`), now = new Date() }) {
  log('== preflight');
  const projectId = await preflight(gcp, { project });
  log(`project ${projectId}`);
  // The stacks read the project from GCP_PROJECT; the Google provider from GOOGLE_CLOUD_PROJECT.
  gcp.setEnv({ GCP_PROJECT: projectId, GOOGLE_CLOUD_PROJECT: projectId });

  log('== cost estimate');
  log(await costEstimate(gcp.root));

  // Built before provisioning: a build error should not cost a VM.
  log('== build');
  const version = releaseVersion({ ...gitState(gcp.root), date: now });
  await gcp.run(process.execPath, [path.join(gcp.root, 'scripts', 'build.mjs')], { display: 'node scripts/build.mjs', stream: true });
  const local = path.join('dist', 'releases', version);
  if (gcp.dryRun) log(`[dry-run] copy dist/{server,publisher,loadtest}.mjs to ${local}/`);
  else assembleRelease({ root: gcp.root, version, now });
  log(`release ${version}`);

  if (!skipInfra) {
    log('== infrastructure');
    await gcp.cdktf(['deploy', '*', '--auto-approve'], { stream: true });
  }
  const out = await readOutputs(gcp, NEEDED);

  for (const { role, instance, service } of ROLES) {
    log(`== ${role}: ${out[instance]}${service ? ` (${service})` : ''}`);
    const target = { instance: out[instance], zone: out.zone, project: out.project };
    // A VM that was just created needs a minute before IAP SSH answers: retry connection failures.
    await gcp.scp(target, [local], `${out[instance]}:/tmp/`, { retries: NEW_VM_RETRIES });
    if (service === 'odin-ws') log('restarting odin-ws: it drains, clients get 1001 and reconnect');
    await gcp.ssh(target, installScript({ version, service }), { retries: NEW_VM_RETRIES });
  }

  log(`== health: ${out.health_url}`);
  if (gcp.dryRun) {
    log(`[dry-run] poll ${out.health_url} until every shard is up (at most ${healthTimeoutS} s)`);
    return { version };
  }
  const healthy = await waitHealthy(out.health_url, {
    timeoutMs: healthTimeoutS * 1000,
    onAttempt: (n, v) => !v.ok && n % 5 === 1 && log(`  waiting: ${v.problem}`),
  });
  log(formatHealth(healthy.body));
  log(`deployed ${version}`);
  return { version };
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, {
    project: { type: 'string' },
    'skip-infra': { type: 'boolean', default: false },
    'health-timeout': { type: 'string' },
  }, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const healthTimeoutS = intFlag(values, 'health-timeout', { min: 1, max: 3600, def: 180 });
  if (values.project !== undefined && !PROJECT_ID.test(values.project)) {
    throw new UsageError(`--project=${JSON.stringify(values.project)}: a GCP project id is 6-30 lowercase letters, digits and hyphens, starting with a letter`);
  }
  if (!values['dry-run']) {
    const missing = missingTools(env);
    if (missing.length) throw new OpsError(missing.join('\nerror: '));
  }
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  await deploy(gcp, { project: values.project, skipInfra: values['skip-infra'], healthTimeoutS });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
