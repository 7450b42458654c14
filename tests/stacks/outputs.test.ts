import { describe, expect, it } from 'vitest';
import { OUTPUT_NAMES, OUTPUTS_BY_STACK, STACK_NAMES } from '../../stacks/outputs.js';
import { synthAll } from './helpers.js';

const { stacks } = synthAll({ subnetCidr: '10.40.0.0/24', project: 'odin-ws-outputs', zone: 'us-central1-b' });

describe('stack outputs', () => {
  it('every contract name is declared by exactly one stack, and no stack declares others', () => {
    const declared = STACK_NAMES.flatMap((name) => Object.keys(stacks[name].output ?? {}));
    expect(stacks.state).toBeUndefined(); // no bucket configured: no state stack
    expect([...declared].sort()).toEqual([...OUTPUT_NAMES].sort());
    for (const name of STACK_NAMES) {
      expect(Object.keys(stacks[name].output ?? {}).sort()).toEqual([...OUTPUTS_BY_STACK[name]].sort());
    }
  });

  it('point at the right things', () => {
    const value = (stack: keyof typeof stacks, name: string) => stacks[stack]!.output![name].value;
    const externalKey = Object.entries(stacks.bootstrap.resource.google_compute_address).find(([, a]) => a.address_type === 'EXTERNAL')![0];
    const ext = `\${google_compute_address.${externalKey}.address}`;
    expect(value('bootstrap', 'ws_url')).toBe(`ws://${ext}:3004/ws`);
    expect(value('bootstrap', 'health_url')).toBe(`http://${ext}:3004/health`);
    expect(value('bootstrap', 'ws_external_ip')).toBe(ext);
    expect(value('ws', 'ws_internal_ip')).toBe('10.40.0.20');
    expect(value('backend', 'backend_internal_ip')).toBe('10.40.0.10');
    expect(value('loadtest', 'loadtest_internal_ip')).toBe('10.40.0.30');
    expect(value('backend', 'grafana_url')).toBe('http://10.40.0.10:3010');
    expect(value('backend', 'console_url')).toBe('http://10.40.0.10:8080');
    expect(value('backend', 'publisher_status_url')).toBe('http://10.40.0.10:3003/status');
    expect(value('ws', 'ws_instance')).toBe('odin-test-ws');
    expect(value('backend', 'backend_instance')).toBe('odin-test-backend');
    expect(value('loadtest', 'loadtest_instance')).toBe('odin-test-loadtest');
    expect(value('network', 'zone')).toBe('us-central1-b');
    expect(value('network', 'project')).toBe('odin-ws-outputs');
  });
});

describe('state backend', () => {
  it('is a local file per env and stack without a bucket, at a path relative to the stack dir (no machine path)', () => {
    for (const name of STACK_NAMES) {
      // Terraform runs in cdktf.out/stacks/<stack>/: three levels up is the repo root.
      expect(stacks[name].terraform.backend).toEqual({ local: { path: `../../../terraform.test.${name}.tfstate` } });
    }
  });

  it('is GCS with a prefix per env and stack when a bucket is configured; the bucket itself has local state', () => {
    const withBucket = synthAll({ stateBucket: 'odin-tf-state' }).stacks;
    for (const name of STACK_NAMES) {
      expect(withBucket[name].terraform.backend).toEqual({ gcs: { bucket: 'odin-tf-state', prefix: `odin-ws/test/${name}` } });
    }
    expect(withBucket.state!.terraform.backend).toEqual({ local: { path: '../../../terraform.test.state.tfstate' } });
  });

  it('every stack configures the google provider for the project, region and zone with labels', () => {
    for (const name of STACK_NAMES) {
      expect(stacks[name].provider!.google).toEqual([
        {
          project: 'odin-ws-outputs',
          region: 'us-central1',
          zone: 'us-central1-b',
          default_labels: { env: 'test', managed_by: 'cdktf' },
        },
      ]);
    }
  });
});
