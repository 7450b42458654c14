// ws.count: 1 keeps the single VM (no group, no balancer, no bucket); 3 gives the fleet: one
// template, a regional group with autohealing on /health, a passthrough network load balancer on
// tcp:3004 at the one static address, Google's health-check ranges on 3004 only, a releases bucket
// the fleet may only read, per-node consumer groups, Prometheus GCE service discovery, and wss://
// only with a domain.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { ASSET_DIR } from '../../stacks/assets.js';
import { parse as parseYaml } from 'yaml';
import { FLEET_OUTPUTS_BY_STACK, OUTPUTS_BY_STACK } from '../../stacks/outputs.js';
import { StackConfigSchema } from '../../stacks/config/schema.js';
import { fromTerraformLiteral } from '../../stacks/render.js';
import { BASE_CONFIG, only, parseEnvFile, resources, stagedFile, startupScript, synthAll, type TfJson } from './helpers.js';

const FLEET_TYPES = [
  'google_compute_instance_template',
  'google_compute_region_instance_group_manager',
  'google_compute_region_backend_service',
  'google_compute_forwarding_rule',
  'google_compute_region_health_check',
];
const HC_RANGES = ['130.211.0.0/22', '209.85.152.0/22', '209.85.204.0/22', '35.191.0.0/16'];
const keyOf = (stack: TfJson, type: string, value: Record<string, any>) => Object.entries(stack.resource[type]).find(([, v]) => v === value)![0];
const templateScript = (stack: TfJson) => fromTerraformLiteral(only(stack, 'google_compute_instance_template').metadata['startup-script']);

describe('ws.count 1 (the default): the single VM, nothing of the fleet', () => {
  const { stacks } = synthAll();
  it('one WS VM with the static address; no template, group, balancer, health-check rule or releases bucket', () => {
    expect(resources(stacks.ws, 'google_compute_instance')).toHaveLength(1);
    for (const type of FLEET_TYPES) expect(resources(stacks.ws, type), type).toHaveLength(0);
    expect(resources(stacks.bootstrap, 'google_storage_bucket')).toHaveLength(0);
    expect(resources(stacks.network, 'google_compute_firewall').map((f) => f.name)).not.toContain('odin-test-ws-health-checks');
    expect(Object.keys(stacks.ws.output!).sort()).toEqual([...OUTPUTS_BY_STACK.ws].sort());
    expect(parseEnvFile(stagedFile(startupScript(stacks.ws), '/etc/odin/ws.env')).KAFKA_CONSUMER_GROUP).toBe('ws-server-test');
    expect(startupScript(stacks.ws)).not.toContain('# ---- ws-fleet.sh ----');
  });
});

describe('ws.count 3: the fleet', () => {
  const { stacks } = synthAll({ ws: { count: 3, zones: ['us-central1-a', 'us-central1-b'] } });
  const ws = stacks.ws;
  const template = only(ws, 'google_compute_instance_template');
  const group = only(ws, 'google_compute_region_instance_group_manager');
  const checks = resources(ws, 'google_compute_region_health_check');

  it('one instance template: the WS machine, no external address, its own service account, the startup script', () => {
    expect(resources(ws, 'google_compute_instance')).toHaveLength(0);
    expect(template.machine_type).toBe('e2-highcpu-8');
    expect(template.tags).toEqual(['odin-ws']);
    expect(template.labels).toEqual({ role: 'ws' });
    expect(template.network_interface).toEqual([{ subnetwork: 'projects/odin-ws-test/regions/us-central1/subnetworks/odin-test-subnet' }]);
    expect(template.service_account.email).toBe(`\${google_service_account.${keyOf(ws, 'google_service_account', only(ws, 'google_service_account'))}.email}`);
    expect(template.metadata['odin-release-bucket']).toBe('odin-ws-test-odin-test-releases');
    expect(template.lifecycle.create_before_destroy).toBe(true);
  });

  it('a regional group of 3 over the zones, autohealing on /health, updated only when a node is recreated', () => {
    expect(group).toMatchObject({ name: 'odin-test-ws-group', region: 'us-central1', target_size: 3, distribution_policy_zones: ['us-central1-a', 'us-central1-b'], base_instance_name: 'odin-test-ws' });
    expect(group.version).toEqual([{ name: 'current', instance_template: `\${google_compute_instance_template.${keyOf(ws, 'google_compute_instance_template', template)}.self_link_unique}` }]);
    expect(group.named_port).toEqual([{ name: 'ws', port: 3004 }]);
    const autoheal = checks.find((c) => c.name === 'odin-test-ws-autoheal')!;
    expect(autoheal.http_health_check).toEqual({ port: 3004, request_path: '/health' });
    expect(group.auto_healing_policies).toEqual({ health_check: `\${google_compute_region_health_check.${keyOf(ws, 'google_compute_region_health_check', autoheal)}.id}`, initial_delay_sec: 300 });
    // Autohealing waits out a drain (503 for longer than the balancer needs to take the node out).
    const lb = checks.find((c) => c.name === 'odin-test-ws-lb-health')!;
    expect(autoheal.check_interval_sec * autoheal.unhealthy_threshold).toBeGreaterThan(lb.check_interval_sec * lb.unhealthy_threshold);
    expect(group.update_policy).toMatchObject({ type: 'OPPORTUNISTIC', instance_redistribution_type: 'NONE', max_unavailable_fixed: 0 });
    expect(group.lifecycle.ignore_changes).toContain('all_instances_config');
    expect(resources(ws, 'google_compute_region_autoscaler')).toHaveLength(0);
  });

  it('a regional external passthrough load balancer on tcp:3004 at the one static address, health-checked on /health', () => {
    const backend = only(ws, 'google_compute_region_backend_service');
    const lb = checks.find((c) => c.name === 'odin-test-ws-lb-health')!;
    expect(backend).toMatchObject({ protocol: 'TCP', load_balancing_scheme: 'EXTERNAL', health_checks: [`\${google_compute_region_health_check.${keyOf(ws, 'google_compute_region_health_check', lb)}.id}`] });
    expect(backend.backend).toEqual([{ group: `\${google_compute_region_instance_group_manager.${keyOf(ws, 'google_compute_region_instance_group_manager', group)}.instance_group}`, balancing_mode: 'CONNECTION' }]);
    expect(lb.http_health_check).toEqual({ port: 3004, request_path: '/health' });
    const rule = only(ws, 'google_compute_forwarding_rule');
    const address = Object.entries(ws.data!.google_compute_address)[0];
    expect(address[1].name).toBe('odin-test-ws-external');
    expect(rule).toMatchObject({ ip_protocol: 'TCP', port_range: '3004', load_balancing_scheme: 'EXTERNAL', ip_address: `\${data.google_compute_address.${address[0]}.address}` });
    expect(rule.backend_service).toBe(`\${google_compute_region_backend_service.${keyOf(ws, 'google_compute_region_backend_service', backend)}.id}`);
    // No TLS without a domain.
    for (const type of ['google_compute_managed_ssl_certificate', 'google_compute_target_https_proxy', 'google_compute_global_forwarding_rule']) expect(resources(ws, type)).toHaveLength(0);
  });

  it("Google's health-check ranges reach 3004 on the WS nodes only, besides the public rule", () => {
    const firewalls = resources(stacks.network, 'google_compute_firewall');
    const hc = firewalls.find((f) => f.name === 'odin-test-ws-health-checks')!;
    expect([...hc.source_ranges].sort()).toEqual(HC_RANGES);
    expect(hc.allow).toEqual([{ protocol: 'tcp', ports: ['3004'] }]);
    expect(hc.target_tags).toEqual(['odin-ws']);
    // No other rule admits the health-check ranges.
    for (const f of firewalls.filter((x) => x !== hc)) for (const r of HC_RANGES) expect(f.source_ranges).not.toContain(r);
    expect(firewalls.find((f) => f.name === 'odin-test-ws-public')!.source_ranges).toEqual(['0.0.0.0/0']);
  });

  it('a private releases bucket; the fleet account may only view its objects', () => {
    const bucket = only(stacks.bootstrap, 'google_storage_bucket');
    expect(bucket).toMatchObject({ name: 'odin-ws-test-odin-test-releases', uniform_bucket_level_access: true, public_access_prevention: 'enforced', force_destroy: true });
    const viewer = only(ws, 'google_storage_bucket_iam_member');
    expect(viewer).toMatchObject({ bucket: 'odin-ws-test-odin-test-releases', role: 'roles/storage.objectViewer' });
    expect(viewer.member).toBe(`serviceAccount:\${google_service_account.${keyOf(ws, 'google_service_account', only(ws, 'google_service_account'))}.email}`);
    expect(resources(ws, 'google_project_iam_member').map((g) => g.role).sort()).toEqual(['roles/logging.logWriter', 'roles/monitoring.metricWriter']);
  });

  it('each node names its consumer group ws-<env>-<instance name> from the metadata server, and installs the release the metadata names', () => {
    const script = templateScript(ws);
    const env = parseEnvFile(stagedFile(script, '/etc/odin/ws.env'));
    expect(env.KAFKA_CONSUMER_GROUP).toBeUndefined();
    expect(script).toContain("ODIN_CONSUMER_GROUP_PREFIX='ws-test-'");
    expect(script).toContain('KAFKA_CONSUMER_GROUP=${ODIN_CONSUMER_GROUP_PREFIX}${name}');
    expect(script.indexOf('# ---- ws-fleet.sh ----')).toBeLessThan(script.indexOf('# ---- ws-startup.sh ----'));
  });

  it('Prometheus finds the nodes by GCE service discovery per zone; the backend may list instances and nothing more', () => {
    const prom = parseYaml(stagedFile(startupScript(stacks.backend), '/etc/prometheus/prometheus.yml'));
    const job = prom.scrape_configs.find((j: { job_name: string }) => j.job_name === 'odin-ws');
    expect(job.static_configs).toBeUndefined();
    expect(job.gce_sd_configs).toEqual(
      ['us-central1-a', 'us-central1-b'].map((zone) => ({ project: 'odin-ws-test', zone, port: 3004, refresh_interval: '30s', filter: '(labels.role = "ws") AND (status = "RUNNING")' })),
    );
    expect(job.relabel_configs).toContainEqual({ source_labels: ['__meta_gce_instance_name'], target_label: 'node' });
    expect(resources(stacks.backend, 'google_project_iam_member').map((g) => g.role).sort()).toEqual(['roles/compute.viewer', 'roles/logging.logWriter', 'roles/monitoring.metricWriter']);
    expect(stagedFile(startupScript(stacks.backend), '/var/lib/odin/dashboards/odin-fleet.json')).toContain('sum by (node) (odin_ws_connections)');
  });

  it('outputs the fleet URL, the group and its nodes', () => {
    expect(Object.keys(ws.output!).sort()).toEqual([...FLEET_OUTPUTS_BY_STACK.ws].sort());
    expect(ws.output!.ws_fleet_url.value).toMatch(/^ws:\/\/\$\{google_compute_forwarding_rule\.[\w-]+\.ip_address\}:3004\/ws$/);
    expect(ws.output!.ws_nodes.value).toMatch(/^\$\{\[for i in data\.google_compute_region_instance_group\.[\w-]+\.instances : i\.instance\]\}$/);
    expect(Object.keys(stacks.bootstrap.output!)).toContain('releases_bucket');
  });
});

describe('ws.autoscale and ws.domain', () => {
  it('autoscale: the autoscaler owns the size, scales in one node at a time', () => {
    const { stacks } = synthAll({ ws: { count: 2, autoscale: { min: 2, max: 6, target: 0.6 } } });
    const group = only(stacks.ws, 'google_compute_region_instance_group_manager');
    expect(group.target_size).toBeUndefined();
    expect(group.lifecycle.ignore_changes).toContain('target_size');
    const scaler = only(stacks.ws, 'google_compute_region_autoscaler');
    expect(scaler.autoscaling_policy).toMatchObject({ min_replicas: 2, max_replicas: 6, cpu_utilization: { target: 0.6 }, scale_in_control: { max_scaled_in_replicas: { fixed: 1 } } });
  });

  it('domain: a Google-managed certificate on an Application Load Balancer with a day-long backend timeout for WebSockets', () => {
    const { stacks } = synthAll({ ws: { count: 3, domain: 'feed.example.com' } });
    expect(only(stacks.ws, 'google_compute_managed_ssl_certificate').managed).toEqual({ domains: ['feed.example.com'] });
    const backend = only(stacks.ws, 'google_compute_backend_service');
    expect(backend).toMatchObject({ protocol: 'HTTP', port_name: 'ws', load_balancing_scheme: 'EXTERNAL_MANAGED', timeout_sec: 86400 });
    expect(only(stacks.ws, 'google_compute_global_forwarding_rule')).toMatchObject({ port_range: '443', load_balancing_scheme: 'EXTERNAL_MANAGED' });
    expect(only(stacks.ws, 'google_compute_target_https_proxy').ssl_certificates).toHaveLength(1);
    expect(only(stacks.bootstrap, 'google_compute_global_address').name).toBe('odin-test-wss-address');
    expect(stacks.ws.output!.wss_url.value).toBe('wss://feed.example.com/ws');
    // The plain passthrough balancer stays.
    expect(resources(stacks.ws, 'google_compute_forwarding_rule')).toHaveLength(1);
  });

  it.each([
    [{ count: 1, domain: 'feed.example.com' }, 'ws.domain'],
    [{ count: 1, autoscale: { min: 2, max: 3, target: 0.5 } }, 'ws.autoscale'],
    [{ count: 2, autoscale: { min: 3, max: 2, target: 0.5 } }, 'ws.autoscale.max'],
    [{ count: 8, autoscale: { min: 2, max: 4, target: 0.5 } }, 'ws.count'],
    [{ count: 2, zones: ['europe-west1-b'] }, 'ws.zones.0'],
    [{ count: 0 }, 'ws.count'],
  ])('refuses %j at %s', (ws, where) => {
    const r = StackConfigSchema.safeParse({ ...BASE_CONFIG, ws });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.path.join('.'))).toContain(where);
  });
});

describe('loadtest.count', () => {
  it('3 load-test VMs: the first keeps the single one\'s name and address, the others follow; one shared account; external addresses only against a fleet', () => {
    const single = synthAll({ loadtest: { count: 3 } }).stacks.loadtest;
    const vms = resources(single, 'google_compute_instance');
    expect(vms.map((v) => v.name).sort()).toEqual(['odin-test-loadtest', 'odin-test-loadtest-2', 'odin-test-loadtest-3']);
    expect(resources(single, 'google_compute_address').map((a) => a.address).sort()).toEqual(['10.10.0.30', '10.10.0.31', '10.10.0.32']);
    expect(resources(single, 'google_service_account')).toHaveLength(1);
    expect(new Set(vms.map((v) => v.service_account.email)).size).toBe(1);
    for (const v of vms) expect(v.network_interface[0].access_config).toBeUndefined();
    expect(single.output!.loadtest_instances.value).toBe('odin-test-loadtest,odin-test-loadtest-2,odin-test-loadtest-3');
    const fleet = synthAll({ ws: { count: 2 }, loadtest: { count: 2 } }).stacks.loadtest;
    for (const v of resources(fleet, 'google_compute_instance')) expect(v.network_interface[0].access_config).toEqual([{ network_tier: 'PREMIUM' }]);
  });

  it('refuses a source range over the extra load-test addresses', () => {
    const r = StackConfigSchema.safeParse({ ...BASE_CONFIG, loadtest: { count: 3, sourceCidr: '10.10.0.32/30' } });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0].message).toContain('10.10.0.32');
  });
});

describe('the fleet dashboard and Prometheus config', () => {
  const promtool = spawnSync('promtool', ['--version']).status === 0;
  // Off CI only, and said: promtool comes from the Debian prometheus package (.ci/run installs it).
  if (!promtool && !process.env.CI) console.warn('skipping the fleet promtool check: promtool not installed (apt-get install prometheus)');
  const dash = JSON.parse(readFileSync(path.join(ASSET_DIR, 'dashboard-odin-fleet.json'), 'utf8'));
  const main = readFileSync(path.join(ASSET_DIR, 'dashboard-odin-ws.json'), 'utf8');
  const exprs: string[] = dash.panels.flatMap((p: { targets: Array<{ expr: string }> }) => p.targets.map((t) => t.expr));

  it('every panel queries Prometheus, per node with a fleet total, on metrics the single-VM dashboard already uses', () => {
    for (const p of dash.panels) expect(p.datasource.uid).toBe('odin-prometheus');
    expect(exprs.some((e) => /by \(node\)/.test(e))).toBe(true);
    expect(exprs).toContain('sum(odin_ws_connections)');
    for (const name of new Set(exprs.flatMap((e) => [...e.matchAll(/\b(odin_ws_[a-z_]+)/g)].map((m) => m[1])))) {
      expect(main, name).toContain(name.replace(/_bucket$/, ''));
    }
  });

  it.skipIf(!promtool && !process.env.CI)('every query is valid PromQL, and the rendered fleet prometheus.yml passes promtool', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'odin-fleet-prom-'));
    try {
      const rules = path.join(dir, 'rules.yml');
      const grafanaVars = (e: string) => e.replace(/\$__rate_interval/g, '1m');
      writeFileSync(rules, toYaml({ groups: [{ name: 'fleet', rules: exprs.map((e, i) => ({ record: `fleet:q${i}`, expr: grafanaVars(e) })) }] }));
      const r = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const config = path.join(dir, 'prometheus.yml');
      writeFileSync(config, stagedFile(startupScript(synthAll({ ws: { count: 3, zones: ['us-central1-a', 'us-central1-b'] } }).stacks.backend), '/etc/prometheus/prometheus.yml'));
      const c = spawnSync('promtool', ['check', 'config', '--syntax-only', config], { encoding: 'utf8' });
      expect(c.status, c.stdout + c.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
