// The VM artifacts are plain files under stacks/assets/; the app entry reads them once and
// hands their text to the stacks as props.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ASSET_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'assets');

export const ASSET_FILES = {
  commonSh: 'common.sh',
  wsStartupSh: 'ws-startup.sh',
  wsFleetSh: 'ws-fleet.sh',
  backendStartupSh: 'backend-startup.sh',
  loadtestStartupSh: 'loadtest-startup.sh',
  wsUnit: 'odin-ws.service',
  publisherUnit: 'odin-publisher.service',
  wsSysctl: 'sysctl-ws.conf',
  backendSysctl: 'sysctl-backend.conf',
  loadtestSysctl: 'sysctl-loadtest.conf',
  limits: 'limits-odin.conf',
  redpandaYaml: 'redpanda.yaml',
  redpandaDefault: 'redpanda.default',
  consoleYaml: 'redpanda-console.yaml',
  prometheusYml: 'prometheus.yml',
  prometheusFleetYml: 'prometheus-fleet.yml',
  grafanaDatasource: 'grafana-datasource.yaml',
  grafanaDashboards: 'grafana-dashboards.yaml',
  grafanaOverride: 'grafana-override.conf',
  dashboardJson: 'dashboard-odin-ws.json',
  fleetDashboardJson: 'dashboard-odin-fleet.json',
} as const;

export type AssetKey = keyof typeof ASSET_FILES;
export type Assets = Readonly<Record<AssetKey, string>>;

export function loadAssets(dir: string = ASSET_DIR): Assets {
  const entries = Object.entries(ASSET_FILES).map(([key, file]) => [key, readFileSync(path.join(dir, file), 'utf8')]);
  return Object.freeze(Object.fromEntries(entries)) as Assets;
}
