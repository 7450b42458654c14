#!/usr/bin/env node
// gcp:delete: `cdktf destroy` of the VMs and the network, to stop paying for them. Keeps the
// bootstrap stack (the static WS address clients and DNS know, the secrets, the enabled APIs)
// unless --all; never the state bucket (it is protected from destroy; the command to remove it
// is printed). Turns off the WS VM's deletion protection first. Prints what will be destroyed;
// goes ahead only with --yes or when the project id is typed at a terminal.
import { confirmTyped, isMain, parseOptions, runMain } from './cli.mjs';
import { OpsError, createGcp } from './gcp.mjs';
import { resolveDeployment } from './settings.mjs';
import { OUTPUT_NAMES, flattenOutputs } from './outputs.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const USAGE = `usage: delete [--yes] [--all] [--dry-run]
  --yes   destroy without asking (needed when there is no terminal to ask at)
  --all   also the bootstrap stack: the static WS address (clients lose it) and the secrets`;

/** Kept by default: what outlives a teardown (see stacks/bootstrap-stack.ts). */
export const KEPT_STACKS = Object.freeze(['bootstrap']);
export const VM_STACKS = Object.freeze(['loadtest', 'ws', 'backend', 'network']);

/** Stack names from `cdktf list` (a table: "Stack name   Path"). */
export function parseStackList(stdout) {
  return String(stdout)
    .split('\n')
    .map((l) => /^\s*([\w-]+)\s+(\S*cdktf\.out\S*)\s*$/.exec(l))
    .filter(Boolean)
    .map((m) => m[1]);
}

/** What is there now, as far as the outputs tell; never fails (a half-deleted deployment has none). */
async function currentOutputs(gcp) {
  if (gcp.dryRun) {
    await gcp.cdktf(['output', '*', '--outputs-file', '<tmp>/outputs.json']);
    return {};
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-outputs-'));
  try {
    const file = path.join(dir, 'outputs.json');
    const r = await gcp.cdktf(['output', '*', '--outputs-file', file], { allowFail: true });
    if (r.exitCode !== 0 || !fs.existsSync(file)) return {};
    return flattenOutputs(JSON.parse(fs.readFileSync(file, 'utf8'))).values;
  } catch {
    return {};
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function destroy(gcp, deployment, { yes, all = false, confirm = confirmTyped, log = (s) => process.stdout.write(`${s}\n`) }) {
  const { project, zone, plan, stateBucket } = deployment;
  const listed = await gcp.cdktf(['list']);
  const known = parseStackList(listed.stdout);
  const wanted = all ? [...VM_STACKS, ...KEPT_STACKS] : VM_STACKS;
  const stacks = gcp.dryRun ? wanted : wanted.filter((s) => known.includes(s));
  const out = await currentOutputs(gcp);
  log(`\nThis destroys every resource of these stacks in project ${project} (VMs, disks, internal addresses, network, firewall rules${all ? ', the static WS address, the secrets' : ''}):`);
  log(`  stacks: ${stacks.join(', ') || '(none)'}`);
  for (const name of OUTPUT_NAMES.filter((n) => n in out)) log(`  ${name}: ${out[name]}`);
  if (!all) log(`  kept: the static address ${plan.wsAddressName}${out.ws_external_ip ? ` (${out.ws_external_ip})` : ''}, the secrets, the APIs (--all removes the first two)`);
  if (!gcp.dryRun && !yes) {
    if (!(await confirm(`Destroy it in project ${project}?`, project))) {
      throw new OpsError('not confirmed: nothing destroyed (pass --yes to destroy without a prompt)');
    }
  }
  if (stacks.includes('ws')) {
    // GCE refuses to delete a protected VM; a VM that is already gone is fine.
    await gcp.gcloud(['compute', 'instances', 'update', plan.vms.ws.instanceName, '--no-deletion-protection', '--zone', zone, '--project', project], { allowFail: true });
  }
  if (stacks.length) await gcp.cdktf(['destroy', ...stacks, '--auto-approve'], { stream: true });
  log('destroyed');
  if (stateBucket) log(`the state bucket gs://${stateBucket} is kept (protected from destroy); to remove it too: gcloud storage rm -r gs://${stateBucket}`);
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, { yes: { type: 'boolean', short: 'y', default: false }, all: { type: 'boolean', default: false } }, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const deployment = await resolveDeployment(env);
  await destroy(createGcp({ dryRun: values['dry-run'], env }), deployment, { yes: values.yes, all: values.all });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
