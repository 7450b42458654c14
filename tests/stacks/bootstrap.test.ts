// The bootstrap stack (APIs, the WS address, the secrets) and the optional state-bucket stack.
import { describe, expect, it } from 'vitest';
import { only, resources, startupScript, synthAll } from './helpers.js';

const { stacks, raw } = synthAll({ project: 'odin-ws-boot', stateBucket: 'odin-boot-tf-state' });

// Literal on purpose: what a fresh project needs for the stacks and the ops scripts.
const APIS = [
  'cloudresourcemanager.googleapis.com',
  'compute.googleapis.com',
  'iam.googleapis.com',
  'iap.googleapis.com',
  'logging.googleapis.com',
  'monitoring.googleapis.com',
  'oslogin.googleapis.com',
  'secretmanager.googleapis.com',
  'serviceusage.googleapis.com',
  'storage.googleapis.com',
];

describe('bootstrap stack', () => {
  it('enables every API the stacks and ops scripts call, never disabling them on destroy', () => {
    const services = resources(stacks.bootstrap, 'google_project_service');
    expect(services.map((s) => s.service).sort()).toEqual(APIS);
    for (const s of services) expect(s).toMatchObject({ project: 'odin-ws-boot', disable_on_destroy: false, disable_dependent_services: false });
  });

  it('every other stack deploys after it', async () => {
    const { buildStacks } = await import('../../stacks/app.js');
    const { loadAssets } = await import('../../stacks/assets.js');
    const { Testing } = await import('cdktf');
    const { makeConfig } = await import('./helpers.js');
    const built = buildStacks(Testing.app(), makeConfig(), loadAssets());
    expect(built.network.dependencies).toContain(built.bootstrap);
    for (const s of [built.backend, built.ws, built.loadtest]) expect(s.dependencies).toContain(built.network);
  });

  it('the WS address waits for the APIs', () => {
    const address = only(stacks.bootstrap, 'google_compute_address');
    expect(address.depends_on).toEqual(expect.arrayContaining([expect.stringMatching(/^google_project_service\.api-compute$/)]));
  });

  it('creates the auth and Grafana secrets with no version: the values never pass through Terraform', () => {
    const secrets = resources(stacks.bootstrap, 'google_secret_manager_secret');
    expect(secrets.map((s) => s.secret_id).sort()).toEqual(['odin-test-grafana-admin-password', 'odin-test-ws-auth-secret']);
    for (const s of secrets) expect(s.replication).toEqual({ auto: {} });
    for (const [name, json] of Object.entries(raw)) {
      expect(json, name).not.toContain('google_secret_manager_secret_version');
      expect(json, name).not.toMatch(/"secret_data"|WS_AUTH_SECRET=/);
    }
  });

  it('only the WS VM may read the auth secret, only the backend the Grafana password', () => {
    const all = (['bootstrap', 'network', 'backend', 'ws', 'loadtest'] as const).flatMap((n) =>
      resources(stacks[n], 'google_secret_manager_secret_iam_member').map((r) => [n, r.secret_id, r.role]),
    );
    expect(all).toEqual([
      ['backend', 'odin-test-grafana-admin-password', 'roles/secretmanager.secretAccessor'],
      ['ws', 'odin-test-ws-auth-secret', 'roles/secretmanager.secretAccessor'],
    ]);
  });

  it('the startup scripts name the secrets but never carry a value or an auth env var', () => {
    const ws = startupScript(stacks.ws);
    expect(ws).toContain("ODIN_AUTH_SECRET_NAME='odin-test-ws-auth-secret'");
    expect(ws).not.toMatch(/^WS_AUTH_SECRET=/m);
    expect(startupScript(stacks.backend)).toContain("ODIN_GRAFANA_SECRET_NAME='odin-test-grafana-admin-password'");
    for (const name of ['ws', 'backend', 'loadtest'] as const) {
      const metadata = only(stacks[name], 'google_compute_instance').metadata;
      expect(Object.keys(metadata).sort()).toEqual(['block-project-ssh-keys', 'enable-oslogin', 'startup-script']);
    }
  });
});

describe('state bucket stack', () => {
  it('is versioned, uniform-access, public-access-prevented, never force-destroyed, and protected from destroy', () => {
    const bucket = only(stacks.state!, 'google_storage_bucket');
    expect(bucket).toMatchObject({
      name: 'odin-boot-tf-state',
      location: 'US-CENTRAL1',
      versioning: { enabled: true },
      uniform_bucket_level_access: true,
      public_access_prevention: 'enforced',
      force_destroy: false,
      lifecycle: { prevent_destroy: true },
    });
  });

  it('is absent without a configured bucket', () => {
    expect(synthAll().stacks.state).toBeUndefined();
  });
});
