// What every stack shares: the google provider with default labels, and where state lives
// (a GCS bucket when configured, else a local file per environment and stack).
import path from 'node:path';
import { GcsBackend, LocalBackend, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import { GoogleProvider } from '@cdktf/provider-google/lib/provider/index.js';
import type { StackConfig } from './config/schema.js';
import type { StackName } from './outputs.js';
import type { DeploymentPlan } from './plan.js';

export interface BaseStackProps {
  readonly config: StackConfig;
  readonly plan: DeploymentPlan;
  /** Directory for local state files when no bucket is configured (the entry passes the repo root). */
  readonly localStateDir: string;
}

export class OdinStack extends TerraformStack {
  constructor(scope: Construct, id: StackName, { config, plan, localStateDir }: BaseStackProps) {
    super(scope, id);
    new GoogleProvider(this, 'google', {
      project: config.project,
      region: config.region,
      zone: config.zone,
      defaultLabels: { ...plan.labels },
    });
    if (config.stateBucket) {
      new GcsBackend(this, { bucket: config.stateBucket, prefix: `odin-ws/${config.env}/${id}` });
    } else {
      new LocalBackend(this, { path: path.join(localStateDir, `terraform.${config.env}.${id}.tfstate`) });
    }
  }
}
