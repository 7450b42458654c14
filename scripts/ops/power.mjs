#!/usr/bin/env node
// gcp:stop / gcp:start: stop the VMs to pause the compute bill, keeping their disks and the
// static WS address; start them again (each VM re-runs its startup script at boot, and the
// services come back on the release they had). Stop prints what a stopped deployment still costs.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError, isMain, parseOptions, runMain } from './cli.mjs';
import { createGcp } from './gcp.mjs';
import { resolveDeployment } from './settings.mjs';

export const USAGE = `usage: power stop|start [--dry-run]
  stop    stop every odin VM of the environment (disks and the static address are kept)
  start   start them again`;

/** The environment's VMs that exist, by the names the stacks give them. */
export async function existingVms(gcp, { project, zone, env, plan }) {
  const names = Object.values(plan.vms).map((v) => v.instanceName);
  const r = await gcp.gcloud(['compute', 'instances', 'list', '--project', project, `--zones=${zone}`, `--filter=labels.env=${env}`, '--format=value(name)'], { quiet: true });
  if (gcp.dryRun) return names;
  const found = new Set(r.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
  return names.filter((n) => found.has(n));
}

export async function power(gcp, deployment, action, { log = (s) => process.stdout.write(`${s}\n`) } = {}) {
  const vms = await existingVms(gcp, deployment);
  if (!vms.length) {
    log(`no odin VMs of env ${deployment.env} in ${deployment.project} ${deployment.zone}: nothing to ${action}`);
    return;
  }
  log(`== ${action}: ${vms.join(', ')}`);
  await gcp.gcloud(['compute', 'instances', action, ...vms, '--zone', deployment.zone, '--project', deployment.project], { stream: true });
  if (action === 'stop') {
    const { stoppedMonthlyCost } = await import(pathToFileURL(path.join(gcp.root, 'scripts', 'cost.mjs')).href);
    const c = stoppedMonthlyCost(deployment.config);
    log(`stopped. Still billed while stopped: disks ${c.disks.toFixed(2)} + static address ${c.staticIp.toFixed(2)} = ${c.monthly.toFixed(2)} ${c.currency}/month (list prices of ${c.priceDate}); task gcp:delete removes the VMs and disks too.`);
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
