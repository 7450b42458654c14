// Reads the per-environment config file once, applies env overrides, validates, freezes.
// The one resolution of project, region, zone, state bucket and environment: the app entry
// (stacks/main.ts, run by `npm run synth`), scripts/cost.mjs and every ops script (through
// scripts/ops/settings.mjs) call this with the same env; stacks get typed props. There is no
// placeholder project: without GCP_PROJECT or "project" in the file, nothing synthesizes.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StackConfigSchema, type StackConfig } from './schema.js';

export const DEFAULT_CONFIG_DIR = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_ENV = 'dev';

/** Env var -> config path it overrides. Empty values count as unset. */
export const ENV_OVERRIDES = {
  GCP_PROJECT: ['project'],
  GCP_REGION: ['region'],
  GCP_ZONE: ['zone'],
  WS_SHARDS: ['ws', 'shards'],
  TF_STATE_BUCKET: ['stateBucket'],
} as const satisfies Record<string, readonly string[]>;

const NUMERIC_OVERRIDES = new Set(['WS_SHARDS']);

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly problems: readonly string[] = [],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  env?: Readonly<Record<string, string | undefined>>;
  configDir?: string;
}

export function loadConfig({ env = {}, configDir = DEFAULT_CONFIG_DIR }: LoadConfigOptions = {}): StackConfig {
  const envName = env.ODIN_ENV?.trim() || DEFAULT_ENV;
  if (!/^[a-z][a-z0-9-]{0,15}$/.test(envName)) {
    throw new ConfigError(`ODIN_ENV="${envName}" is not an environment name (lowercase letters, digits, hyphens)`);
  }
  const file = path.join(configDir, `${envName}.json`);
  const raw = readConfigFile(file, envName, configDir);
  const sources = new Map<string, string>();
  for (const [name, target] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name]?.trim();
    if (!value) continue;
    const parsed = NUMERIC_OVERRIDES.has(name) && /^\d+$/.test(value) ? Number(value) : value;
    setPath(raw, target, parsed);
    sources.set(target.join('.'), `${name}="${value}"`);
  }
  if (raw.env !== undefined && raw.env !== envName) {
    throw new ConfigError(`${file}: "env" is "${String(raw.env)}" but the file is selected by ODIN_ENV=${envName}`);
  }
  raw.env = envName;

  const result = StackConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = issue.path.join('.') || '(root)';
      const from = sources.get(key) ? ` (from ${sources.get(key)})` : '';
      return `${key}${from}: ${issue.message}`;
    });
    throw new ConfigError(`invalid stack config ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, problems);
  }
  return deepFreeze(result.data);
}

function readConfigFile(file: string, envName: string, configDir: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    const known = readdirSync(configDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -5));
    throw new ConfigError(`no config file ${file} for ODIN_ENV=${envName} (known environments: ${known.join(', ') || 'none'})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`${file} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, keys: readonly string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node = (next && typeof next === 'object' ? next : (node[key] = {})) as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
