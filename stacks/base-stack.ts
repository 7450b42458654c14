// What every stack shares: the google provider with default labels, and where state lives
// (a GCS bucket when configured, else a local file per environment and stack).
import { GcsBackend, LocalBackend, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import { GoogleProvider } from '@cdktf/provider-google/lib/provider/index.js';
import type { StackConfig } from './config/schema.js';
import type { StackName } from './outputs.js';
import type { DeploymentPlan } from './plan.js';

export interface BaseStackProps {
  readonly config: StackConfig;
  readonly plan: DeploymentPlan;
}

/**
 * Terraform runs each stack in cdktf.out/stacks/<stack>/, so this relative path is the repo root's
 * terraform.<env>.<stack>.tfstate on any machine (an absolute path would bake in one checkout).
 */
export function localStatePath(env: string, id: StackName): string {
  return `../../../terraform.${env}.${id}.tfstate`;
}

export class OdinStack extends TerraformStack {
  constructor(scope: Construct, id: StackName, { config, plan }: BaseStackProps, { localState = false } = {}) {
    super(scope, id);
    new GoogleProvider(this, 'google', {
      project: config.project,
      region: config.region,
      zone: config.zone,
      defaultLabels: { ...plan.labels },
    });
    if (config.stateBucket && !localState) {
      new GcsBackend(this, { bucket: config.stateBucket, prefix: `odin-ws/${config.env}/${id}` });
    } else {
      new LocalBackend(this, { path: localStatePath(config.env, id) });
    }
  }
}
