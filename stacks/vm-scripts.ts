// What each VM receives at boot: env files, config files and the startup script, built from
// the config, the plan and the asset texts. Pure functions, so tests can read the result.
import type { Assets } from './assets.js';
import type { StackConfig } from './config/schema.js';
import { PORTS, type DeploymentPlan } from './plan.js';
import { fillTemplate, renderEnvFile, renderStartupScript, type StagedFile } from './render.js';

export const NODE_MAJOR = '24';

/**
 * Every package the VMs install from outside Debian's base, pinned in this one place (apt
 * versions; a trailing * pins a release series, so a rebuilt VM gets the same software).
 * Node matches the `node` devDependency that development and CI run on.
 */
export const PACKAGE_PINS = Object.freeze({
  NODEJS: `${NODE_MAJOR}.21.0-1nodesource1`,
  REDPANDA: '25.3.7*',
  REDPANDA_CONSOLE: '3.10.0*',
  GRAFANA: '12.3.*',
  PROMETHEUS: '2.42.*',
});

/** What the WS VM's startup script writes into /etc/odin/ws-auth.env when a secret exists (the server's contract). */
export const AUTH_SECRET_FILE_ENV = 'WS_AUTH_SECRET_FILE';

/**
 * /etc/odin/ws.env: the server's whole configuration (see odin-ws.service). A fleet node's
 * consumer group is its own (ws-<env>-<instance name>): the startup script appends it on the VM.
 */
export function wsEnv(config: StackConfig, plan: DeploymentPlan): string {
  const { KAFKA_CONSUMER_GROUP, ...shared } = wsEnvEntries(config, plan);
  return renderEnvFile(plan.fleet ? { ...shared, WS_DRAIN_NOTICE_MS: FLEET_DRAIN_NOTICE_MS } : { ...shared, KAFKA_CONSUMER_GROUP });
}

/**
 * A fleet node answers /health 503 this long after SIGTERM while still serving, so the balancer
 * (2 failed checks 3 s apart) takes it out of rotation before it closes its clients; the drain
 * that follows still fits odin-ws.service's TimeoutStopSec=30.
 */
export const FLEET_DRAIN_NOTICE_MS = 10_000;

function wsEnvEntries(config: StackConfig, plan: DeploymentPlan): Record<string, string | number> {
  return {
    WS_MODE: 'multi',
    WS_ADDR: `:${PORTS.ws}`,
    WS_SHARDS: config.ws.shards,
    WS_MAX_CONNECTIONS: config.ws.maxConnections,
    WS_CPU_LIMIT: config.ws.cpuLimit,
    KAFKA_BROKERS: plan.kafkaBrokers,
    KAFKA_TOPICS: config.kafka.topics.join(','),
    KAFKA_CONSUMER_GROUP: plan.consumerGroup,
  };
}

/** /etc/odin/publisher.env: the publisher runs next to Redpanda. */
export function publisherEnv(config: StackConfig): string {
  return renderEnvFile({
    KAFKA_BROKERS: `127.0.0.1:${PORTS.kafka}`,
    PUBLISHER_TOPICS: config.kafka.topics.join(','),
    PUBLISHER_PORT: PORTS.publisher,
  });
}

function templateValues(config: StackConfig, plan: DeploymentPlan): Record<string, string> {
  return {
    ODIN_ENV: config.env,
    BACKEND_INTERNAL_IP: plan.vms.backend.internalIp,
    WS_INTERNAL_IP: plan.vms.ws.internalIp,
    REDPANDA_MEMORY: config.backend.redpandaMemory,
  };
}

function commonVars(config: StackConfig, role: string): Record<string, string> {
  return {
    ODIN_ROLE: role,
    ODIN_ENV: config.env,
    ODIN_NODE_MAJOR: NODE_MAJOR,
    ...Object.fromEntries(Object.entries(PACKAGE_PINS).map(([name, version]) => [`ODIN_PIN_${name}`, version])),
    ODIN_INSTALL_OPS_AGENT: String(config.installOpsAgent),
  };
}

function file(path: string, content: string, mode?: string): StagedFile {
  return { path, content, mode };
}

export function wsStartupScript(config: StackConfig, plan: DeploymentPlan, assets: Assets): string {
  const fleet = plan.fleet;
  return renderStartupScript({
    role: 'ws',
    vars: {
      ...commonVars(config, 'ws'),
      ODIN_KAFKA_BROKERS: plan.kafkaBrokers,
      ODIN_WS_SHARDS: String(config.ws.shards),
      ODIN_AUTH_SECRET_NAME: plan.secrets.wsAuth,
      ...(fleet ? { ODIN_CONSUMER_GROUP_PREFIX: fleet.consumerGroupPrefix } : {}),
    },
    files: [
      file('/etc/odin/ws.env', wsEnv(config, plan)),
      file('/etc/systemd/system/odin-ws.service', assets.wsUnit),
      file('/etc/sysctl.d/90-odin-ws.conf', assets.wsSysctl),
      file('/etc/security/limits.d/90-odin.conf', assets.limits),
    ],
    scripts: [
      { name: 'common.sh', text: assets.commonSh },
      ...(fleet ? [{ name: 'ws-fleet.sh', text: assets.wsFleetSh }] : []),
      { name: 'ws-startup.sh', text: assets.wsStartupSh },
    ],
  });
}

export function backendStartupScript(config: StackConfig, plan: DeploymentPlan, assets: Assets): string {
  const values = templateValues(config, plan);
  const fill = (name: string, text: string) => fillTemplate(name, text, values);
  return renderStartupScript({
    role: 'backend',
    vars: {
      ...commonVars(config, 'backend'),
      ODIN_BACKEND_INTERNAL_IP: plan.vms.backend.internalIp,
      ODIN_KAFKA_TOPICS: config.kafka.topics.join(','),
      ODIN_KAFKA_PARTITIONS: String(config.kafka.partitions),
      ODIN_GRAFANA_SECRET_NAME: plan.secrets.grafanaAdmin,
    },
    files: [
      file('/etc/sysctl.d/90-odin-backend.conf', assets.backendSysctl),
      file('/etc/redpanda/redpanda.yaml', fill('redpanda.yaml', assets.redpandaYaml)),
      file('/etc/default/redpanda', assets.redpandaDefault),
      file('/etc/redpanda/redpanda-console-config.yaml', fill('redpanda-console.yaml', assets.consoleYaml)),
      file('/etc/prometheus/prometheus.yml', prometheusConfig(config, plan, assets)),
      file('/etc/grafana/provisioning/datasources/odin.yaml', assets.grafanaDatasource, '0640'),
      file('/etc/grafana/provisioning/dashboards/odin.yaml', assets.grafanaDashboards, '0640'),
      file('/var/lib/odin/dashboards/odin-ws.json', assets.dashboardJson),
      ...(plan.fleet ? [file('/var/lib/odin/dashboards/odin-fleet.json', assets.fleetDashboardJson)] : []),
      file('/etc/systemd/system/grafana-server.service.d/odin.conf', assets.grafanaOverride),
      file('/etc/odin/publisher.env', publisherEnv(config)),
      file('/etc/systemd/system/odin-publisher.service', assets.publisherUnit),
    ],
    scripts: [
      { name: 'common.sh', text: assets.commonSh },
      { name: 'backend-startup.sh', text: assets.backendStartupSh },
    ],
  });
}

/**
 * Prometheus' config: the single WS VM at its fixed address, or the fleet by GCE service
 * discovery (one gce_sd_configs entry per zone of the group; only running role=ws instances).
 */
export function prometheusConfig(config: StackConfig, plan: DeploymentPlan, assets: Assets): string {
  const values = templateValues(config, plan);
  if (!plan.fleet) return fillTemplate('prometheus.yml', assets.prometheusYml, values);
  const sd = plan.fleet.zones
    .map((zone) =>
      [
        `      - project: "${config.project}"`,
        `        zone: "${zone}"`,
        `        port: ${PORTS.ws}`,
        '        refresh_interval: 30s',
        `        filter: '(labels.role = "ws") AND (status = "RUNNING")'`,
      ].join('\n'),
    )
    .join('\n');
  return fillTemplate('prometheus-fleet.yml', assets.prometheusFleetYml, { ...values, WS_GCE_SD_CONFIGS: sd });
}

export function loadtestStartupScript(config: StackConfig, plan: DeploymentPlan, assets: Assets): string {
  return renderStartupScript({
    role: 'loadtest',
    vars: {
      ...commonVars(config, 'loadtest'),
      ODIN_WS_INTERNAL_IP: plan.vms.ws.internalIp,
      ODIN_SOURCE_CIDR: config.loadtest.sourceCidr ?? '',
    },
    files: [
      file('/etc/sysctl.d/90-odin-loadtest.conf', assets.loadtestSysctl),
      file('/etc/security/limits.d/90-odin.conf', assets.limits),
    ],
    scripts: [
      { name: 'common.sh', text: assets.commonSh },
      { name: 'loadtest-startup.sh', text: assets.loadtestStartupSh },
    ],
  });
}
