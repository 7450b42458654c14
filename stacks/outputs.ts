// The contract between the stacks and the operations scripts: stack ids and output names.
// Output names are flat and unique across all stacks, so the scripts can merge every
// stack's outputs into one object. Renaming one breaks scripts/: change both together.

export const STACK_NAMES = ['bootstrap', 'network', 'backend', 'ws', 'loadtest'] as const;
/** Only when a state bucket is configured: the bucket itself, with local state (it cannot hold its own). */
export const STATE_STACK = 'state';
export type StackName = (typeof STACK_NAMES)[number] | typeof STATE_STACK;

export const OUTPUT_NAMES = [
  'ws_url',
  'health_url',
  'ws_external_ip',
  'ws_internal_ip',
  'backend_internal_ip',
  'loadtest_internal_ip',
  'grafana_url',
  'console_url',
  'publisher_status_url',
  'ws_instance',
  'backend_instance',
  'loadtest_instance',
  'zone',
  'project',
] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];

/** Which stack declares each output (each name exactly once). */
export const OUTPUTS_BY_STACK: Readonly<Record<StackName, readonly OutputName[]>> = {
  state: [],
  bootstrap: ['ws_url', 'health_url', 'ws_external_ip'],
  network: ['zone', 'project'],
  backend: ['backend_internal_ip', 'grafana_url', 'console_url', 'publisher_status_url', 'backend_instance'],
  ws: ['ws_internal_ip', 'ws_instance'],
  loadtest: ['loadtest_internal_ip', 'loadtest_instance'],
};

/** What a fleet (ws.count >= 2) declares instead of the single VM's ws_internal_ip and ws_instance. */
export const FLEET_OUTPUTS_BY_STACK = Object.freeze({
  bootstrap: ['releases_bucket'],
  ws: ['ws_fleet_url', 'ws_group', 'ws_region', 'ws_nodes'],
  /** Only with ws.domain. */
  tls: { bootstrap: ['wss_ip'], ws: ['wss_url'] },
} as const);
