#!/usr/bin/env node
// gcp:delete: `terraform destroy` of the VMs' and the network's stacks, one by one in the reverse
// of the deploy order, to stop paying for them. Keeps the
// bootstrap stack (the static WS address clients and DNS know, the secrets, the enabled APIs)
// unless --all; never the state bucket (it is protected from destroy; the command to remove it
// is printed). Turns off the WS VM's deletion protection first. Prints what will be destroyed;
// goes ahead only with --yes or when the project id is typed at a terminal.
import { confirmTyped, isMain, parseOptions, runMain } from './cli.mjs';
import { OpsError, createGcp } from './gcp.mjs';
import { resolveDeployment } from './settings.mjs';
import { OUTPUT_NAMES, flattenOutputs, readStackOutputs } from './outputs.mjs';

export const USAGE = `usage: delete [--yes] [--all] [--dry-run]
  --yes   destroy without asking (needed when there is no terminal to ask at)
  --all   also the bootstrap stack: the static WS address (clients lose it) and the secrets`;

/** Kept by default: what outlives a teardown (see stacks/bootstrap-stack.ts). */
export const KEPT_STACKS = Object.freeze(['bootstrap']);
/** Reverse of the deploy order (stacks/app.ts): the VMs before the network they sit in. */
export const VM_STACKS = Object.freeze(['loadtest', 'ws', 'backend', 'network']);

/** What is there now, as far as the outputs tell; never fails (a half-deleted deployment has none). */
async function currentOutputs(gcp) {
  try {
    return flattenOutputs(await readStackOutputs(gcp, OUTPUT_NAMES, { allowFail: true })).values;
  } catch {
    return {};
  }
}

export async function destroy(gcp, deployment, { yes, all = false, confirm = confirmTyped, log = (s) => process.stdout.write(`${s}\n`) }) {
  const { project, zone, plan, stateBucket } = deployment;
  const known = await gcp.synth();
  const wanted = all ? [...VM_STACKS, ...KEPT_STACKS] : VM_STACKS;
  const stacks = known ? wanted.filter((s) => known.includes(s)) : wanted;
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
  // A fleet's nodes carry no deletion protection (the group recreates them anyway).
  if (stacks.includes('ws') && !plan.fleet) {
    // GCE refuses to delete a protected VM; a VM that is already gone is fine.
    await gcp.gcloud(['compute', 'instances', 'update', plan.vms.ws.instanceName, '--no-deletion-protection', '--zone', zone, '--project', project], { allowFail: true });
  }
  for (const stack of stacks) {
    log(`== destroy ${stack}`);
    await gcp.terraform(stack, ['destroy', '-input=false', '-auto-approve'], { stream: true });
  }
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
