#!/usr/bin/env node
// gcp:delete: `cdktf destroy` of every stack, to stop paying for the VMs. Prints what will be
// destroyed first; goes ahead only with --yes or when the project id is typed at a terminal.
import { confirmTyped, isMain, parseOptions, runMain } from './cli.mjs';
import { OpsError, createGcp } from './gcp.mjs';
import { OUTPUT_NAMES, flattenOutputs } from './outputs.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const USAGE = `usage: delete [--yes] [--dry-run]
  --yes   destroy without asking (needed when there is no terminal to ask at)`;

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

export async function destroy(gcp, { yes, confirm = confirmTyped, log = (s) => process.stdout.write(`${s}\n`) }) {
  const listed = await gcp.cdktf(['list']);
  const stacks = parseStackList(listed.stdout);
  const out = await currentOutputs(gcp);
  log('\nThis destroys every resource of these stacks (VMs, disks, addresses, network, firewall rules):');
  log(`  stacks: ${stacks.length ? stacks.join(', ') : gcp.dryRun ? '<from cdktf list>' : '(none listed)'}`);
  for (const name of OUTPUT_NAMES.filter((n) => n in out)) log(`  ${name}: ${out[name]}`);
  if (!gcp.dryRun && !yes) {
    const expected = out.project ?? 'destroy';
    if (!(await confirm(`Destroy all of it${out.project ? ` in project ${out.project}` : ''}?`, expected))) {
      throw new OpsError('not confirmed: nothing destroyed (pass --yes to destroy without a prompt)');
    }
  }
  await gcp.cdktf(['destroy', '*', '--auto-approve'], { stream: true });
  log('destroyed');
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, { yes: { type: 'boolean', short: 'y', default: false } }, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  await destroy(createGcp({ dryRun: values['dry-run'], env }), { yes: values.yes });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
