// Stack outputs are the only source of addresses: read them with `terraform output -json` in
// each stack that declares a needed name, merge them into one object, and check the names an
// operation needs before it uses them.
import net from 'node:net';
import { OpsError } from './gcp.mjs';

const isUrl = (protocols) => (v) => {
  try {
    return protocols.includes(new URL(v).protocol);
  } catch {
    return false;
  }
};
const isIp = (v) => net.isIP(v) !== 0;
const isName = (v) => /^[a-z0-9][a-z0-9._:-]*$/i.test(v);

/** Every output an operation may read, with what a valid value looks like. */
export const OUTPUT_CHECKS = Object.freeze({
  ws_url: [isUrl(['ws:', 'wss:']), 'a ws:// URL'],
  health_url: [isUrl(['http:', 'https:']), 'an http(s) URL'],
  grafana_url: [isUrl(['http:', 'https:']), 'an http(s) URL'],
  console_url: [isUrl(['http:', 'https:']), 'an http(s) URL'],
  publisher_status_url: [isUrl(['http:', 'https:']), 'an http(s) URL'],
  ws_external_ip: [isIp, 'an IP address'],
  ws_internal_ip: [isIp, 'an IP address'],
  backend_internal_ip: [isIp, 'an IP address'],
  loadtest_internal_ip: [isIp, 'an IP address'],
  ws_instance: [isName, 'an instance name'],
  backend_instance: [isName, 'an instance name'],
  loadtest_instance: [isName, 'an instance name'],
  zone: [isName, 'a zone name'],
  project: [isName, 'a project id'],
});
export const OUTPUT_NAMES = Object.freeze(Object.keys(OUTPUT_CHECKS));

/**
 * Per stack `{ stack: { name: value | { nested... } } }`. Collect every known name at any
 * depth of any stack; the same name from two stacks must agree (zone, project).
 */
export function flattenOutputs(byStack) {
  const values = {};
  const from = {};
  const problems = [];
  const walk = (node, stack) => {
    for (const [key, value] of Object.entries(node ?? {})) {
      if (OUTPUT_NAMES.includes(key) && (typeof value !== 'object' || value === null)) {
        if (key in values && values[key] !== value) {
          problems.push(`${key} differs between stacks ${from[key]} (${values[key]}) and ${stack} (${value})`);
        }
        values[key] = value;
        from[key] = stack;
      } else if (value && typeof value === 'object' && !Array.isArray(value)) {
        walk(value, stack);
      }
    }
  };
  for (const [stack, outputs] of Object.entries(byStack ?? {})) walk(outputs, stack);
  return { values, problems };
}

/** The names in `required`, checked; throws one error listing every missing or malformed one. */
export function pickOutputs(values, required) {
  const problems = [];
  const picked = {};
  for (const name of required) {
    const v = values[name];
    const [ok, what] = OUTPUT_CHECKS[name] ?? [() => true, 'a value'];
    if (v === undefined || v === null || v === '') problems.push(`${name} is missing`);
    else if (typeof v !== 'string' || !ok(v)) problems.push(`${name}=${JSON.stringify(v)} is not ${what}`);
    else picked[name] = v;
  }
  if (problems.length) {
    throw new OpsError(`stack outputs are not usable: ${problems.join('; ')} (have the stacks been deployed? run \`task gcp:deploy\`)`);
  }
  return Object.freeze(picked);
}

/** What --dry-run prints in place of values only a real run can know. */
export function placeholderOutputs(required) {
  return Object.freeze(Object.fromEntries(required.map((n) => [n, `<${n}>`])));
}

/** Which stack declares each output name (the contract in stacks/outputs.ts). */
export async function outputStacks() {
  const { tsImport } = await import('tsx/esm/api');
  const { OUTPUTS_BY_STACK } = await tsImport('../../stacks/outputs.ts', import.meta.url);
  return OUTPUTS_BY_STACK;
}

/**
 * `terraform output -json` prints `{ name: { value, type, sensitive } }`; returns `{ name: value }`.
 * A stack that was never applied prints `{}`.
 */
export function parseTerraformOutputs(stack, stdout) {
  let parsed;
  try {
    parsed = JSON.parse(String(stdout).trim() || '{}');
  } catch (e) {
    throw new OpsError(`terraform output -json of stack ${stack} is not JSON (${e.message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new OpsError(`terraform output -json of stack ${stack}: expected an object of outputs`);
  const values = {};
  for (const [name, entry] of Object.entries(parsed)) {
    if (!entry || typeof entry !== 'object' || !('value' in entry)) throw new OpsError(`terraform output -json of stack ${stack}: output ${name} has no "value"`);
    values[name] = entry.value;
  }
  return values;
}

/**
 * Each stack's outputs, keyed by stack, for the stacks that declare one of `names` (in stack
 * order). allowFail: a stack whose init or output fails is left out instead of throwing.
 */
export async function readStackOutputs(gcp, names, { allowFail = false } = {}) {
  const byStack = await outputStacks();
  const stacks = Object.keys(byStack).filter((s) => byStack[s].some((n) => names.includes(n)));
  const merged = {};
  for (const stack of stacks) {
    const r = await gcp.terraform(stack, ['output', '-json'], { allowFail });
    if (gcp.dryRun || r.exitCode !== 0) continue;
    try {
      merged[stack] = parseTerraformOutputs(stack, r.stdout);
    } catch (e) {
      if (!allowFail) throw e;
    }
  }
  return merged;
}

/** Reads the stacks' outputs through the wrapper and returns the `required` ones, checked. */
export async function readOutputs(gcp, required) {
  const byStack = await readStackOutputs(gcp, required);
  if (gcp.dryRun) return placeholderOutputs(required);
  const { values, problems } = flattenOutputs(byStack);
  if (problems.length) throw new OpsError(`stack outputs disagree: ${problems.join('; ')}`);
  return pickOutputs(values, required);
}
