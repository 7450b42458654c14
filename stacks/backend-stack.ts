// The backend VM (e2-medium, internal address only): Redpanda, Redpanda Console, Prometheus,
// Grafana and the publisher, all set up by its startup script. Operators reach Grafana and
// the console only through IAP TCP forwarding (task gcp:grafana / gcp:console).
import type { Construct } from 'constructs';
import { TerraformOutput } from 'cdktf';
import type { Assets } from './assets.js';
import { OdinStack, type BaseStackProps } from './base-stack.js';
import { PORTS, SD_ROLE } from './plan.js';
import { OdinVm } from './vm.js';
import { backendStartupScript } from './vm-scripts.js';

export interface BackendStackProps extends BaseStackProps {
  readonly assets: Assets;
}

export class BackendStack extends OdinStack {
  readonly vm: OdinVm;

  constructor(scope: Construct, id: 'backend', props: BackendStackProps) {
    super(scope, id, props);
    const { config, plan, assets } = props;
    const vm = plan.vms.backend;
    this.vm = new OdinVm(this, 'vm', {
      config,
      plan,
      vm,
      machineType: config.backend.machineType,
      diskGb: config.backend.diskGb,
      readsSecrets: [plan.secrets.grafanaAdmin],
      // Prometheus finds the fleet's nodes by listing instances: read-only compute, nothing more.
      extraRoles: plan.fleet ? [SD_ROLE] : [],
      startupScript: backendStartupScript(config, plan, assets),
    });
    const ip = vm.internalIp;

    new TerraformOutput(this, 'backend_internal_ip', { value: ip });
    new TerraformOutput(this, 'grafana_url', { value: `http://${ip}:${PORTS.grafana}` });
    new TerraformOutput(this, 'console_url', { value: `http://${ip}:${PORTS.console}` });
    new TerraformOutput(this, 'publisher_status_url', { value: `http://${ip}:${PORTS.publisher}/status` });
    new TerraformOutput(this, 'backend_instance', { value: vm.instanceName });
  }
}
