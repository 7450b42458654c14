#!/usr/bin/env node
// infra:diff: `terraform plan` of every stack (in apply order), or of the ones named.
import { UsageError, isMain, parseOptions, runMain } from './cli.mjs';
import { STACK_ID, createGcp } from './gcp.mjs';
import { allStacks, resolveDeployment } from './settings.mjs';

export const USAGE = 'usage: diff [STACK ...] [--dry-run]   (default: every stack of the env, in apply order)';

export async function main(argv, { env = process.env } = {}) {
  const { values, positionals } = parseOptions(argv, {}, { usage: USAGE, positionals: true });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const bad = positionals.filter((p) => !STACK_ID.test(p));
  if (bad.length) throw new UsageError(`not a stack name: ${bad.join(', ')}`, USAGE);
  // The same project the synth plans against (a clear error here instead of one per stack).
  const deployment = await resolveDeployment(env);
  console.log(`diff of env ${deployment.env} in project ${deployment.project}`);
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  // A named stack the synth did not write fails in the terraform door, naming the ones it did.
  const stacks = positionals.length ? positionals : allStacks(deployment);
  for (const stack of stacks) await gcp.terraform(stack, ['plan', '-input=false'], { stream: true });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
