// What the project needs before any VM, and what outlives `gcp:delete`: the Google APIs, the WS
// VM's static external address (clients and DNS keep it across teardowns), and the Secret Manager
// secrets. The secrets hold no value here: the operator (or `gcp:deploy --auth-secret-file`)
// adds versions out of band, so no secret ever reaches Terraform state or instance metadata.
import type { Construct } from 'constructs';
import { TerraformOutput } from 'cdktf';
import { ComputeAddress } from '@cdktf/provider-google/lib/compute-address/index.js';
import { ComputeGlobalAddress } from '@cdktf/provider-google/lib/compute-global-address/index.js';
import { ProjectService } from '@cdktf/provider-google/lib/project-service/index.js';
import { SecretManagerSecret } from '@cdktf/provider-google/lib/secret-manager-secret/index.js';
import { StorageBucket } from '@cdktf/provider-google/lib/storage-bucket/index.js';
import { OdinStack, type BaseStackProps } from './base-stack.js';
import { PORTS, REQUIRED_APIS } from './plan.js';

export class BootstrapStack extends OdinStack {
  readonly services: ProjectService[];
  readonly wsAddress: ComputeAddress;

  constructor(scope: Construct, id: 'bootstrap', props: BaseStackProps) {
    super(scope, id, props);
    const { config, plan } = props;
    this.services = REQUIRED_APIS.map(
      (service) =>
        new ProjectService(this, `api-${service.split('.')[0]}`, {
          project: config.project,
          service,
          // Turning an API off on destroy would break anything else in the project that uses it.
          disableOnDestroy: false,
          disableDependentServices: false,
        }),
    );
    this.wsAddress = new ComputeAddress(this, 'ws-external-ip', {
      name: plan.wsAddressName,
      region: config.region,
      addressType: 'EXTERNAL',
      networkTier: 'PREMIUM',
      dependsOn: this.services,
    });
    for (const [key, secretId] of Object.entries(plan.secrets)) {
      new SecretManagerSecret(this, `secret-${key}`, {
        secretId,
        project: config.project,
        replication: { auto: {} },
        labels: { role: key === 'wsAuth' ? 'ws' : 'backend' },
        dependsOn: this.services,
      });
    }
    if (plan.fleet) this.fleetResources(props);
    const ip = this.wsAddress.address;
    new TerraformOutput(this, 'ws_url', { value: `ws://${ip}:${PORTS.ws}/ws` });
    new TerraformOutput(this, 'health_url', { value: `http://${ip}:${PORTS.ws}/health` });
    new TerraformOutput(this, 'ws_external_ip', { value: ip });
  }

  /**
   * A fleet's releases bucket (gcp:deploy uploads each release; a VM the group creates fetches the
   * current one) and, with ws.domain, the wss:// global address: both outlive gcp:delete, like
   * the WS address. The bucket is private (uniform access, public access prevented); the fleet's
   * service account gets objectViewer on it in the ws stack.
   */
  private fleetResources({ config, plan }: BaseStackProps): void {
    const fleet = plan.fleet!;
    const bucket = new StorageBucket(this, 'releases', {
      name: fleet.releasesBucket,
      location: config.region.toUpperCase(),
      storageClass: 'STANDARD',
      uniformBucketLevelAccess: true,
      publicAccessPrevention: 'enforced',
      // Only build artifacts (dist/releases is the source): gcp:delete --all may empty it.
      forceDestroy: true,
      dependsOn: this.services,
    });
    new TerraformOutput(this, 'releases_bucket', { value: bucket.name });
    if (fleet.tls) {
      const wss = new ComputeGlobalAddress(this, 'wss-ip', { name: fleet.tls.addressName, addressType: 'EXTERNAL', ipVersion: 'IPV4', dependsOn: this.services });
      new TerraformOutput(this, 'wss_ip', { value: wss.address });
    }
  }
}
