// The WS fleet (ws.count >= 2): one instance template, a regional managed instance group with
// autohealing on /health, and a regional external passthrough Network Load Balancer on tcp:3004
// at the bootstrap stack's static address. Passthrough, so the servers see the clients' own IPs
// (per-IP limits, logs) and the TCP connection is the client's: no proxy timeout cuts a
// long-lived WebSocket. With ws.domain, wss:// is terminated by a Google-managed certificate on
// a global external Application Load Balancer in front of the same group (see wss below).
import { TerraformOutput } from 'cdktf';
import { Construct } from 'constructs';
import { ComputeBackendService } from '@cdktf/provider-google/lib/compute-backend-service/index.js';
import { ComputeForwardingRule } from '@cdktf/provider-google/lib/compute-forwarding-rule/index.js';
import { ComputeGlobalForwardingRule } from '@cdktf/provider-google/lib/compute-global-forwarding-rule/index.js';
import { ComputeHealthCheck } from '@cdktf/provider-google/lib/compute-health-check/index.js';
import { ComputeInstanceTemplate } from '@cdktf/provider-google/lib/compute-instance-template/index.js';
import { ComputeManagedSslCertificate } from '@cdktf/provider-google/lib/compute-managed-ssl-certificate/index.js';
import { ComputeRegionAutoscaler } from '@cdktf/provider-google/lib/compute-region-autoscaler/index.js';
import { ComputeRegionBackendService } from '@cdktf/provider-google/lib/compute-region-backend-service/index.js';
import { ComputeRegionHealthCheck } from '@cdktf/provider-google/lib/compute-region-health-check/index.js';
import { ComputeRegionInstanceGroupManager } from '@cdktf/provider-google/lib/compute-region-instance-group-manager/index.js';
import { ComputeTargetHttpsProxy } from '@cdktf/provider-google/lib/compute-target-https-proxy/index.js';
import { ComputeUrlMap } from '@cdktf/provider-google/lib/compute-url-map/index.js';
import { DataGoogleComputeRegionInstanceGroup } from '@cdktf/provider-google/lib/data-google-compute-region-instance-group/index.js';
import { ProjectIamMember } from '@cdktf/provider-google/lib/project-iam-member/index.js';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member/index.js';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account/index.js';
import { StorageBucketIamMember } from '@cdktf/provider-google/lib/storage-bucket-iam-member/index.js';
import type { StackConfig } from './config/schema.js';
import { PORTS, RELEASE_METADATA, RELEASE_READER, SECRET_ACCESSOR, VM_ROLES, type DeploymentPlan, type FleetPlan } from './plan.js';
import { terraformLiteral } from './render.js';
import { SECRET_READER_SCOPES } from './vm.js';

/** Health checking as the balancer and the group do it; exported so tests and docs agree with it. */
export const FLEET_HEALTH = Object.freeze({
  path: '/health',
  // The balancer: a draining node (503) leaves rotation within 2 x 3 s, before it closes clients.
  lb: { checkIntervalSec: 3, timeoutSec: 2, healthyThreshold: 2, unhealthyThreshold: 2 },
  // Autohealing: 6 x 10 s of failures, longer than a drain, so a draining node is not recreated under it.
  autoheal: { checkIntervalSec: 10, timeoutSec: 5, healthyThreshold: 2, unhealthyThreshold: 6, initialDelaySec: 300 },
  connectionDrainingTimeoutSec: 60,
  /** The Application Load Balancer's backend timeout is a WebSocket's longest life (idle or not): a day. */
  wssBackendTimeoutSec: 86_400,
});

export interface WsFleetProps {
  readonly config: StackConfig;
  readonly plan: DeploymentPlan;
  readonly fleet: FleetPlan;
  readonly startupScript: string;
  /** The fleet's static external address (the bootstrap stack's, read by name). */
  readonly address: string;
  /** The wss:// global address (bootstrap stack), when ws.domain is set. */
  readonly wssAddress?: string;
}

export class WsFleet extends Construct {
  readonly template: ComputeInstanceTemplate;
  readonly group: ComputeRegionInstanceGroupManager;
  readonly serviceAccount: ServiceAccount;
  readonly forwardingRule: ComputeForwardingRule;

  constructor(scope: Construct, id: string, props: WsFleetProps) {
    super(scope, id);
    const { config, plan, fleet } = props;
    const vm = plan.vms.ws;

    this.serviceAccount = new ServiceAccount(this, 'sa', {
      accountId: vm.serviceAccountId,
      displayName: `odin ${config.env} ws fleet`,
      description: 'Runs the WS fleet VMs; may write logs and metrics, read the WS auth secret and read the releases bucket.',
    });
    const member = `serviceAccount:${this.serviceAccount.email}`;
    const grants = [
      ...VM_ROLES.map((role) => new ProjectIamMember(this, `role-${role.split('/')[1]}`, { project: config.project, role, member })),
      new SecretManagerSecretIamMember(this, `reads-${plan.secrets.wsAuth}`, { project: config.project, secretId: plan.secrets.wsAuth, role: SECRET_ACCESSOR, member }),
      // Read only, on the one bucket: a VM can fetch releases and can change nothing.
      new StorageBucketIamMember(this, 'reads-releases', { bucket: fleet.releasesBucket, role: RELEASE_READER, member }),
    ];

    this.template = new ComputeInstanceTemplate(this, 'template', {
      namePrefix: fleet.templatePrefix,
      region: config.region,
      machineType: config.ws.machineType,
      tags: [vm.tag],
      labels: { role: vm.role },
      disk: [{ boot: true, autoDelete: true, sourceImage: config.image, diskSizeGb: config.ws.diskGb, diskType: 'pd-balanced' }],
      // No external address on the nodes: clients come through the balancer (whose replies leave
      // from the node directly, with the balancer's address), egress through Cloud NAT.
      networkInterface: [{ subnetwork: plan.subnetPath }],
      serviceAccount: { email: this.serviceAccount.email, scopes: [...SECRET_READER_SCOPES] },
      shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
      metadata: {
        'startup-script': terraformLiteral(props.startupScript),
        'enable-oslogin': 'TRUE',
        'block-project-ssh-keys': 'TRUE',
        [RELEASE_METADATA.bucket]: fleet.releasesBucket,
      },
      // Templates are immutable: a changed one is a new template, created before the old goes.
      lifecycle: { createBeforeDestroy: true },
      dependsOn: grants,
    });

    const httpCheck = { port: PORTS.ws, requestPath: FLEET_HEALTH.path };
    const lbCheck = new ComputeRegionHealthCheck(this, 'lb-health', { name: fleet.healthCheckName, region: config.region, ...FLEET_HEALTH.lb, httpHealthCheck: httpCheck });
    const { initialDelaySec, ...autohealTiming } = FLEET_HEALTH.autoheal;
    const autohealCheck = new ComputeRegionHealthCheck(this, 'autoheal-health', { name: fleet.autohealCheckName, region: config.region, ...autohealTiming, httpHealthCheck: httpCheck });

    this.group = new ComputeRegionInstanceGroupManager(this, 'group', {
      name: fleet.groupName,
      region: config.region,
      baseInstanceName: fleet.baseInstanceName,
      distributionPolicyZones: [...fleet.zones],
      version: [{ name: 'current', instanceTemplate: this.template.selfLinkUnique }],
      // With an autoscaler the size is the autoscaler's.
      targetSize: config.ws.autoscale ? undefined : fleet.count,
      namedPort: [{ name: 'ws', port: PORTS.ws }],
      autoHealingPolicies: { healthCheck: autohealCheck.id, initialDelaySec },
      // OPPORTUNISTIC: a new template (or release) reaches a node only when it is recreated:
      // by autohealing, scale-out, or gcp:deploy's rollout, which drains each node first. The
      // group itself never replaces running nodes, nor moves them between zones.
      updatePolicy: {
        type: 'OPPORTUNISTIC',
        minimalAction: 'REPLACE',
        instanceRedistributionType: 'NONE',
        maxSurgeFixed: fleet.zones.length,
        maxUnavailableFixed: 0,
      },
      // The current release is the group's all-instances metadata, set by gcp:deploy; Terraform leaves it alone.
      lifecycle: { ignoreChanges: ['all_instances_config', ...(config.ws.autoscale ? ['target_size'] : [])] },
      waitForInstances: false,
    });

    if (config.ws.autoscale) {
      const { min, max, target } = config.ws.autoscale;
      new ComputeRegionAutoscaler(this, 'autoscaler', {
        name: `${fleet.groupName}-autoscaler`,
        region: config.region,
        target: this.group.id,
        autoscalingPolicy: {
          minReplicas: min,
          maxReplicas: max,
          cooldownPeriod: 180,
          cpuUtilization: { target },
          // One node out per 10 minutes: its clients reconnect to the others before the next goes.
          scaleInControl: { maxScaledInReplicas: { fixed: 1 }, timeWindowSec: 600 },
        },
      });
    }

    const backend = new ComputeRegionBackendService(this, 'backend', {
      name: fleet.backendServiceName,
      region: config.region,
      protocol: 'TCP',
      loadBalancingScheme: 'EXTERNAL',
      healthChecks: [lbCheck.id],
      backend: [{ group: this.group.instanceGroup, balancingMode: 'CONNECTION' }],
      connectionDrainingTimeoutSec: FLEET_HEALTH.connectionDrainingTimeoutSec,
    });
    this.forwardingRule = new ComputeForwardingRule(this, 'forwarding-rule', {
      name: fleet.forwardingRuleName,
      region: config.region,
      ipAddress: props.address,
      ipProtocol: 'TCP',
      portRange: String(PORTS.ws),
      loadBalancingScheme: 'EXTERNAL',
      networkTier: 'PREMIUM',
      backendService: backend.id,
    });

    if (fleet.tls && props.wssAddress) this.wss(fleet.tls, props.wssAddress);

    const nodes = new DataGoogleComputeRegionInstanceGroup(this, 'nodes', { name: this.group.name, region: config.region });
    this.output('ws_fleet_url', `ws://${this.forwardingRule.ipAddress}:${PORTS.ws}/ws`);
    this.output('ws_group', this.group.name);
    this.output('ws_region', config.region);
    // The nodes at apply time (autohealing and the autoscaler change them later: the ops scripts list the group live).
    this.output('ws_nodes', `\${[for i in ${nodes.fqn}.instances : i.instance]}`);
  }

  /** Outputs keep their plain names (stacks/outputs.ts), not the construct path's. */
  private output(name: string, value: string): void {
    new TerraformOutput(this, name, { value }).overrideLogicalId(name);
  }

  /**
   * wss://: the global external Application Load Balancer supports WebSocket (HTTP/1.1 Upgrade)
   * and terminates TLS with a Google-managed certificate; its backend service timeout is the
   * longest a WebSocket may stay open, so it is set to a day (clients reconnect and recover).
   */
  private wss(tls: NonNullable<FleetPlan['tls']>, address: string): void {
    const cert = new ComputeManagedSslCertificate(this, 'wss-cert', { name: tls.certificateName, managed: { domains: [tls.domain] } });
    const check = new ComputeHealthCheck(this, 'wss-health', {
      name: tls.healthCheckName,
      ...FLEET_HEALTH.lb,
      httpHealthCheck: { port: PORTS.ws, requestPath: FLEET_HEALTH.path },
    });
    const backend = new ComputeBackendService(this, 'wss-backend', {
      name: tls.backendServiceName,
      protocol: 'HTTP',
      portName: 'ws',
      loadBalancingScheme: 'EXTERNAL_MANAGED',
      timeoutSec: FLEET_HEALTH.wssBackendTimeoutSec,
      connectionDrainingTimeoutSec: FLEET_HEALTH.connectionDrainingTimeoutSec,
      healthChecks: [check.id],
      backend: [{ group: this.group.instanceGroup, balancingMode: 'UTILIZATION', capacityScaler: 1 }],
    });
    const map = new ComputeUrlMap(this, 'wss-map', { name: tls.urlMapName, defaultService: backend.id });
    const proxy = new ComputeTargetHttpsProxy(this, 'wss-proxy', { name: tls.proxyName, urlMap: map.id, sslCertificates: [cert.id] });
    new ComputeGlobalForwardingRule(this, 'wss-forwarding-rule', {
      name: tls.forwardingRuleName,
      ipAddress: address,
      ipProtocol: 'TCP',
      portRange: '443',
      loadBalancingScheme: 'EXTERNAL_MANAGED',
      target: proxy.id,
    });
    this.output('wss_url', `wss://${tls.domain}/ws`);
  }
}
