#!/usr/bin/env node
// gcp:deploy: preflight, cost estimate, build a versioned release, synth the stacks, terraform
// apply them one by one (the state bucket, bootstrap: APIs, address, secrets; then network,
// backend, ws and the optional load-test VM), then per VM: upload the release, converge its
// config (re-run a changed startup script), switch and restart (the WS server drains: clients get
// 1001 and reconnect); finally wait until the WS VM's own /health reports every shard up on the
// release just shipped, and the public port answers. A fleet (ws.count >= 2) gets its release
// through the releases bucket and a rolling update node by node instead (scripts/ops/rollout.mjs).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError, intFlag, isMain, parseOptions, runMain } from './cli.mjs';
import { INSTALL_HINTS, OpsError, ROOT, createGcp, findTool } from './gcp.mjs';
import { evaluatePublicHealth, evaluateRelease, fetchJson, formatHealth, parseRemoteHealth, waitHealthy } from './health.mjs';
import { checkQuota, preflight } from './preflight.mjs';
import { readOutputs } from './outputs.mjs';
import { assembleRelease, convergeScript, gitState, healthProbeScript, installScript, releaseVersion } from './release.mjs';
import { rollout } from './rollout.mjs';
import { deployStacks, resolveDeployment } from './settings.mjs';

export const USAGE = `usage: deploy [--dry-run] [--skip-infra] [--health-timeout SECONDS] [--node-timeout SECONDS] [--auth-secret-file PATH] [--skip-role-check]
  (project, region, zone, state bucket: stacks/config/$ODIN_ENV.json and GCP_PROJECT etc., as for npm run synth)
  --skip-infra             do not apply the stacks; only converge and ship a new release to the existing VMs
  --health-timeout S       how long to wait for a healthy /health after the restart (default 180)
  --node-timeout S         a fleet (ws.count >= 2): how long each recreated node may take to serve the release (default 600)
  --auth-secret-file PATH  add PATH's content as the new version of the WS auth secret (turns auth on;
                           the previous version stays valid until you disable it: a rotation window)
  --skip-role-check        you hold the operator roles through a group (not visible in the project policy)`;

/** Deploy order: the publisher (and broker host) first, the WS server last, then its health. */
export const ROLES = Object.freeze([
  { role: 'backend', instance: 'backend_instance', service: 'odin-publisher' },
  { role: 'loadtest', instance: 'loadtest_instance', service: null },
  { role: 'ws', instance: 'ws_instance', service: 'odin-ws' },
]);

const NEW_VM_RETRIES = 9;
const NEEDED = ['health_url', 'ws_instance', 'backend_instance', 'zone', 'project'];
/** A fleet has no single WS instance: its nodes come from the group. */
const FLEET_NEEDED = NEEDED.filter((n) => n !== 'ws_instance');

/** Tools missing from PATH, each as its one-line install hint. Runs nothing. */
export function missingTools(env = process.env) {
  return ['gcloud', 'terraform'].filter((t) => !findTool(t, { env })).map((t) => INSTALL_HINTS[t]);
}

/** `terraform apply` of one stack; terraform knows no order between stacks: the caller's order is the order. */
export function applyStack(gcp, stack) {
  return gcp.terraform(stack, ['apply', '-input=false', '-auto-approve'], { stream: true });
}

async function loadCost(root) {
  try {
    return await import(pathToFileURL(path.join(root, 'scripts', 'cost.mjs')).href);
  } catch {
    return null;
  }
}

/** The cost estimate for the resolved config; deploy never fails on it. */
export async function costEstimate(root = ROOT, config) {
  const mod = await loadCost(root);
  if (!mod || typeof mod.estimateMonthlyCost !== 'function') return 'cost estimate unavailable: scripts/cost.mjs could not be loaded';
  try {
    const est = await (config ? mod.estimateMonthlyCost(config) : mod.estimateMonthlyCost());
    return typeof mod.formatEstimate === 'function' ? mod.formatEstimate(est) : JSON.stringify(est, null, 2);
  } catch (e) {
    return `cost estimate unavailable: ${e.message}`;
  }
}

/**
 * Adds a new version of the WS auth secret from a local file (never printed), then disables
 * every enabled version older than the previous one: at most two are valid, the rotation window.
 */
export async function addAuthSecret(gcp, { project, secret, file }) {
  if (!gcp.dryRun) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new OpsError(`--auth-secret-file ${file}: cannot read it (${e.code ?? e.message})`);
    }
    const value = text.replace(/\r?\n$/, '');
    if (Buffer.byteLength(value) < 32 || /[\r\n]/.test(value)) {
      throw new OpsError(`--auth-secret-file ${file}: must hold one line of at least 32 bytes (HS256 needs a 256-bit key; RFC 7518 3.2)`);
    }
  }
  await gcp.gcloud(['secrets', 'versions', 'add', secret, '--project', project, `--data-file=${file}`]);
  const listed = await gcp.gcloud(['secrets', 'versions', 'list', secret, '--project', project, '--filter=state=ENABLED', '--sort-by=~createTime', '--format=value(name)'], { quiet: true });
  const older = listed.stdout.split('\n').map((s) => s.trim()).filter(Boolean).slice(2);
  for (const v of older) await gcp.gcloud(['secrets', 'versions', 'disable', v.split('/').pop(), '--secret', secret, '--project', project]);
}

/**
 * The state bucket: created by the `state` stack (local state) from the machine that has that
 * stack's state or when the bucket does not exist yet; a bucket that already exists but is not in
 * this machine's state (created elsewhere) is used as it is rather than failing with 409.
 */
export async function ensureStateBucket(gcp, { stateBucket, project, env }, log) {
  // The state stack's local state file: beside the outdir (the project root by default).
  const local = path.join(path.dirname(gcp.outdir), `terraform.${env}.state.tfstate`);
  const found = await gcp.gcloud(['storage', 'buckets', 'describe', `gs://${stateBucket}`, '--project', project, '--format=value(name)'], { allowFail: true, quiet: true });
  if (!gcp.dryRun && found.exitCode === 0 && !fs.existsSync(local)) {
    log(`  state bucket gs://${stateBucket} exists (created from another checkout: ${path.basename(local)} is not here); using it as it is`);
    return;
  }
  await applyStack(gcp, 'state');
}

export async function deploy(gcp, deployment, { skipInfra = false, healthTimeoutS = 180, nodeTimeoutS = 600, authSecretFile, skipRoleCheck = false, log = (s) => process.stdout.write(`${s}\n`), now = new Date(), pollMs }) {
  const { project, plan } = deployment;
  const fleet = Boolean(plan.fleet);
  const cost = await loadCost(gcp.root);
  const machineTypes = cost?.loadPrices?.().machineTypes ?? {};

  log(`== preflight (project ${project}, env ${deployment.env}, zone ${deployment.zone})`);
  const pre = await preflight(gcp, deployment, { machineTypes, skipRoles: skipRoleCheck, log });
  log(`  ok: ${pre.account}`);

  log('== cost estimate');
  log(await costEstimate(gcp.root, deployment.config));

  // Built before anything is created: a build error should not cost a VM.
  log('== build');
  const version = releaseVersion({ ...gitState(gcp.root), date: now });
  await gcp.run(process.execPath, [path.join(gcp.root, 'scripts', 'build.mjs')], { display: 'node scripts/build.mjs', stream: true });
  const local = path.join('dist', 'releases', version);
  if (gcp.dryRun) log(`[dry-run] copy dist/{server,publisher,loadtest}.mjs to ${local}/`);
  else assembleRelease({ root: gcp.root, version, now });
  log(`release ${version}`);

  log('== synth');
  await gcp.synth();

  const stacks = deployStacks(deployment);
  if (!skipInfra) {
    log(`== bootstrap: APIs, WS address, secrets${deployment.stateBucket ? `, state bucket gs://${deployment.stateBucket}` : ''}`);
    if (deployment.stateBucket) await ensureStateBucket(gcp, deployment, log);
    await applyStack(gcp, 'bootstrap');
    if (pre.quotaDeferred) {
      const problems = await checkQuota(gcp, deployment, machineTypes);
      if (problems.length) throw new OpsError(problems.join('\nerror: '));
    }
  }
  if (authSecretFile) {
    log(`== auth secret: new version of ${plan.secrets.wsAuth} from ${authSecretFile}`);
    await addAuthSecret(gcp, { project, secret: plan.secrets.wsAuth, file: authSecretFile });
  }
  if (!skipInfra) {
    log(`== infrastructure: ${stacks.slice(1).join(', ')}`);
    for (const stack of stacks.slice(1)) await applyStack(gcp, stack);
  }
  const roles = ROLES.filter((r) => (r.role !== 'loadtest' || deployment.loadtestEnabled) && (r.role !== 'ws' || !fleet));
  const out = await readOutputs(gcp, [...(fleet ? FLEET_NEEDED : NEEDED), ...(deployment.loadtestEnabled ? ['loadtest_instance'] : [])]);

  for (const { role, instance, service } of roles) {
    const target = { instance: out[instance], zone: out.zone, project: out.project };
    log(`== converge ${role}: ${out[instance]} (re-run its startup script if the config changed)`);
    // A VM that was just created needs a minute before IAP SSH answers: retry connection failures.
    await gcp.ssh(target, convergeScript({ service }), { retries: NEW_VM_RETRIES, stream: true });
    log(`== release ${role}: ${version}${service ? ` (restart ${service})` : ''}`);
    await gcp.scp(target, [local], `${out[instance]}:/tmp/`, { retries: NEW_VM_RETRIES });
    if (service === 'odin-ws') log('restarting odin-ws: it drains, clients get 1001 and reconnect');
    await gcp.ssh(target, installScript({ version, service }), { retries: NEW_VM_RETRIES });
  }

  if (fleet) {
    await rollout(gcp, deployment, { version, log, nodeTimeoutS, intervalMs: pollMs });
    await checkPublic(gcp, out, log);
  } else {
    await waitForRelease(gcp, out, { version, healthTimeoutS, log });
  }
  log(`deployed ${version}`);
  return { version };
}

/**
 * The detailed /health is only served to WS_METRICS_ALLOW (loopback and private ranges), so it is
 * read on the WS VM itself over IAP SSH; its `version` must be the release just shipped. Then the
 * public port must answer {"status":"ok"} from here (the firewall and the static address).
 */
export async function waitForRelease(gcp, out, { version, healthTimeoutS, log }) {
  const ws = { instance: out.ws_instance, zone: out.zone, project: out.project };
  log(`== health: ${out.ws_instance} 127.0.0.1:3004/health serves ${version} with every shard up, then ${out.health_url}`);
  const probe = async () => parseRemoteHealth(await gcp.ssh(ws, healthProbeScript(), { allowFail: true, retries: 0, quiet: true }));
  if (gcp.dryRun) {
    await probe();
    log(`[dry-run] poll until healthy on ${version} (at most ${healthTimeoutS} s), then GET ${out.health_url}`);
    return;
  }
  const healthy = await waitHealthy(`${out.ws_instance}:127.0.0.1:3004/health`, {
    timeoutMs: healthTimeoutS * 1000,
    intervalMs: 3000,
    probe,
    evaluate: (r) => evaluateRelease(r, version),
    onAttempt: (n, v) => !v.ok && n % 5 === 1 && log(`  waiting: ${v.problem}`),
  });
  log(formatHealth(healthy.body));
  await checkPublic(gcp, out, log);
}

/** The public port from here: {"status":"ok"} through the firewall and the static address (the balancer, for a fleet). */
async function checkPublic(gcp, out, log) {
  if (gcp.dryRun) {
    log(`[dry-run] GET ${out.health_url}`);
    return;
  }
  const pub = evaluatePublicHealth(await fetchJson(out.health_url));
  if (!pub.ok) throw new OpsError(`${out.health_url} from here: ${pub.problem} (the server is healthy on the VM: check the ws-public firewall rule and the static address)`);
  log(`public ${out.health_url}: ok`);
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, {
    'skip-infra': { type: 'boolean', default: false },
    'health-timeout': { type: 'string' },
    'node-timeout': { type: 'string' },
    'poll-ms': { type: 'string' },
    'auth-secret-file': { type: 'string' },
    'skip-role-check': { type: 'boolean', default: false },
  }, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const healthTimeoutS = intFlag(values, 'health-timeout', { min: 1, max: 3600, def: 180 });
  const nodeTimeoutS = intFlag(values, 'node-timeout', { min: 1, max: 3600, def: 600 });
  // Not in the usage: how often a fleet rollout polls (tests shorten it).
  const pollMs = intFlag(values, 'poll-ms', { min: 10, max: 60_000, def: 3000 });
  if (values['auth-secret-file'] !== undefined && !values['auth-secret-file'].trim()) throw new UsageError('--auth-secret-file needs a path');
  if (!values['dry-run']) {
    const missing = missingTools(env);
    if (missing.length) throw new OpsError(missing.join('\nerror: '));
  }
  const deployment = await resolveDeployment(env);
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  await deploy(gcp, deployment, {
    skipInfra: values['skip-infra'],
    healthTimeoutS,
    nodeTimeoutS,
    pollMs,
    authSecretFile: values['auth-secret-file'],
    skipRoleCheck: values['skip-role-check'],
  });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
