// The load-test VMs (e2-standard-8, loadtest.count of them): against the single WS VM they
// connect over its internal address (no egress charge, no NAT in the path; an optional alias
// range gives the load generator more source addresses than one IP's ephemeral ports allow).
// Against a fleet they connect to the balancer's public address as clients do, so each has an
// ephemeral external address (Cloud NAT would share a few ports among all their connections).
import type { Construct } from 'constructs';
import { TerraformOutput } from 'cdktf';
import type { Assets } from './assets.js';
import { OdinStack, type BaseStackProps } from './base-stack.js';
import { OdinVm } from './vm.js';
import { loadtestStartupScript } from './vm-scripts.js';

export interface LoadtestStackProps extends BaseStackProps {
  readonly assets: Assets;
}

export class LoadtestStack extends OdinStack {
  readonly vm: OdinVm;
  /** Every load-test VM (loadtest.count); the first is `vm`. */
  readonly vms: OdinVm[];

  constructor(scope: Construct, id: 'loadtest', props: LoadtestStackProps) {
    super(scope, id, props);
    const { config, plan, assets } = props;
    const vm = plan.vms.loadtest;
    this.vm = new OdinVm(this, 'vm', {
      config,
      plan,
      vm,
      machineType: config.loadtest.machineType,
      diskGb: config.loadtest.diskGb,
      aliasCidr: config.loadtest.sourceCidr,
      ephemeralExternalIp: Boolean(plan.fleet),
      startupScript: loadtestStartupScript(config, plan, assets),
    });

    // The others share the first one's service account; the alias range is the first one's alone.
    this.vms = [this.vm];
    for (const extra of plan.loadtestVms.slice(1)) {
      this.vms.push(
        new OdinVm(this, `vm-${extra.instanceName.split('-').pop()}`, {
          config,
          plan,
          vm: extra,
          machineType: config.loadtest.machineType,
          diskGb: config.loadtest.diskGb,
          shareAccountOf: this.vm,
          ephemeralExternalIp: Boolean(plan.fleet),
          startupScript: loadtestStartupScript(config, plan, assets),
        }),
      );
    }

    new TerraformOutput(this, 'loadtest_internal_ip', { value: vm.internalIp });
    new TerraformOutput(this, 'loadtest_instance', { value: vm.instanceName });
    if (plan.loadtestVms.length > 1) {
      new TerraformOutput(this, 'loadtest_instances', { value: plan.loadtestVms.map((v) => v.instanceName).join(',') });
    }
  }
}
