// Derives every name, tag, port and fixed address from the config in one place, so the
// stacks agree on them without reading each other's state.
import { cidrHost, parseCidr, type Cidr } from './config/cidr.js';
import { HOST_OFFSETS, type StackConfig } from './config/schema.js';

export const PORTS = {
  ssh: 22,
  ws: 3004,
  publisher: 3003,
  kafka: 9092,
  prometheus: 9090,
  grafana: 3010,
  console: 8080,
} as const;

/** Google's IAP TCP-forwarding range: the only source allowed to reach SSH, Grafana and the console. */
export const IAP_RANGE = '35.235.240.0/20';

/**
 * The Google APIs the stacks and the ops scripts call. A fresh project has none of these on
 * (except a few defaults), and the first apply would fail with 403 "API has not been used".
 */
export const REQUIRED_APIS = [
  'serviceusage.googleapis.com',
  'cloudresourcemanager.googleapis.com',
  'compute.googleapis.com',
  'iam.googleapis.com',
  'iap.googleapis.com',
  'oslogin.googleapis.com',
  'logging.googleapis.com',
  'monitoring.googleapis.com',
  'storage.googleapis.com',
  'secretmanager.googleapis.com',
] as const;

/** Secret Manager's accessor role: the only grant on each secret, to the one VM that reads it. */
export const SECRET_ACCESSOR = 'roles/secretmanager.secretAccessor';

export const ROLES = ['ws', 'backend', 'loadtest'] as const;
export type Role = (typeof ROLES)[number];

/** The only project roles a VM's service account gets: write logs and metrics. */
export const VM_ROLES = ['roles/logging.logWriter', 'roles/monitoring.metricWriter'] as const;

export interface VmPlan {
  readonly role: Role;
  readonly instanceName: string;
  readonly serviceAccountId: string;
  readonly internalIp: string;
  readonly tag: string;
}

/** Google's health-check probers: what the group's autohealing and the Application Load Balancer's proxies come from. */
export const HEALTH_CHECK_RANGES = ['35.191.0.0/16', '130.211.0.0/22'] as const;
/** Extra prober ranges of the external passthrough Network Load Balancer's health checks. */
export const NLB_HEALTH_CHECK_RANGES = ['35.191.0.0/16', '209.85.152.0/22', '209.85.204.0/22'] as const;

/** The project role Prometheus' GCE service discovery needs (compute.instances.list), on the backend VM only. */
export const SD_ROLE = 'roles/compute.viewer';
/** The WS fleet's only grant on the releases bucket. */
export const RELEASE_READER = 'roles/storage.objectViewer';

/** Instance metadata keys naming the release a fleet VM runs (set on the group; the startup script reads them). */
export const RELEASE_METADATA = Object.freeze({ version: 'odin-release', sha256: 'odin-release-sha256', bucket: 'odin-release-bucket' });

/** Names of the WS fleet (ws.count >= 2); absent for the single VM. */
export interface FleetPlan {
  readonly count: number;
  readonly zones: readonly string[];
  readonly templatePrefix: string;
  readonly groupName: string;
  /** Instances are named <baseInstanceName>-<4 random chars> by the group. */
  readonly baseInstanceName: string;
  readonly healthCheckName: string;
  readonly autohealCheckName: string;
  readonly backendServiceName: string;
  readonly forwardingRuleName: string;
  readonly releasesBucket: string;
  /** Per-node Kafka consumer group: `<consumerGroupPrefix><instance name>`. */
  readonly consumerGroupPrefix: string;
  readonly tls?: Readonly<{ domain: string; addressName: string; certificateName: string; backendServiceName: string; healthCheckName: string; urlMapName: string; proxyName: string; forwardingRuleName: string }>;
}

export interface DeploymentPlan {
  readonly prefix: string;
  readonly networkName: string;
  readonly subnetName: string;
  /** Full resource path, usable from any stack without a cross-stack reference. */
  readonly subnetPath: string;
  readonly routerName: string;
  readonly natName: string;
  readonly vms: Readonly<Record<Role, VmPlan>>;
  /** Every load-test VM (the first is vms.loadtest). */
  readonly loadtestVms: readonly VmPlan[];
  readonly fleet?: FleetPlan;
  readonly consumerGroup: string;
  readonly kafkaBrokers: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The WS VM's static external address (in the bootstrap stack: it outlives gcp:delete). */
  readonly wsAddressName: string;
  /** Secret Manager secret ids; their values never pass through Terraform. */
  readonly secrets: Readonly<{ wsAuth: string; grafanaAdmin: string }>;
}

export function planDeployment(config: StackConfig): DeploymentPlan {
  const prefix = `odin-${config.env}`;
  const subnet = parseCidr(config.subnetCidr) as Cidr;
  const vm = (role: Role): VmPlan => ({
    role,
    instanceName: `${prefix}-${role}`,
    serviceAccountId: `${prefix}-${role}`,
    internalIp: cidrHost(subnet, HOST_OFFSETS[role]),
    tag: `odin-${role}`,
  });
  const vms = { ws: vm('ws'), backend: vm('backend'), loadtest: vm('loadtest') };
  // The first keeps the single VM's names; the others get -2, -3, ... and the next host numbers.
  const loadtestVms = Array.from({ length: config.loadtest.count }, (_, i) =>
    i === 0 ? vms.loadtest : Object.freeze({ ...vms.loadtest, instanceName: `${prefix}-loadtest-${i + 1}`, internalIp: cidrHost(subnet, HOST_OFFSETS.loadtest + i) }),
  );
  const subnetName = `${prefix}-subnet`;
  return Object.freeze({
    prefix,
    networkName: `${prefix}-vpc`,
    subnetName,
    subnetPath: `projects/${config.project}/regions/${config.region}/subnetworks/${subnetName}`,
    routerName: `${prefix}-router`,
    natName: `${prefix}-nat`,
    vms: Object.freeze(vms),
    loadtestVms: Object.freeze(loadtestVms),
    ...(config.ws.count >= 2 ? { fleet: planFleet(config, prefix) } : {}),
    consumerGroup: `ws-server-${config.env}`,
    kafkaBrokers: `${vms.backend.internalIp}:${PORTS.kafka}`,
    labels: Object.freeze({ ...config.labels, env: config.env, managed_by: 'cdktf' }),
    wsAddressName: `${prefix}-ws-external`,
    secrets: Object.freeze({ wsAuth: `${prefix}-ws-auth-secret`, grafanaAdmin: `${prefix}-grafana-admin-password` }),
  });
}

function planFleet(config: StackConfig, prefix: string): FleetPlan {
  const domain = config.ws.domain;
  return Object.freeze({
    count: config.ws.count,
    zones: Object.freeze([...(config.ws.zones ?? [config.zone])]),
    templatePrefix: `${prefix}-ws-`,
    groupName: `${prefix}-ws-group`,
    baseInstanceName: `${prefix}-ws`,
    healthCheckName: `${prefix}-ws-lb-health`,
    autohealCheckName: `${prefix}-ws-autoheal`,
    backendServiceName: `${prefix}-ws-backend`,
    forwardingRuleName: `${prefix}-ws-fleet`,
    // Bucket names are global: the project id makes this one unique.
    releasesBucket: `${config.project}-${prefix}-releases`,
    consumerGroupPrefix: `ws-${config.env}-`,
    ...(domain
      ? {
          tls: Object.freeze({
            domain,
            addressName: `${prefix}-wss-address`,
            certificateName: `${prefix}-wss-cert`,
            backendServiceName: `${prefix}-wss-backend`,
            healthCheckName: `${prefix}-wss-health`,
            urlMapName: `${prefix}-wss-map`,
            proxyName: `${prefix}-wss-proxy`,
            forwardingRuleName: `${prefix}-wss-https`,
          }),
        }
      : {}),
  });
}
