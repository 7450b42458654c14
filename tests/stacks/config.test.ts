import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cidrContains, cidrHost, parseCidr, type Cidr } from '../../stacks/config/cidr.js';
import { ConfigError, loadConfig } from '../../stacks/config/load.js';
import { planDeployment } from '../../stacks/plan.js';

const dirs: string[] = [];
function configDir(files: Record<string, unknown>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'odin-stack-config-'));
  dirs.push(dir);
  for (const [name, body] of Object.entries(files)) {
    writeFileSync(path.join(dir, `${name}.json`), typeof body === 'string' ? body : JSON.stringify(body));
  }
  return dir;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function problemsOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('checked-in dev config', () => {
  it('has no project: without GCP_PROJECT nothing synthesizes, and the error says how to set one', () => {
    const message = problemsOf(() => loadConfig({ env: {} }));
    expect(message).toContain('project: is required: the GCP project id to deploy into (set GCP_PROJECT, or "project" in this file)');
    expect(problemsOf(() => loadConfig({ env: { GCP_PROJECT: '', TF_STATE_BUCKET: ' ' } }))).toContain('project: is required');
  });

  it('loads offline with GCP_PROJECT and the old system defaults, frozen; the load-test VM is off', () => {
    const config = loadConfig({ env: { GCP_PROJECT: 'my-real-project' } });
    expect(config.env).toBe('dev');
    expect(config.project).toBe('my-real-project');
    expect(config.zone).toBe('us-central1-a');
    expect(config.ws).toMatchObject({ machineType: 'e2-highcpu-8', shards: 3, maxConnections: 18000, cpuLimit: 7 });
    expect(config.backend.machineType).toBe('e2-medium');
    expect(config.loadtest).toMatchObject({ machineType: 'e2-standard-8', enabled: false });
    expect(config.stateBucket).toBeUndefined();
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.ws)).toBe(true);
  });

  it('applies the env overrides, numbers as numbers', () => {
    const config = loadConfig({
      env: {
        GCP_PROJECT: 'my-real-project',
        GCP_REGION: 'europe-west1',
        GCP_ZONE: 'europe-west1-b',
        WS_SHARDS: '6',
        TF_STATE_BUCKET: 'odin-tf-state',
      },
    });
    expect(config).toMatchObject({ project: 'my-real-project', region: 'europe-west1', zone: 'europe-west1-b', stateBucket: 'odin-tf-state' });
    expect(config.ws.shards).toBe(6);
  });

  it('no longer takes operatorCidr: no rule could use it (Grafana and the console are IAP-only)', () => {
    const dir = configDir({ dev: { project: 'odin-ws-dev', operatorCidr: '203.0.113.7/32' } });
    expect(problemsOf(() => loadConfig({ configDir: dir }))).toContain('operatorCidr');
  });
});

describe('rejected config, with a message naming each bad field', () => {
  it.each([
    ['10.0.0.1/33', 'prefix length above 32'],
    ['300.1.2.3/32', 'invalid IPv4 address'],
    ['203.0.113.7', 'not an IPv4 CIDR'],
    ['10.0.0.5/24', 'did you mean 10.0.0.0/24'],
    ['8.8.8.0/24', 'not a private'],
  ])('subnetCidr %s', (cidr, why) => {
    const dir = configDir({ dev: { project: 'odin-ws-dev', subnetCidr: cidr } });
    const message = problemsOf(() => loadConfig({ configDir: dir }));
    expect(message).toContain('subnetCidr: ');
    expect(message).toContain(why);
  });

  it('a config file without a project', () => {
    const dir = configDir({ prod: {} });
    const message = problemsOf(() => loadConfig({ env: { ODIN_ENV: 'prod' }, configDir: dir }));
    expect(message).toMatch(/project: is required/);
    expect(message).toContain(path.join(dir, 'prod.json'));
  });

  it('lists every problem at once', () => {
    const dir = configDir({
      prod: { project: 'Bad_Project', loadtest: { enabled: 'yes' }, ws: { shards: 0 }, subnetCidr: '8.8.8.0/24', wsShard: 3 },
    });
    const err = (() => {
      try {
        loadConfig({ env: { ODIN_ENV: 'prod' }, configDir: dir });
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    const fields = err.problems.map((p) => p.split(/[ :]/)[0]);
    expect(fields).toEqual(expect.arrayContaining(['project', 'loadtest.enabled', 'ws.shards', 'subnetCidr', '(root)']));
    expect(err.message).toContain('wsShard'); // the typo'd key is named
  });

  it('a zone outside the region, a bad shard count from env, a bad bucket name', () => {
    const p = { GCP_PROJECT: 'odin-ws-dev' };
    expect(problemsOf(() => loadConfig({ env: { ...p, GCP_ZONE: 'europe-west1-b' } }))).toContain('zone (from GCP_ZONE="europe-west1-b"): europe-west1-b is not in region us-central1');
    expect(problemsOf(() => loadConfig({ env: { ...p, WS_SHARDS: 'three' } }))).toContain('ws.shards (from WS_SHARDS="three")');
    expect(problemsOf(() => loadConfig({ env: { ...p, TF_STATE_BUCKET: 'gs://bucket' } }))).toContain('stateBucket');
  });

  it('a load-test source range outside the subnet or over the fixed VM addresses', () => {
    const outside = configDir({ dev: { project: 'odin-ws-dev', loadtest: { sourceCidr: '10.99.0.0/28' } } });
    expect(problemsOf(() => loadConfig({ configDir: outside }))).toContain('loadtest.sourceCidr: 10.99.0.0/28 is not inside subnetCidr');
    const overlap = configDir({ dev: { project: 'odin-ws-dev', loadtest: { sourceCidr: '10.10.0.16/28' } } });
    expect(problemsOf(() => loadConfig({ configDir: overlap }))).toContain('overlaps the fixed VM addresses');
  });

  it('an unknown environment, a path-like ODIN_ENV, a file that is not JSON', () => {
    expect(problemsOf(() => loadConfig({ env: { ODIN_ENV: 'staging' } }))).toMatch(/no config file .*staging\.json.*known environments: .*dev/);
    expect(problemsOf(() => loadConfig({ env: { ODIN_ENV: '../dev' } }))).toContain('not an environment name');
    const dir = configDir({ broken: '{ "project": ' });
    expect(problemsOf(() => loadConfig({ env: { ODIN_ENV: 'broken' }, configDir: dir }))).toContain('is not valid JSON');
  });

  it('a file whose env field disagrees with ODIN_ENV', () => {
    const dir = configDir({ prod: { env: 'dev', project: 'odin-ws-prod' } });
    expect(problemsOf(() => loadConfig({ env: { ODIN_ENV: 'prod' }, configDir: dir }))).toContain('"env" is "dev"');
  });
});

describe('cidr arithmetic and the deployment plan', () => {
  it('computes hosts and containment', () => {
    const subnet = parseCidr('10.10.0.0/24') as Cidr;
    expect(cidrHost(subnet, 10)).toBe('10.10.0.10');
    expect(cidrHost(subnet, 255)).toBe('10.10.0.255');
    expect(() => cidrHost(subnet, 256)).toThrow(RangeError);
    expect(cidrContains(subnet, parseCidr('10.10.0.64/28') as Cidr)).toBe(true);
    expect(cidrContains(subnet, parseCidr('10.10.1.0/28') as Cidr)).toBe(false);
  });

  it('places the VMs at fixed hosts of the subnet and names everything after the env', () => {
    const config = loadConfig({ env: { GCP_PROJECT: 'odin-ws-dev' } });
    const plan = planDeployment({ ...config, subnetCidr: '172.16.4.0/22' });
    expect(plan.vms.backend.internalIp).toBe('172.16.4.10');
    expect(plan.vms.ws.internalIp).toBe('172.16.4.20');
    expect(plan.vms.loadtest.internalIp).toBe('172.16.4.30');
    expect(plan.kafkaBrokers).toBe('172.16.4.10:9092');
    expect(plan.consumerGroup).toBe('ws-server-dev');
    expect(plan.vms.ws.instanceName).toBe('odin-dev-ws');
    expect(plan.subnetPath).toBe('projects/odin-ws-dev/regions/us-central1/subnetworks/odin-dev-subnet');
  });
});
