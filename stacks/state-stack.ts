// The Terraform state bucket, when one is configured: versioned (a bad apply can be rolled back
// to an earlier state object), uniform bucket-level access, public access prevented, and
// protected from `terraform destroy`. Its own state is local: a bucket cannot hold the state
// that creates it.
import type { Construct } from 'constructs';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket/index.js';
import { OdinStack, type BaseStackProps } from './base-stack.js';

export interface StateStackProps extends BaseStackProps {
  readonly bucket: string;
}

export class StateStack extends OdinStack {
  readonly bucket: StorageBucket;

  constructor(scope: Construct, id: 'state', props: StateStackProps) {
    super(scope, id, props, { localState: true });
    this.bucket = new StorageBucket(this, 'bucket', {
      name: props.bucket,
      location: props.config.region.toUpperCase(),
      storageClass: 'STANDARD',
      versioning: { enabled: true },
      uniformBucketLevelAccess: true,
      publicAccessPrevention: 'enforced',
      forceDestroy: false,
      lifecycle: { preventDestroy: true },
    });
  }
}
