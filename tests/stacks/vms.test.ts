import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ROLES } from '../../stacks/plan.js';
import { bashSyntaxErrors, only, runBash, parseEnvFile, resources, stagedFile, startupScript, synthAll, type TfJson } from './helpers.js';

// Non-default values everywhere, so a test cannot pass on a hard-coded default.
const { stacks, config } = synthAll({
  subnetCidr: '10.30.0.0/24',
  zone: 'us-central1-c',
  image: 'debian-cloud/debian-12-bookworm-v20261101',
  ws: { shards: 5, maxConnections: 1234, cpuLimit: 3.5, machineType: 'e2-highcpu-16', diskGb: 25 },
  backend: { redpandaMemory: '2G' },
  loadtest: { sourceCidr: '10.30.0.64/28' },
  kafka: { topics: ['feed.trades', 'feed.prices', 'feed.news'], partitions: 4 },
});
const IPS = { backend: '10.30.0.10', ws: '10.30.0.20', loadtest: '10.30.0.30' };
const MACHINE = { ws: 'e2-highcpu-16', backend: 'e2-medium', loadtest: 'e2-standard-8' };
const SUBNET_PATH = 'projects/odin-ws-test/regions/us-central1/subnetworks/odin-test-subnet';

const SECRET_OF: Record<string, string | undefined> = { ws: 'odin-test-ws-auth-secret', backend: 'odin-test-grafana-admin-password', loadtest: undefined };
const refName = (ref: string, type: string) => new RegExp(`^\\$\\{${type}\\.([\\w-]+)\\.\\w+\\}$`).exec(ref)?.[1];

describe.each(ROLES)('%s VM', (role) => {
  const stack: TfJson = stacks[role];
  const instance = only(stack, 'google_compute_instance');

  it('has the configured machine type, zone, image and subnet, at its reserved internal address', () => {
    expect(instance.name).toBe(`odin-test-${role}`);
    expect(instance.machine_type).toBe(MACHINE[role]);
    expect(instance.zone).toBe('us-central1-c');
    expect(instance.boot_disk.initialize_params.image).toBe('debian-cloud/debian-12-bookworm-v20261101');
    expect(instance.boot_disk.initialize_params.type).toBe('pd-balanced');
    expect(instance.network_interface).toHaveLength(1);
    const nic = instance.network_interface[0];
    expect(nic.subnetwork).toBe(SUBNET_PATH);
    const internal = resources(stack, 'google_compute_address').find((a) => a.address_type === 'INTERNAL')!;
    expect(internal).toMatchObject({ address: IPS[role], subnetwork: SUBNET_PATH });
    expect(nic.network_ip).toBe(`\${google_compute_address.${Object.keys(stack.resource.google_compute_address).find((k) => stack.resource.google_compute_address[k] === internal)}.address}`);
    expect(instance.tags).toEqual([`odin-${role}`]);
  });

  it('runs as its own service account that may only write logs and metrics, and read its own secret', () => {
    const saKey = refName(instance.service_account.email, 'google_service_account');
    expect(saKey).toBeDefined();
    expect(stack.resource.google_service_account[saKey!].account_id).toBe(`odin-test-${role}`);
    const secret = SECRET_OF[role];
    // Secret Manager only accepts the cloud-platform scope; IAM still limits the VM to its grants.
    expect(instance.service_account.scopes).toEqual(
      secret ? ['https://www.googleapis.com/auth/cloud-platform'] : ['https://www.googleapis.com/auth/logging.write', 'https://www.googleapis.com/auth/monitoring.write'],
    );
    const readers = resources(stack, 'google_secret_manager_secret_iam_member');
    expect(readers.map((r) => [r.secret_id, r.role, r.member])).toEqual(
      secret ? [[secret, 'roles/secretmanager.secretAccessor', `serviceAccount:\${google_service_account.${saKey}.email}`]] : [],
    );
    for (const r of readers) expect(r.project).toBe('odin-ws-test');
    const grants = resources(stack, 'google_project_iam_member');
    expect(grants.map((g) => g.role).sort()).toEqual(['roles/logging.logWriter', 'roles/monitoring.metricWriter']);
    for (const grant of grants) {
      expect(grant.member).toBe(`serviceAccount:\${google_service_account.${saKey}.email}`);
      expect(grant.project).toBe('odin-ws-test');
    }
    expect(JSON.stringify(stack)).not.toContain('compute@developer.gserviceaccount.com');
  });

  it('uses OS Login, Shielded VM, and a startup script that bash accepts', () => {
    expect(instance.metadata['enable-oslogin']).toBe('TRUE');
    expect(instance.shielded_instance_config).toMatchObject({ enable_secure_boot: true, enable_vtpm: true });
    expect(bashSyntaxErrors(startupScript(stack))).toBe('');
  });

  it('escapes the script for Terraform: no bare ${ or %{ reaches the template engine', () => {
    const value: string = instance.metadata['startup-script'];
    expect(value).toMatch(/\$\$\{/); // the script does use ${...}
    expect(value.replace(/\$\$\{/g, '').includes('${')).toBe(false);
    expect(value.replace(/%%\{/g, '').includes('%{')).toBe(false);
  });
});

describe('external addresses and deletion protection', () => {
  it('only the WS VM has one: the static address reserved in the bootstrap stack, read by name', () => {
    for (const role of ROLES) {
      expect(resources(stacks[role], 'google_compute_address').every((a) => a.address_type === 'INTERNAL')).toBe(true);
    }
    for (const role of ['backend', 'loadtest'] as const) {
      expect(only(stacks[role], 'google_compute_instance').network_interface[0].access_config).toBeUndefined();
    }
    const reserved = only(stacks.bootstrap, 'google_compute_address');
    expect(reserved).toMatchObject({ name: 'odin-test-ws-external', region: 'us-central1', address_type: 'EXTERNAL' });
    const [key, data] = Object.entries(stacks.ws.data!.google_compute_address)[0];
    expect(data).toMatchObject({ name: 'odin-test-ws-external', region: 'us-central1' });
    const access = only(stacks.ws, 'google_compute_instance').network_interface[0].access_config;
    expect(access).toEqual([{ nat_ip: `\${data.google_compute_address.${key}.address}`, network_tier: 'PREMIUM' }]);
  });

  it('the WS VM has deletion protection; the others do not (they are rebuilt freely)', () => {
    expect(only(stacks.ws, 'google_compute_instance').deletion_protection).toBe(true);
    expect(only(stacks.backend, 'google_compute_instance').deletion_protection).toBe(false);
    expect(only(stacks.loadtest, 'google_compute_instance').deletion_protection).toBe(false);
  });

  it('the load-test VM carries the configured alias range for extra source addresses', () => {
    expect(only(stacks.loadtest, 'google_compute_instance').network_interface[0].alias_ip_range).toEqual([{ ip_cidr_range: '10.30.0.64/28' }]);
  });
});

describe('startup scripts hold what the VMs need', () => {
  const ws = startupScript(stacks.ws);
  const backend = startupScript(stacks.backend);
  const loadtest = startupScript(stacks.loadtest);

  it('ws: the server env matches the props, Kafka at the backend internal IP', () => {
    expect(parseEnvFile(stagedFile(ws, '/etc/odin/ws.env'))).toEqual({
      WS_MODE: 'multi',
      WS_ADDR: ':3004',
      WS_SHARDS: '5',
      WS_MAX_CONNECTIONS: '1234',
      WS_CPU_LIMIT: '3.5',
      KAFKA_BROKERS: `${IPS.backend}:9092`,
      KAFKA_TOPICS: 'feed.trades,feed.prices,feed.news',
      KAFKA_CONSUMER_GROUP: 'ws-server-test',
    });
    const unit = stagedFile(ws, '/etc/systemd/system/odin-ws.service');
    expect(unit).toContain('ExecStart=/usr/bin/node /opt/odin/current/server.mjs');
    expect(unit).toContain('EnvironmentFile=/etc/odin/ws.env');
    expect(stagedFile(ws, '/etc/sysctl.d/90-odin-ws.conf')).toMatch(/^net\.core\.somaxconn = 65535$/m);
  });

  it('backend: Redpanda advertised on the backend internal IP with the configured memory', () => {
    const redpanda = parseYaml(stagedFile(backend, '/etc/redpanda/redpanda.yaml'));
    expect(redpanda.redpanda.advertised_kafka_api).toEqual([{ name: 'internal', address: IPS.backend, port: 9092 }]);
    expect(redpanda.redpanda.kafka_api[0].port).toBe(9092);
    expect(redpanda.rpk.additional_start_flags).toContain('--memory=2G');
    expect(backend).toContain("ODIN_KAFKA_TOPICS='feed.trades,feed.prices,feed.news'");
    expect(backend).toContain("ODIN_KAFKA_PARTITIONS='4'");
  });

  it('backend: Prometheus scrapes the WS VM internal IP and the publisher', () => {
    const prom = parseYaml(stagedFile(backend, '/etc/prometheus/prometheus.yml'));
    const targets = Object.fromEntries(prom.scrape_configs.map((j: any) => [j.job_name, j.static_configs.flatMap((s: any) => s.targets)]));
    expect(targets['odin-ws']).toEqual([`${IPS.ws}:3004`]);
    expect(targets['odin-publisher']).toEqual(['127.0.0.1:3003']);
    expect(prom.global.external_labels.env).toBe('test');
  });

  it('backend: publisher env and unit, Grafana on 3010 with datasource and dashboard', () => {
    expect(parseEnvFile(stagedFile(backend, '/etc/odin/publisher.env'))).toEqual({
      KAFKA_BROKERS: '127.0.0.1:9092',
      PUBLISHER_TOPICS: 'feed.trades,feed.prices,feed.news',
      PUBLISHER_PORT: '3003',
    });
    expect(stagedFile(backend, '/etc/systemd/system/odin-publisher.service')).toContain('ExecStart=/usr/bin/node /opt/odin/current/publisher.mjs');
    expect(stagedFile(backend, '/etc/systemd/system/grafana-server.service.d/odin.conf')).toContain('GF_SERVER_HTTP_PORT=3010');
    const dashboard = JSON.parse(stagedFile(backend, '/var/lib/odin/dashboards/odin-ws.json'));
    expect(dashboard.uid).toBe('odin-ws');
    const datasource = parseYaml(stagedFile(backend, '/etc/grafana/provisioning/datasources/odin.yaml'));
    expect(datasource.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://127.0.0.1:9090' });
  });

  it('loadtest: ephemeral port range widened, the WS internal IP known', () => {
    expect(stagedFile(loadtest, '/etc/sysctl.d/90-odin-loadtest.conf')).toMatch(/^net\.ipv4\.ip_local_port_range = 1024 65535$/m);
    expect(loadtest).toContain(`ODIN_WS_INTERNAL_IP='${IPS.ws}'`);
    expect(stagedFile(loadtest, '/etc/security/limits.d/90-odin.conf')).toMatch(/nofile 1048576/);
  });
});

describe('the staging part of a rendered script, executed', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('writes every staged file byte for byte, with its mode', () => {
    const script = startupScript(stacks.backend);
    const header = script.slice(0, script.indexOf('\n# ---- common.sh ----'));
    const stage = mkdtempSync(path.join(tmpdir(), 'odin-stage-'));
    dirs.push(stage);
    const r = runBash(['-c', header], { HOME: stage, ODIN_STAGE: stage });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    for (const dest of ['/etc/redpanda/redpanda.yaml', '/var/lib/odin/dashboards/odin-ws.json', '/etc/odin/publisher.env']) {
      expect(readFileSync(path.join(stage, dest), 'utf8')).toBe(stagedFile(script, dest));
    }
    expect(statSync(path.join(stage, '/etc/grafana/provisioning/datasources/odin.yaml')).mode & 0o777).toBe(0o640);
    expect(config.env).toBe('test');
  });
});
