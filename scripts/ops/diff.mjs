#!/usr/bin/env node
// infra:diff: `cdktf diff` (a terraform plan) of every stack, or the ones named.
import { UsageError, isMain, parseOptions, runMain } from './cli.mjs';
import { createGcp } from './gcp.mjs';
import { parseStackList } from './delete.mjs';
import { resolveDeployment } from './settings.mjs';

export const USAGE = 'usage: diff [STACK ...] [--dry-run]   (default: every stack from `cdktf list`)';

export async function main(argv, { env = process.env } = {}) {
  const { values, positionals } = parseOptions(argv, {}, { usage: USAGE, positionals: true });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const bad = positionals.filter((p) => !/^[\w-]{1,64}$/.test(p));
  if (bad.length) throw new UsageError(`not a stack name: ${bad.join(', ')}`, USAGE);
  // The same project cdktf will plan against (a clear error here instead of one per stack).
  const { project, env: name } = await resolveDeployment(env);
  console.log(`diff of env ${name} in project ${project}`);
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  // cdktf diff takes one stack at a time.
  const stacks = positionals.length ? positionals : parseStackList((await gcp.cdktf(['list'])).stdout);
  if (gcp.dryRun && !positionals.length) stacks.push('<each stack>');
  for (const stack of stacks) await gcp.cdktf(['diff', stack], { stream: true });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
