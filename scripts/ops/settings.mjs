// The one resolution of project, region, zone, state bucket and environment for every ops
// script: the same loader (stacks/config/load.ts) and the same env that the synth (stacks/main.ts)
// runs the stacks with, so a script never acts on a different project than the plan it applies.
import { OpsError } from './gcp.mjs';

/**
 * Loads the validated stack config (ODIN_ENV picks stacks/config/<env>.json; GCP_PROJECT,
 * GCP_REGION, GCP_ZONE, WS_SHARDS, TF_STATE_BUCKET override it) and the names the stacks derive.
 * @returns {Promise<Readonly<{ env: string, project: string, region: string, zone: string,
 *   stateBucket: string | undefined, loadtestEnabled: boolean, config: any, plan: any, requiredApis: readonly string[] }>>}
 */
export async function resolveDeployment(env = process.env) {
  const { tsImport } = await import('tsx/esm/api');
  const { loadConfig, ConfigError } = await tsImport('../../stacks/config/load.ts', import.meta.url);
  const { planDeployment, REQUIRED_APIS } = await tsImport('../../stacks/plan.ts', import.meta.url);
  let config;
  try {
    config = loadConfig({ env });
  } catch (e) {
    if (e instanceof ConfigError) throw new OpsError(e.message);
    throw e;
  }
  return Object.freeze({
    env: config.env,
    project: config.project,
    region: config.region,
    zone: config.zone,
    stateBucket: config.stateBucket,
    loadtestEnabled: config.loadtest.enabled,
    config,
    plan: planDeployment(config),
    requiredApis: REQUIRED_APIS,
  });
}

/**
 * The stacks `gcp:deploy` applies, in order (the load-test VM only when loadtest.enabled); the
 * `state` stack, when there is a bucket, goes before all of them. Terraform has no cross-stack
 * order: this list is it (mirrors the dependencies declared in stacks/app.ts).
 */
export function deployStacks({ loadtestEnabled }) {
  return ['bootstrap', 'network', 'backend', 'ws', ...(loadtestEnabled ? ['loadtest'] : [])];
}

/** Every stack the synth writes for this deployment, in apply order (infra:diff's default). */
export function allStacks({ stateBucket }) {
  return [...(stateBucket ? ['state'] : []), 'bootstrap', 'network', 'backend', 'ws', 'loadtest'];
}

/** `a.b.c.d/n` -> `first-last` for the load generator's --source-ips. */
export function cidrToRange(cidr) {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr ?? '');
  if (!m) return null;
  const base = m.slice(1, 5).reduce((v, o) => v * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(m[5]));
  const ip = (v) => [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join('.');
  return `${ip(base)}-${ip(base + size - 1)}`;
}
