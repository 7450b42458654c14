// The WebSocket VM (e2-highcpu-8): the only VM with an external address, a static one reserved
// in the bootstrap stack, so clients and DNS keep working across VM rebuilds and teardowns. The server runs under systemd (see
// assets/odin-ws.service) rather than in a container: the front process hands sockets to its
// shard child processes, wants a high LimitNOFILE and host networking, and ships as one
// esbuild bundle, so a container would add a runtime and a layer without removing a step.
import type { Construct } from 'constructs';
import { TerraformOutput } from 'cdktf';
import { DataGoogleComputeAddress } from '@cdktf/provider-google/lib/data-google-compute-address/index.js';
import { DataGoogleComputeGlobalAddress } from '@cdktf/provider-google/lib/data-google-compute-global-address/index.js';
import type { Assets } from './assets.js';
import { OdinStack, type BaseStackProps } from './base-stack.js';
import { OdinVm } from './vm.js';
import { WsFleet } from './ws-fleet.js';
import { wsStartupScript } from './vm-scripts.js';

export interface WsStackProps extends BaseStackProps {
  readonly assets: Assets;
}

export class WsStack extends OdinStack {
  /** The single VM (ws.count 1), or the fleet (ws.count >= 2). */
  readonly vm?: OdinVm;
  readonly fleet?: WsFleet;

  constructor(scope: Construct, id: 'ws', props: WsStackProps) {
    super(scope, id, props);
    const { config, plan, assets } = props;
    const vm = plan.vms.ws;
    // Read by name, not through the bootstrap stack's state: the stacks share names, not state.
    const address = new DataGoogleComputeAddress(this, 'external-ip', { name: plan.wsAddressName, region: config.region });
    if (plan.fleet) {
      const wss = plan.fleet.tls ? new DataGoogleComputeGlobalAddress(this, 'wss-ip', { name: plan.fleet.tls.addressName }) : undefined;
      this.fleet = new WsFleet(this, 'fleet', {
        config,
        plan,
        fleet: plan.fleet,
        startupScript: wsStartupScript(config, plan, assets),
        address: address.address,
        wssAddress: wss?.address,
      });
      return;
    }
    this.vm = new OdinVm(this, 'vm', {
      config,
      plan,
      vm,
      machineType: config.ws.machineType,
      diskGb: config.ws.diskGb,
      natIp: address.address,
      readsSecrets: [plan.secrets.wsAuth],
      // The one VM clients depend on: a stray `terraform destroy` or console click must not take it.
      deletionProtection: true,
      startupScript: wsStartupScript(config, plan, assets),
    });

    new TerraformOutput(this, 'ws_internal_ip', { value: vm.internalIp });
    new TerraformOutput(this, 'ws_instance', { value: vm.instanceName });
  }
}
