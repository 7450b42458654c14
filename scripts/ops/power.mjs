#!/usr/bin/env node
// gcp:stop / gcp:start: stop the VMs to pause the compute bill, keeping their disks and the
// static WS address; start them again (each VM re-runs its startup script at boot, and the
// services come back on the release they had). Stop prints what a stopped deployment still costs.
// A fleet's nodes are not stopped one by one (autohealing would recreate them): the group is
// resized to 0 and back to ws.count; new nodes boot on the release the group names.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError, isMain, parseOptions, runMain } from './cli.mjs';
import { OpsError, createGcp } from './gcp.mjs';
import { fleetTarget } from './rollout.mjs';
import { resolveDeployment } from './settings.mjs';

export const USAGE = `usage: power stop|start [--dry-run]
  stop    stop every odin VM of the environment (disks and the static address are kept)
  start   start them again`;

/** The environment's VMs that exist, by the names the stacks give them. */
export async function existingVms(gcp, { project, zone, env, plan }) {
  const names = [...new Set([...(plan.fleet ? [] : [plan.vms.ws.instanceName]), plan.vms.backend.instanceName, ...plan.loadtestVms.map((v) => v.instanceName)])];
  const r = await gcp.gcloud(['compute', 'instances', 'list', '--project', project, `--zones=${zone}`, `--filter=labels.env=${env}`, '--format=value(name)'], { quiet: true });
  if (gcp.dryRun) return names;
  const found = new Set(r.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  return names.filter((n) => found.has(n));
}

/** The fleet's group to 0 nodes (stop) or back to ws.count (start). */
export async function resizeFleet(gcp, deployment, action, log) {
  if (deployment.config.ws.autoscale) {
    throw new OpsError('the fleet autoscales (ws.autoscale): its size is the autoscaler\'s; stop it with task gcp:delete, or remove ws.autoscale and deploy first');
  }
  const t = fleetTarget(deployment);
  const size = action === 'stop' ? 0 : deployment.plan.fleet.count;
  log(`== ${action}: group ${t.group} to ${size} node(s)`);
  await gcp.gcloud(['compute', 'instance-groups', 'managed', 'resize', t.group, `--size=${size}`, '--region', t.region, '--project', t.project], { stream: true });
}

export async function power(gcp, deployment, action, { log = (s) => process.stdout.write(`${s}\n`) } = {}) {
  // Stop the fleet before the broker it reads from; start the broker first.
  if (deployment.plan.fleet && action === 'stop') await resizeFleet(gcp, deployment, action, log);
  const vms = await existingVms(gcp, deployment);
  if (!vms.length) {
    log(`no odin VMs of env ${deployment.env} in ${deployment.project} ${deployment.zone}: nothing to ${action}`);
  } else {
    log(`== ${action}: ${vms.join(', ')}`);
    await gcp.gcloud(['compute', 'instances', action, ...vms, '--zone', deployment.zone, '--project', deployment.project], { stream: true });
  }
  if (deployment.plan.fleet && action === 'start') await resizeFleet(gcp, deployment, action, log);
  if (!vms.length && !deployment.plan.fleet) return;
  if (action === 'stop') {
    const { stoppedMonthlyCost } = await import(pathToFileURL(path.join(gcp.root, 'scripts', 'cost.mjs')).href);
    const c = stoppedMonthlyCost(deployment.config);
    const rules = c.forwardingRules ? ` + forwarding rules ${c.forwardingRules.toFixed(2)}` : '';
    log(`stopped. Still billed while stopped: disks ${c.disks.toFixed(2)} + static address ${c.staticIp.toFixed(2)}${rules} = ${c.monthly.toFixed(2)} ${c.currency}/month (list prices of ${c.priceDate}); task gcp:delete removes the VMs and disks too.`);
  } else {
    log('started: each VM re-runs its startup script; check with task gcp:health:all in a minute or two');
  }
}

export async function main(argv, { env = process.env } = {}) {
  const { values, positionals } = parseOptions(argv, {}, { usage: USAGE, positionals: true });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1 || !['stop', 'start'].includes(positionals[0])) throw new UsageError('name one action: stop or start', USAGE);
  await power(createGcp({ dryRun: values['dry-run'], env }), await resolveDeployment(env), positionals[0]);
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
