// One VM as this project runs them: its own service account (log and metric writing, and read
// access to its own secret only), a reserved internal address, an optional static external
// address (reserved in the bootstrap stack), a Debian boot disk on pd-balanced, Shielded VM,
// OS Login for IAP SSH, and the rendered startup script.
import type { ITerraformDependable } from 'cdktf';
import { Construct } from 'constructs';
import { ComputeAddress } from '@cdktf/provider-google/lib/compute-address/index.js';
import { ComputeInstance } from '@cdktf/provider-google/lib/compute-instance/index.js';
import { ProjectIamMember } from '@cdktf/provider-google/lib/project-iam-member/index.js';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member/index.js';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account/index.js';
import type { StackConfig } from './config/schema.js';
import { SECRET_ACCESSOR, VM_ROLES, type DeploymentPlan, type VmPlan } from './plan.js';
import { terraformLiteral } from './render.js';

/** Narrow OAuth scopes on top of the narrow IAM roles, for a VM that reads no secret. */
export const VM_SCOPES = [
  'https://www.googleapis.com/auth/logging.write',
  'https://www.googleapis.com/auth/monitoring.write',
] as const;
/** Secret Manager accepts only the cloud-platform scope; the IAM grants still limit the VM to its own secret. */
export const SECRET_READER_SCOPES = ['https://www.googleapis.com/auth/cloud-platform'] as const;

export interface OdinVmProps {
  readonly config: StackConfig;
  readonly plan: DeploymentPlan;
  readonly vm: VmPlan;
  readonly machineType: string;
  readonly diskGb: number;
  readonly startupScript: string;
  /** A static external IPv4 to attach (only the WS VM; reserved in the bootstrap stack). */
  readonly natIp?: string;
  /** An ephemeral external IPv4 (the load-test VMs of a fleet: they connect to the fleet's public address as clients do). */
  readonly ephemeralExternalIp?: boolean;
  /** Alias range on the NIC for extra source addresses (the load-test VM). */
  readonly aliasCidr?: string;
  /** Secret Manager secret ids this VM's service account may read (secretAccessor on each). */
  readonly readsSecrets?: readonly string[];
  /** Project roles besides the log and metric writers (the backend's compute.viewer for Prometheus' service discovery of a fleet). */
  readonly extraRoles?: readonly string[];
  /** Run as another VM's account (and its grants) instead of an own one: the extra load-test VMs. */
  readonly shareAccountOf?: OdinVm;
  /** GCE refuses to delete the VM until this is turned off (gcp:delete does that first). */
  readonly deletionProtection?: boolean;
}

export class OdinVm extends Construct {
  readonly instance: ComputeInstance;
  readonly serviceAccount: ServiceAccount;
  readonly internalAddress: ComputeAddress;
  /** The IAM grants the VM needs before it boots. */
  readonly grants: ITerraformDependable[];

  constructor(scope: Construct, id: string, props: OdinVmProps) {
    super(scope, id);
    const { config, plan, vm } = props;
    const secrets = props.readsSecrets ?? [];

    let grants: ITerraformDependable[];
    if (props.shareAccountOf) {
      this.serviceAccount = props.shareAccountOf.serviceAccount;
      grants = props.shareAccountOf.grants;
    } else {
      this.serviceAccount = new ServiceAccount(this, 'sa', {
        accountId: vm.serviceAccountId,
        displayName: `odin ${config.env} ${vm.role} VM`,
        description: secrets.length ? 'Runs the VM; may write logs and metrics and read its own secrets.' : 'Runs the VM; may only write logs and metrics.',
      });
      const member = `serviceAccount:${this.serviceAccount.email}`;
      grants = [...VM_ROLES, ...(props.extraRoles ?? [])].map(
        (role) => new ProjectIamMember(this, `role-${role.split('/')[1]}`, { project: config.project, role, member }),
      );
      for (const secretId of secrets) {
        grants.push(new SecretManagerSecretIamMember(this, `reads-${secretId}`, { project: config.project, secretId, role: SECRET_ACCESSOR, member }));
      }
    }
    this.grants = grants;

    this.internalAddress = new ComputeAddress(this, 'internal-ip', {
      name: `${vm.instanceName}-internal`,
      region: config.region,
      addressType: 'INTERNAL',
      subnetwork: plan.subnetPath,
      address: vm.internalIp,
    });

    this.instance = new ComputeInstance(this, 'instance', {
      name: vm.instanceName,
      machineType: props.machineType,
      zone: config.zone,
      tags: [vm.tag],
      labels: { role: vm.role },
      allowStoppingForUpdate: true,
      deletionProtection: props.deletionProtection ?? false,
      bootDisk: {
        autoDelete: true,
        initializeParams: { image: config.image, size: props.diskGb, type: 'pd-balanced' },
      },
      networkInterface: [
        {
          subnetwork: plan.subnetPath,
          networkIp: this.internalAddress.address,
          accessConfig: props.natIp ? [{ natIp: props.natIp, networkTier: 'PREMIUM' }] : props.ephemeralExternalIp ? [{ networkTier: 'PREMIUM' }] : undefined,
          aliasIpRange: props.aliasCidr ? [{ ipCidrRange: props.aliasCidr }] : undefined,
        },
      ],
      serviceAccount: { email: this.serviceAccount.email, scopes: [...(secrets.length ? SECRET_READER_SCOPES : VM_SCOPES)] },
      shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
      // metadata (not metadata_startup_script): changing the script updates the VM in place
      // instead of replacing it; gcp:deploy re-runs it on the VM when it changed (converge).
      metadata: {
        'startup-script': terraformLiteral(props.startupScript),
        'enable-oslogin': 'TRUE',
        'block-project-ssh-keys': 'TRUE',
      },
      // The first boot already writes logs and reads its secret: grant the roles before the VM exists.
      dependsOn: grants,
    });
  }
}
