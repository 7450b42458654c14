// VPC, subnet, Cloud Router + NAT (egress for VMs without an external IP) and the firewall.
// Only tcp:3004 on the WS VM is open to the internet; SSH, Grafana and the console come only
// through IAP TCP forwarding (the backend has no external address, so a rule for any other
// outside range could never match); the backend's service ports only from inside the subnet.
import type { Construct } from 'constructs';
import { TerraformOutput } from 'cdktf';
import { ComputeFirewall } from '@cdktf/provider-google/lib/compute-firewall/index.js';
import { ComputeNetwork } from '@cdktf/provider-google/lib/compute-network/index.js';
import { ComputeRouter } from '@cdktf/provider-google/lib/compute-router/index.js';
import { ComputeRouterNat } from '@cdktf/provider-google/lib/compute-router-nat/index.js';
import { ComputeSubnetwork } from '@cdktf/provider-google/lib/compute-subnetwork/index.js';
import { OdinStack, type BaseStackProps } from './base-stack.js';
import { HEALTH_CHECK_RANGES, IAP_RANGE, NLB_HEALTH_CHECK_RANGES, PORTS } from './plan.js';

export const PUBLIC_RANGE = '0.0.0.0/0';

export class NetworkStack extends OdinStack {
  readonly network: ComputeNetwork;
  readonly subnet: ComputeSubnetwork;

  constructor(scope: Construct, id: 'network', props: BaseStackProps) {
    super(scope, id, props);
    const { config, plan } = props;
    // Loadtest shares the rules whether or not its VM exists: a tag without VMs matches nothing.
    const { ws, backend, loadtest } = plan.vms;
    const allTags = [ws.tag, backend.tag, loadtest.tag];

    this.network = new ComputeNetwork(this, 'vpc', {
      name: plan.networkName,
      autoCreateSubnetworks: false,
      routingMode: 'REGIONAL',
    });
    this.subnet = new ComputeSubnetwork(this, 'subnet', {
      name: plan.subnetName,
      region: config.region,
      network: this.network.id,
      ipCidrRange: config.subnetCidr,
      privateIpGoogleAccess: true,
    });
    const router = new ComputeRouter(this, 'router', {
      name: plan.routerName,
      region: config.region,
      network: this.network.id,
    });
    new ComputeRouterNat(this, 'nat', {
      name: plan.natName,
      region: config.region,
      router: router.name,
      natIpAllocateOption: 'AUTO_ONLY',
      sourceSubnetworkIpRangesToNat: 'LIST_OF_SUBNETWORKS',
      subnetwork: [{ name: this.subnet.id, sourceIpRangesToNat: ['ALL_IP_RANGES'] }],
      logConfig: { enable: true, filter: 'ERRORS_ONLY' },
    });

    const rule = (name: string, ports: number[], sourceRanges: string[], targetTags: string[], description: string) =>
      new ComputeFirewall(this, `fw-${name}`, {
        name: `${plan.prefix}-${name}`,
        network: this.network.id,
        direction: 'INGRESS',
        description,
        allow: [{ protocol: 'tcp', ports: ports.map(String) }],
        sourceRanges,
        targetTags,
      });

    rule('ws-public', [PORTS.ws], [PUBLIC_RANGE], [ws.tag], 'WebSocket clients from anywhere, WS VM only');
    rule('ssh-iap', [PORTS.ssh], [IAP_RANGE], allTags, 'SSH only through IAP TCP forwarding');
    rule(
      'backend-internal',
      [PORTS.kafka, PORTS.prometheus, PORTS.publisher],
      [config.subnetCidr],
      [backend.tag],
      'Kafka, Prometheus and the publisher from inside the subnet',
    );
    // Also open publicly above; kept so the WS VM stays reachable for the load test and
    // Prometheus if the public rule is ever narrowed.
    rule('ws-internal', [PORTS.ws], [config.subnetCidr], [ws.tag], 'WebSocket and /metrics from inside the subnet');
    if (plan.fleet) {
      // The fleet's balancers and autohealing probe /health from Google's ranges (the Application
      // Load Balancer's proxies for wss:// come from the same ranges); port 3004 only.
      const ranges = [...new Set([...NLB_HEALTH_CHECK_RANGES, ...HEALTH_CHECK_RANGES])];
      rule('ws-health-checks', [PORTS.ws], ranges, [ws.tag], 'Google health checks (balancer, autohealing) and the wss:// proxies, WS fleet only');
    }
    rule('ui-iap', [PORTS.grafana, PORTS.console], [IAP_RANGE], [backend.tag], 'Grafana and Redpanda Console only through IAP TCP forwarding (task gcp:grafana / gcp:console)');
    new ComputeFirewall(this, 'fw-icmp-internal', {
      name: `${plan.prefix}-icmp-internal`,
      network: this.network.id,
      direction: 'INGRESS',
      description: 'ping between the VMs for diagnosis',
      allow: [{ protocol: 'icmp' }],
      sourceRanges: [config.subnetCidr],
      targetTags: allTags,
    });

    new TerraformOutput(this, 'project', { value: config.project });
    new TerraformOutput(this, 'zone', { value: config.zone });
  }
}
