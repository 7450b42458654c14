#!/usr/bin/env node
// The WS fleet's release and rolling update (ws.count >= 2), called by gcp:deploy and runnable
// alone (`node scripts/ops/rollout.mjs --version V` re-rolls a release already in the bucket).
// 1. The release directory is packed, its sha256 taken, and uploaded to the releases bucket.
// 2. The group's all-instances metadata names it (odin-release, odin-release-sha256): from then
//    on every VM the group creates (autohealing, scale-out) boots on it; running nodes keep theirs.
// 3. Node by node: wait until another node is healthy in the balancer (never none serving),
//    stop odin-ws without blocking (SIGTERM: the server answers /health 503 while still serving
//    for WS_DRAIN_NOTICE_MS, so the balancer takes it out of rotation, then closes its clients
//    with 1001 and a reconnect window), wait until the balancer has it out and the service has
//    stopped, recreate the VM from the group (same name, fresh boot on the new release), wait
//    for its detailed /health to report every shard up on the new version and the balancer to
//    count it healthy again; then the next. A node that fails stops the rollout, named (exit 1).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError, intFlag, isMain, parseOptions, runMain } from './cli.mjs';
import { OpsError, createGcp } from './gcp.mjs';
import { evaluateRelease, parseRemoteHealth, waitHealthy } from './health.mjs';
import { healthProbeScript } from './release.mjs';
import { resolveDeployment } from './settings.mjs';

export const USAGE = `usage: rollout --version VERSION [--dry-run] [--node-timeout SECONDS] [--drain-timeout SECONDS]
  (a fleet only: ws.count >= 2 in stacks/config/$ODIN_ENV.json)
  --version V          the release to roll out: dist/releases/V is uploaded if it is not in the bucket yet
  --node-timeout S     how long a recreated node may take to serve V (default 600)
  --drain-timeout S    how long a node may take to leave the balancer and stop (default 120)`;

const METADATA = Object.freeze({ version: 'odin-release', sha256: 'odin-release-sha256' });

/** The fleet's names from the plan (the stacks derive the same): group, region, backend service, bucket. */
export function fleetTarget(deployment) {
  const fleet = deployment.plan.fleet;
  if (!fleet) throw new OpsError('not a fleet: ws.count is 1 (the single WS VM is deployed in place)');
  return Object.freeze({
    project: deployment.project,
    region: deployment.region,
    group: fleet.groupName,
    backendService: fleet.backendServiceName,
    bucket: fleet.releasesBucket,
  });
}

const regional = (t) => ['--region', t.region, '--project', t.project];

/** `projects/p/zones/z/instances/name` (or a full URL) -> { name, zone }; null when it is not one. */
export function parseInstanceUrl(url) {
  const m = /(?:^|\/)zones\/([a-z]+-[a-z]+\d+-[a-z])\/instances\/([a-z][a-z0-9-]{0,62})$/.exec(String(url ?? ''));
  return m ? { zone: m[1], name: m[2] } : null;
}

/** The group's nodes (name, zone, status) in name order, from `list-instances --format=json`. */
export async function listNodes(gcp, target) {
  const r = await gcp.gcloud(['compute', 'instance-groups', 'managed', 'list-instances', target.group, ...regional(target), '--format=json'], { quiet: true });
  if (gcp.dryRun) return [];
  let rows;
  try {
    rows = JSON.parse(r.stdout || '[]');
  } catch {
    throw new OpsError(`list-instances ${target.group}: not JSON`, { detail: r.stdout });
  }
  if (!Array.isArray(rows)) throw new OpsError(`list-instances ${target.group}: expected a JSON list`);
  const nodes = rows.map((row) => {
    const parsed = parseInstanceUrl(row?.instance);
    if (!parsed) throw new OpsError(`list-instances ${target.group}: ${JSON.stringify(row?.instance)} is not an instance URL`);
    return { ...parsed, status: String(row.instanceStatus ?? row.status ?? 'UNKNOWN') };
  });
  return nodes.sort((a, b) => a.name.localeCompare(b.name));
}

/** Instance name -> health state in the balancer's backend service (HEALTHY, UNHEALTHY, ...). */
export async function balancerHealth(gcp, target) {
  const r = await gcp.gcloud(['compute', 'backend-services', 'get-health', target.backendService, ...regional(target), '--format=json'], { quiet: true, allowFail: true });
  const states = new Map();
  if (gcp.dryRun || r.exitCode !== 0) return states;
  let parsed;
  try {
    parsed = JSON.parse(r.stdout || '[]');
  } catch {
    return states;
  }
  for (const group of Array.isArray(parsed) ? parsed : [parsed]) {
    for (const s of group?.status?.healthStatus ?? []) {
      const node = parseInstanceUrl(s?.instance);
      if (node) states.set(node.name, String(s.healthState ?? 'UNKNOWN'));
    }
  }
  return states;
}

/** sha256 (hex) of a file. */
export function sha256File(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/**
 * Packs dist/releases/<version>/ as <version>.tar.gz (the archive holds <version>/...), uploads it
 * as gs://<bucket>/releases/<version>.tar.gz, returns its sha256.
 */
export async function uploadRelease(gcp, target, { version, releasesDir }) {
  if (!/^[\w.-]{1,100}$/.test(version)) throw new OpsError(`bad release version ${JSON.stringify(version)}`);
  const archive = path.join(releasesDir, `${version}.tar.gz`);
  await gcp.run('tar', ['-czf', archive, '-C', releasesDir, version]);
  const sha256 = gcp.dryRun ? '<sha256>' : sha256File(archive);
  await gcp.gcloud(['storage', 'cp', archive, `gs://${target.bucket}/releases/${version}.tar.gz`, '--project', target.project]);
  return sha256;
}

/** Names the release in the group's all-instances metadata: what every VM the group creates boots on. */
export function setGroupRelease(gcp, target, { version, sha256 }) {
  return gcp.gcloud([
    'compute', 'instance-groups', 'managed', 'all-instances-config', 'update', target.group, ...regional(target),
    `--metadata=${METADATA.version}=${version},${METADATA.sha256}=${sha256}`,
  ]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (returns a problem string, or null when satisfied) until it passes or timeoutMs runs out. */
export async function waitFor(what, check, { timeoutMs, intervalMs }) {
  const deadline = Date.now() + timeoutMs;
  const maxAttempts = Math.ceil(timeoutMs / intervalMs) + 1;
  let problem = 'not checked';
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    problem = await check();
    if (problem === null) return;
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  throw new OpsError(`${what}: not within ${Math.round(timeoutMs / 1000)} s (${problem})`);
}

/** Stops odin-ws without waiting (systemd sends SIGTERM; Restart=always does not restart a stopped unit). */
export const DRAIN_SCRIPT = 'sudo systemctl stop --no-block odin-ws.service && echo draining';
/** Prints the unit's state; `inactive` or `failed` once the server has closed its clients and exited. */
export const STOPPED_PROBE = 'systemctl is-active odin-ws.service || true';

/**
 * Rolls `version` over the nodes one at a time (see the header). Returns the nodes updated.
 * Throws OpsError naming the node that failed and the nodes left on the old release.
 */
export async function rollNodes(gcp, target, { version, nodes, log, nodeTimeoutS = 600, drainTimeoutS = 120, intervalMs = 3000 }) {
  const ssh = (node, command, opts = {}) => gcp.ssh({ instance: node.name, zone: node.zone, project: target.project }, command, opts);
  const updated = [];
  // With nothing healthy before we start (a first deploy, an outage) there is nothing to keep serving.
  const before = await balancerHealth(gcp, target);
  const anyHealthy = [...before.values()].includes('HEALTHY');
  if (!anyHealthy && !gcp.dryRun) log('  no node is healthy in the balancer yet: updating without waiting for one');
  for (const [i, node] of nodes.entries()) {
    const label = `node ${node.name} (${i + 1}/${nodes.length}, ${node.zone})`;
    try {
      if (gcp.dryRun) {
        log(`[dry-run] ${label}: wait for another healthy node, drain, recreate, wait for ${version}`);
        await ssh(node, DRAIN_SCRIPT);
        await gcp.gcloud(['compute', 'instance-groups', 'managed', 'recreate-instances', target.group, `--instances=${node.name}`, ...regional(target)]);
        await ssh(node, healthProbeScript());
        continue;
      }
      log(`== ${label}`);
      if (anyHealthy && nodes.length >= 2) {
        await waitFor('another healthy node before draining', async () => {
          const states = await balancerHealth(gcp, target);
          const others = [...states].filter(([name, state]) => name !== node.name && state === 'HEALTHY');
          return others.length ? null : 'no other node is healthy in the balancer';
        }, { timeoutMs: nodeTimeoutS * 1000, intervalMs });
      }
      log('  drain: SIGTERM (503 while serving, then clients closed with a reconnect window)');
      await ssh(node, DRAIN_SCRIPT, { retries: 2 });
      await waitFor('out of the balancer', async () => {
        const state = (await balancerHealth(gcp, target)).get(node.name);
        return state === 'HEALTHY' ? 'still HEALTHY in the balancer' : null;
      }, { timeoutMs: drainTimeoutS * 1000, intervalMs });
      await waitFor('odin-ws stopped', async () => {
        const r = await ssh(node, STOPPED_PROBE, { allowFail: true, quiet: true });
        const state = r.stdout.trim().split('\n').pop();
        return state === 'inactive' || state === 'failed' ? null : `odin-ws is ${state || 'unknown'}`;
      }, { timeoutMs: drainTimeoutS * 1000, intervalMs });
      log('  drained; recreating the VM on the new release');
      await gcp.gcloud(['compute', 'instance-groups', 'managed', 'recreate-instances', target.group, `--instances=${node.name}`, ...regional(target)]);
      const probe = async () => parseRemoteHealth(await ssh(node, healthProbeScript(), { allowFail: true, retries: 0, quiet: true }));
      await waitHealthy(`${node.name}:127.0.0.1:3004/health`, {
        timeoutMs: nodeTimeoutS * 1000,
        intervalMs,
        probe,
        evaluate: (r) => evaluateRelease(r, version),
        onAttempt: (n, v) => !v.ok && n % 10 === 1 && log(`  waiting: ${v.problem}`),
      });
      await waitFor('healthy in the balancer', async () => {
        const state = (await balancerHealth(gcp, target)).get(node.name);
        return state === 'HEALTHY' ? null : `balancer says ${state ?? 'nothing'}`;
      }, { timeoutMs: nodeTimeoutS * 1000, intervalMs });
      log(`  ${node.name}: serving ${version}, healthy in the balancer`);
      updated.push(node.name);
    } catch (e) {
      const left = nodes.slice(i + 1).map((n) => n.name);
      const message = `rollout stopped at ${label}: ${e.message}`;
      const detail = [`updated: ${updated.join(', ') || 'none'}`, `not updated: ${left.join(', ') || 'none'}`, e.detail ? String(e.detail) : ''].filter(Boolean).join('\n');
      throw new OpsError(message, { detail });
    }
  }
  return updated;
}

/** Upload (unless already there), name it on the group, roll it over every node. */
export async function rollout(gcp, deployment, { version, root = gcp.root, log = (s) => process.stdout.write(`${s}\n`), nodeTimeoutS, drainTimeoutS, intervalMs } = {}) {
  const target = fleetTarget(deployment);
  const releasesDir = path.join(root, 'dist', 'releases');
  if (!gcp.dryRun && !fs.existsSync(path.join(releasesDir, version, 'release.json'))) {
    throw new OpsError(`dist/releases/${version}/release.json not found: build the release first (gcp:deploy does)`);
  }
  log(`== release ${version} -> gs://${target.bucket}/releases/${version}.tar.gz`);
  const sha256 = await uploadRelease(gcp, target, { version, releasesDir });
  log(`  sha256 ${sha256}`);
  log(`== group ${target.group}: new VMs boot on ${version}`);
  await setGroupRelease(gcp, target, { version, sha256 });
  const nodes = await listNodes(gcp, target);
  if (!gcp.dryRun && nodes.length === 0) throw new OpsError(`group ${target.group} has no nodes`);
  log(`== rolling ${version} over ${gcp.dryRun ? 'each node' : `${nodes.length} node(s): ${nodes.map((n) => n.name).join(', ')}`}`);
  const updated = await rollNodes(gcp, target, { version, nodes: gcp.dryRun ? [{ name: `${target.group}-NODE`, zone: deployment.zone }] : nodes, log, nodeTimeoutS, drainTimeoutS, intervalMs });
  return { version, sha256, updated };
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, { version: { type: 'string' }, 'node-timeout': { type: 'string' }, 'drain-timeout': { type: 'string' }, 'poll-ms': { type: 'string' } }, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.version || !/^[\w.-]{1,100}$/.test(values.version)) throw new UsageError('--version needs a release name (letters, digits, . _ -)', USAGE);
  const nodeTimeoutS = intFlag(values, 'node-timeout', { min: 1, max: 3600, def: 600 });
  const drainTimeoutS = intFlag(values, 'drain-timeout', { min: 1, max: 3600, def: 120 });
  const intervalMs = intFlag(values, 'poll-ms', { min: 10, max: 60_000, def: 3000 });
  const deployment = await resolveDeployment(env);
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  const r = await rollout(gcp, deployment, { version: values.version, nodeTimeoutS, drainTimeoutS, intervalMs });
  console.log(`rolled out ${r.version} to ${r.updated.length} node(s)`);
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
