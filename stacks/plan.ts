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

export interface DeploymentPlan {
  readonly prefix: string;
  readonly networkName: string;
  readonly subnetName: string;
  /** Full resource path, usable from any stack without a cross-stack reference. */
  readonly subnetPath: string;
  readonly routerName: string;
  readonly natName: string;
  readonly vms: Readonly<Record<Role, VmPlan>>;
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
  const subnetName = `${prefix}-subnet`;
  return Object.freeze({
    prefix,
    networkName: `${prefix}-vpc`,
    subnetName,
    subnetPath: `projects/${config.project}/regions/${config.region}/subnetworks/${subnetName}`,
    routerName: `${prefix}-router`,
    natName: `${prefix}-nat`,
    vms: Object.freeze(vms),
    consumerGroup: `ws-server-${config.env}`,
    kafkaBrokers: `${vms.backend.internalIp}:${PORTS.kafka}`,
    labels: Object.freeze({ ...config.labels, env: config.env, managed_by: 'cdktf' }),
    wsAddressName: `${prefix}-ws-external`,
    secrets: Object.freeze({ wsAuth: `${prefix}-ws-auth-secret`, grafanaAdmin: `${prefix}-grafana-admin-password` }),
  });
}
