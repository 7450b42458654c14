// One VM as this project runs them: its own service account (log and metric writing only),
// a reserved internal address, an optional static external address, a Debian boot disk on
// pd-balanced, Shielded VM, OS Login for IAP SSH, and the rendered startup script.
import { Construct } from 'constructs';
import { ComputeAddress } from '@cdktf/provider-google/lib/compute-address/index.js';
import { ComputeInstance } from '@cdktf/provider-google/lib/compute-instance/index.js';
import { ProjectIamMember } from '@cdktf/provider-google/lib/project-iam-member/index.js';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account/index.js';
import type { StackConfig } from './config/schema.js';
import { VM_ROLES, type DeploymentPlan, type VmPlan } from './plan.js';
import { terraformLiteral } from './render.js';

/** Narrow OAuth scopes on top of the narrow IAM roles: the VMs call no other Google API. */
export const VM_SCOPES = [
  'https://www.googleapis.com/auth/logging.write',
  'https://www.googleapis.com/auth/monitoring.write',
] as const;

export interface OdinVmProps {
  readonly config: StackConfig;
  readonly plan: DeploymentPlan;
  readonly vm: VmPlan;
  readonly machineType: string;
  readonly diskGb: number;
  readonly startupScript: string;
  /** Reserve a static external IPv4 and attach it (only the WS VM). */
  readonly externalIp?: boolean;
  /** Alias range on the NIC for extra source addresses (the load-test VM). */
  readonly aliasCidr?: string;
}

export class OdinVm extends Construct {
  readonly instance: ComputeInstance;
  readonly serviceAccount: ServiceAccount;
  readonly internalAddress: ComputeAddress;
  readonly externalAddress?: ComputeAddress;

  constructor(scope: Construct, id: string, props: OdinVmProps) {
    super(scope, id);
    const { config, plan, vm } = props;

    this.serviceAccount = new ServiceAccount(this, 'sa', {
      accountId: vm.serviceAccountId,
      displayName: `odin ${config.env} ${vm.role} VM`,
      description: 'Runs the VM; may only write logs and metrics.',
    });
    const grants = VM_ROLES.map(
      (role) =>
        new ProjectIamMember(this, `role-${role.split('/')[1]}`, {
          project: config.project,
          role,
          member: `serviceAccount:${this.serviceAccount.email}`,
        }),
    );

    this.internalAddress = new ComputeAddress(this, 'internal-ip', {
      name: `${vm.instanceName}-internal`,
      region: config.region,
      addressType: 'INTERNAL',
      subnetwork: plan.subnetPath,
      address: vm.internalIp,
    });
    if (props.externalIp) {
      this.externalAddress = new ComputeAddress(this, 'external-ip', {
        name: `${vm.instanceName}-external`,
        region: config.region,
        addressType: 'EXTERNAL',
        networkTier: 'PREMIUM',
      });
    }

    this.instance = new ComputeInstance(this, 'instance', {
      name: vm.instanceName,
      machineType: props.machineType,
      zone: config.zone,
      tags: [vm.tag],
      labels: { role: vm.role },
      allowStoppingForUpdate: true,
      bootDisk: {
        autoDelete: true,
        initializeParams: { image: config.image, size: props.diskGb, type: 'pd-balanced' },
      },
      networkInterface: [
        {
          subnetwork: plan.subnetPath,
          networkIp: this.internalAddress.address,
          accessConfig: this.externalAddress ? [{ natIp: this.externalAddress.address, networkTier: 'PREMIUM' }] : undefined,
          aliasIpRange: props.aliasCidr ? [{ ipCidrRange: props.aliasCidr }] : undefined,
        },
      ],
      serviceAccount: { email: this.serviceAccount.email, scopes: [...VM_SCOPES] },
      shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
      // metadata (not metadata_startup_script): changing the script updates the VM in place
      // instead of replacing it; it takes effect on the next boot or a re-run by deploy.
      metadata: {
        'startup-script': terraformLiteral(props.startupScript),
        'enable-oslogin': 'TRUE',
        'block-project-ssh-keys': 'TRUE',
      },
      // The first boot already writes logs and metrics: grant the roles before the VM exists.
      dependsOn: grants,
    });
  }
}
