// The WebSocket VM (e2-highcpu-8): the only VM with an external address, a static one, so
// clients and DNS keep working across VM rebuilds. The server runs under systemd (see
// assets/odin-ws.service) rather than in a container: the front process hands sockets to its
// shard child processes, wants a high LimitNOFILE and host networking, and ships as one
// esbuild bundle, so a container would add a runtime and a layer without removing a step.
import type { Construct } from 'constructs';
import { TerraformOutput } from 'cdktf';
import type { Assets } from './assets.js';
import { OdinStack, type BaseStackProps } from './base-stack.js';
import { PORTS } from './plan.js';
import { OdinVm } from './vm.js';
import { wsStartupScript } from './vm-scripts.js';

export interface WsStackProps extends BaseStackProps {
  readonly assets: Assets;
}

export class WsStack extends OdinStack {
  readonly vm: OdinVm;

  constructor(scope: Construct, id: 'ws', props: WsStackProps) {
    super(scope, id, props);
    const { config, plan, assets } = props;
    const vm = plan.vms.ws;
    this.vm = new OdinVm(this, 'vm', {
      config,
      plan,
      vm,
      machineType: config.ws.machineType,
      diskGb: config.ws.diskGb,
      externalIp: true,
      startupScript: wsStartupScript(config, plan, assets),
    });
    const externalIp = this.vm.externalAddress!.address;

    new TerraformOutput(this, 'ws_url', { value: `ws://${externalIp}:${PORTS.ws}/ws` });
    new TerraformOutput(this, 'health_url', { value: `http://${externalIp}:${PORTS.ws}/health` });
    new TerraformOutput(this, 'ws_external_ip', { value: externalIp });
    new TerraformOutput(this, 'ws_internal_ip', { value: vm.internalIp });
    new TerraformOutput(this, 'ws_instance', { value: vm.instanceName });
  }
}
