// gcp:deploy against fake gcloud/terraform (the synth is real); the WS VM's /health is a real local server's body (the
// fake SSH probe answers with it, carrying the version the deploy just uploaded), and its public
// /health is that real server, fetched from here.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';
import { ROOT, createFakes, inStack, outputRules, preflightRules, runScript, stackOf, stackOutputs, summary, type Call, type Fakes, type Rule } from './support/fakes.js';

const DEPLOY = 'scripts/ops/deploy.mjs';
const HEALTH_PROBE = '^compute ssh odin-ws .*127\\.0\\.0\\.1:3004/health';
const UPLOADED = 'dist/releases/([\\w.-]+) ';

function happyRules(server: RunningServer, body: Record<string, unknown>, { version = '{{1}}' } = {}): Rule[] {
  return [
    ...preflightRules(),
    { tool: 'terraform', match: inStack('[\\w-]+', 'apply'), stdout: 'Apply complete!\n' },
    ...outputRules(stackOutputs({ healthUrl: server.healthUrl })),
    { tool: 'gcloud', match: HEALTH_PROBE, fromCall: UPLOADED, stdout: `${JSON.stringify({ ...body, version })}\n@@http 200\n` },
    { tool: 'gcloud', match: '^compute ssh [\\s\\S]*converge', stdout: 'converge: config up to date\n' },
    { tool: 'gcloud', match: '^compute (ssh|scp)', stdout: 'active\n' },
  ];
}

const RELEASES = path.join(ROOT, 'dist', 'releases');
const listReleases = () => (fs.existsSync(RELEASES) ? fs.readdirSync(RELEASES) : []);
const commandOf = (c: Call) => c.argv[c.argv.indexOf('--command') + 1];
const isApply = (c: Call) => c.tool === 'terraform' && c.argv[1] === 'apply';
/** The stacks applied, in order. */
const applied = (calls: Call[]) => calls.filter(isApply).map(stackOf);
const creates = (calls: Call[]) => calls.filter((c) => isApply(c) || (c.tool === 'gcloud' && (/^(secrets versions add|compute (ssh|scp))/.test(c.argv.join(' ')))));

describe('gcp:deploy', () => {
  let server: RunningServer;
  let body: Record<string, unknown>;
  let fakes: Fakes;
  let releasesBefore: string[];

  beforeAll(async () => {
    releasesBefore = listReleases();
    server = await startServer();
    body = await (await fetch(server.healthUrl)).json();
  });
  afterAll(async () => {
    await server?.stop();
    // The releases these deploys assembled (dist/ is build output; keep anyone else's).
    for (const v of listReleases().filter((r) => !releasesBefore.includes(r))) fs.rmSync(path.join(RELEASES, v), { recursive: true, force: true });
  });
  afterEach(() => fakes?.cleanup());

  it('preflight, bootstrap, infrastructure, then converge and release per VM, then the release on /health', async () => {
    fakes = createFakes({ rules: happyRules(server, body) });
    const r = await runScript(DEPLOY, ['--health-timeout', '30'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/== cost estimate\nEstimated cost, /);
    const calls = fakes.calls();
    expect(summary(calls, 4)).toEqual([
      'gcloud auth list --filter=status:ACTIVE --format=value(account)',
      'gcloud auth application-default print-access-token',
      'gcloud projects describe odin-test --format=value(projectId)',
      'gcloud billing projects describe odin-test',
      'gcloud services list --enabled --project',
      'gcloud compute regions describe us-central1',
      'gcloud projects get-iam-policy odin-test --format=json',
      // Per stack, in the deploy order: init (a fresh directory), then apply.
      'terraform bootstrap init -input=false',
      'terraform bootstrap apply -input=false -auto-approve',
      'terraform network init -input=false',
      'terraform network apply -input=false -auto-approve',
      'terraform backend init -input=false',
      'terraform backend apply -input=false -auto-approve',
      'terraform ws init -input=false',
      'terraform ws apply -input=false -auto-approve',
      // The outputs of the stacks that declare the names deploy needs, merged.
      'terraform bootstrap output -json',
      'terraform network output -json',
      'terraform backend output -json',
      'terraform ws output -json',
      'gcloud compute ssh odin-backend --zone',
      'gcloud compute scp --recurse --zone',
      'gcloud compute ssh odin-backend --zone',
      'gcloud compute ssh odin-ws --zone',
      'gcloud compute scp --recurse --zone',
      'gcloud compute ssh odin-ws --zone',
      'gcloud compute ssh odin-ws --zone',
    ]);
    // The load-test VM is off by default (loadtest.enabled): not deployed, not touched.
    expect(calls.some((c) => c.argv.join(' ').includes('odin-loadtest') || stackOf(c) === 'loadtest')).toBe(false);
    // Terraform ran in the directories the real synth wrote, with the project of this run.
    const outdir = fakes.env.CDKTF_OUTDIR!;
    expect(calls.filter((c) => c.tool === 'terraform').every((c) => c.argv[0].startsWith(`-chdir=${outdir}/stacks/`))).toBe(true);
    const ws = JSON.parse(fs.readFileSync(path.join(outdir, 'stacks', 'ws', 'cdk.tf.json'), 'utf8'));
    expect(ws.provider.google[0].project).toBe('odin-test');
    expect(JSON.parse(fs.readFileSync(path.join(outdir, 'manifest.json'), 'utf8')).stacks.ws.workingDirectory).toBe('stacks/ws');
    // Every call sees the one resolved project; every VM call goes through IAP.
    for (const c of calls) expect(c.env.GCP_PROJECT).toBe('odin-test');
    for (const c of calls.filter((x) => x.argv[0] === 'compute' && x.argv[1] !== 'regions')) {
      expect(c.argv).toEqual(expect.arrayContaining(['--tunnel-through-iap', '--zone', 'us-central1-a', '--project', 'odin-test']));
    }
    // Per VM: converge (re-run a changed startup script) before the restart.
    const wsCalls = calls.filter((c) => c.argv[2] === 'odin-ws');
    expect(commandOf(wsCalls[0])).toContain('sudo google_metadata_script_runner startup');
    expect(commandOf(wsCalls[0])).toContain('/var/lib/odin/startup-applied.sha256');
    // ...leaving odin-ws's restart to the release step: one restart per deploy.
    expect(commandOf(wsCalls[0])).toContain('echo odin-ws.service | sudo tee /run/odin/deferred-restarts');
    expect(commandOf(wsCalls[1])).toContain('sudo rm -f /run/odin/deferred-restarts');
    const rel = calls.find((c) => c.argv[1] === 'scp')!.argv.find((a) => a.startsWith('dist/releases/'))!;
    const version = path.basename(rel);
    expect(commandOf(wsCalls[1])).toContain(`/opt/odin/releases/${version} /opt/odin/current.next`);
    expect(commandOf(wsCalls[1]).indexOf('systemctl restart odin-ws')).toBeGreaterThan(commandOf(wsCalls[1]).indexOf('current.next'));
    // The wait for the unit tolerates `activating`.
    expect(commandOf(wsCalls[1])).toContain('[ "$state" = activating ]');
    // Health: the detailed body read on the VM from loopback.
    expect(commandOf(wsCalls[2])).toBe("curl -sS -m 5 -w '\\n@@http %{http_code}\\n' http://127.0.0.1:3004/health");
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, rel, 'release.json'), 'utf8'));
    expect(manifest.version).toBe(version);
    for (const s of body.shards as Array<{ id: number; pid: number }>) expect(r.stdout).toMatch(new RegExp(`^${s.id}\\s+${s.pid}\\s+yes\\s`, 'm'));
    expect(r.stdout).toContain(`public ${server.healthUrl}: ok`);
    expect(r.stdout).toContain(`deployed ${version}`);
  });

  it('fails when /health keeps reporting an older version than the release it shipped', async () => {
    fakes = createFakes({ rules: happyRules(server, body, { version: 'abc1234-20261101T000000Z' }) });
    const r = await runScript(DEPLOY, ['--health-timeout', '4'], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/did not become healthy within 4 s \(serves version "abc1234-20261101T000000Z", not the release [\w-]+ just shipped\)/);
    expect(r.stdout).not.toContain('deployed ');
  });

  it('with loadtest.enabled deploys and ships to the load-test VM too', async () => {
    const dir = path.join(ROOT, 'stacks', 'config');
    const file = path.join(dir, 'deploytest.json');
    fs.writeFileSync(file, JSON.stringify({ loadtest: { enabled: true } }));
    try {
      fakes = createFakes({ rules: happyRules(server, body) });
      const r = await runScript(DEPLOY, ['--health-timeout', '30'], { ...fakes.env, ODIN_ENV: 'deploytest' });
      expect(r.code, r.stderr).toBe(0);
      const s = summary(fakes.calls(), 5);
      expect(applied(fakes.calls())).toEqual(['bootstrap', 'network', 'backend', 'ws', 'loadtest']);
      expect(s.filter((c) => c.includes('odin-loadtest'))).toHaveLength(2); // converge, install
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it('--auth-secret-file adds a secret version from the file (never printed) and keeps at most two enabled', async () => {
    fakes = createFakes({
      rules: [
        { tool: 'gcloud', match: '^secrets versions list', stdout: 'projects/1/secrets/s/versions/5\nprojects/1/secrets/s/versions/4\nprojects/1/secrets/s/versions/2\n' },
        ...happyRules(server, body),
      ],
    });
    const file = path.join(fakes.dir, 'auth-secret');
    fs.writeFileSync(file, 'k'.repeat(40) + '\n');
    const r = await runScript(DEPLOY, ['--health-timeout', '30', '--auth-secret-file', file], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    const s = fakes.calls().map((c) => c.argv.join(' '));
    expect(s).toContain(`secrets versions add odin-dev-ws-auth-secret --project odin-test --data-file=${file}`);
    expect(s).toContain('secrets versions disable 2 --secret odin-dev-ws-auth-secret --project odin-test');
    expect(s.filter((c) => c.startsWith('secrets versions disable'))).toHaveLength(1);
    expect(r.stdout + r.stderr).not.toContain('k'.repeat(40));
    // Added after the bootstrap stack created the secret, before the VMs boot and read it.
    const added = s.findIndex((c) => c.startsWith('secrets versions add'));
    expect(added).toBeGreaterThan(fakes.calls().findIndex((c) => isApply(c) && stackOf(c) === 'bootstrap'));
    expect(added).toBeLessThan(fakes.calls().findIndex((c) => c.tool === 'terraform' && stackOf(c) === 'network'));
  });

  it('with a state bucket: the state stack first, unless the bucket already exists without this checkout holding its state', async () => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', match: '^storage buckets describe', exit: 1, stderr: 'NotFoundException: 404' }, ...happyRules(server, body)] });
    let r = await runScript(DEPLOY, ['--health-timeout', '30'], { ...fakes.env, TF_STATE_BUCKET: 'odin-tf-state-x' });
    expect(r.code, r.stderr).toBe(0);
    expect(applied(fakes.calls())).toEqual(['state', 'bootstrap', 'network', 'backend', 'ws']);
    // The state stack's backend is local, every other one the bucket (from the real synth).
    const json = (stack: string) => JSON.parse(fs.readFileSync(path.join(fakes.env.CDKTF_OUTDIR!, 'stacks', stack, 'cdk.tf.json'), 'utf8'));
    expect(Object.keys(json('state').terraform.backend)).toEqual(['local']);
    expect(json('network').terraform.backend.gcs).toMatchObject({ bucket: 'odin-tf-state-x', prefix: 'odin-ws/dev/network' });
    fakes.cleanup();
    fakes = createFakes({ rules: [{ tool: 'gcloud', match: '^storage buckets describe', stdout: 'odin-tf-state-x\n' }, ...happyRules(server, body)] });
    r = await runScript(DEPLOY, ['--health-timeout', '30'], { ...fakes.env, TF_STATE_BUCKET: 'odin-tf-state-x' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('state bucket gs://odin-tf-state-x exists (created from another checkout');
    expect(applied(fakes.calls())).toEqual(['bootstrap', 'network', 'backend', 'ws']);
    fakes.cleanup();
    // This checkout holds the state stack's local state (beside the outdir, where the synthesized
    // backend puts it): it manages the bucket, so the state stack is applied.
    fakes = createFakes({ rules: [{ tool: 'gcloud', match: '^storage buckets describe', stdout: 'odin-tf-state-x\n' }, ...happyRules(server, body)] });
    fs.writeFileSync(path.join(path.dirname(fakes.env.CDKTF_OUTDIR!), 'terraform.dev.state.tfstate'), '{}');
    r = await runScript(DEPLOY, ['--health-timeout', '30'], { ...fakes.env, TF_STATE_BUCKET: 'odin-tf-state-x' });
    expect(r.code, r.stderr).toBe(0);
    expect(applied(fakes.calls())[0]).toBe('state');
  });

  it('refuses a short auth secret before creating anything, without printing it', async () => {
    fakes = createFakes({ rules: happyRules(server, body) });
    const file = path.join(fakes.dir, 'short');
    fs.writeFileSync(file, 'too-short-secret\n');
    const r = await runScript(DEPLOY, ['--auth-secret-file', file], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('must hold one line of at least 32 bytes');
    expect(r.stderr).not.toContain('too-short-secret');
    expect(fakes.calls().some((c) => c.argv.join(' ').startsWith('secrets versions add'))).toBe(false);
  });

  it('stops at a failing terraform apply and shows its stderr; later stacks are not applied, nothing is uploaded', async () => {
    fakes = createFakes({ rules: [{ tool: 'terraform', match: inStack('network', 'apply'), exit: 1, stderr: 'Error: googleapi: Error 400: bad\n' }, ...happyRules(server, body)] });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed \(exit 1\): terraform -chdir=\S+\/stacks\/network apply -input=false -auto-approve/);
    expect(r.stderr).toContain('Error 400: bad');
    expect(applied(fakes.calls())).toEqual(['bootstrap', 'network']);
    expect(fakes.calls().some((c) => c.argv[0] === 'compute' && c.argv[1] === 'scp')).toBe(false);
  });

  it('stops at a failing terraform init (e.g. an unreachable backend) before that stack is applied', async () => {
    fakes = createFakes({ rules: [{ tool: 'terraform', match: inStack('bootstrap', 'init'), exit: 1, stderr: 'Error: Failed to get existing workspaces\n' }, ...happyRules(server, body)] });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Failed to get existing workspaces');
    expect(applied(fakes.calls())).toEqual([]);
  });

  it('stops at the first VM whose converge or install fails: later VMs are not touched', async () => {
    fakes = createFakes({
      rules: [{ tool: 'gcloud', match: '^compute ssh odin-backend [\\s\\S]*converge', exit: 1, stderr: 'converge: the startup script did not finish\n' }, ...happyRules(server, body)],
    });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('converge: the startup script did not finish');
    expect(summary(fakes.calls(), 3).filter((c) => c.includes('odin-ws'))).toEqual([]);
  });

  it('fails when the public port does not answer although the VM is healthy', async () => {
    const gone = await startServer();
    await gone.stop();
    fakes = createFakes({ rules: [...outputRules({ bootstrap: stackOutputs({ healthUrl: gone.healthUrl }).bootstrap }), ...happyRules(server, body)] });
    const r = await runScript(DEPLOY, ['--health-timeout', '30'], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${gone.healthUrl} from here: unreachable (ECONNREFUSED)`);
  });

  it('with no gcloud on PATH exits non-zero with one line naming what to install, running nothing', async () => {
    fakes = createFakes({ tools: ['terraform'], isolated: true, rules: happyRules(server, body) });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).not.toBe(0);
    const lines = `${r.stdout}${r.stderr}`.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/gcloud not found on PATH: install the Google Cloud CLI/);
    expect(fakes.calls()).toEqual([]);
  });

  it('rejects a bad flag with usage (exit 2) before running anything', async () => {
    fakes = createFakes({ rules: happyRules(server, body) });
    const r = await runScript(DEPLOY, ['--health-timeout', 'soon'], fakes.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--health-timeout="soon": must be a whole number');
    expect(fakes.calls()).toEqual([]);
  });

  it('without a project anywhere, says how to set one and runs nothing', async () => {
    fakes = createFakes({ rules: happyRules(server, body) });
    const r = await runScript(DEPLOY, [], { ...fakes.env, GCP_PROJECT: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('project: is required: the GCP project id to deploy into (set GCP_PROJECT');
    expect(fakes.calls()).toEqual([]);
  });
});

// Each preflight failure: one line naming the fix, exit 1, nothing created.
describe('gcp:deploy preflight', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());
  const outputs = outputRules(stackOutputs());

  const CASES: Array<[string, Rule[], RegExp]> = [
    ['no active account', [{ tool: 'gcloud', match: '^auth list', stdout: '' }], /^error: gcloud is not authenticated: run `gcloud auth login`$/],
    ['no Application Default Credentials', [{ tool: 'gcloud', match: '^auth application-default', exit: 1, stderr: 'Reauthentication failed.' }], /^error: no Application Default Credentials \(terraform uses them\): run `gcloud auth application-default login`$/],
    ['a project that does not exist', [{ tool: 'gcloud', match: '^projects describe', exit: 1, stderr: 'NOT_FOUND' }], /^error: project odin-test does not exist or operator@example\.com cannot see it: create it \(gcloud projects create odin-test\)/],
    ['billing off', [{ tool: 'gcloud', match: '^billing projects describe', stdout: 'False\n' }], /^error: billing is not enabled on odin-test: gcloud billing projects link odin-test --billing-account=ACCOUNT_ID/],
    ['Service Usage off', [{ tool: 'gcloud', match: '^services list', exit: 1, stderr: 'PERMISSION_DENIED' }], /^error: cannot list the enabled APIs of odin-test: gcloud services enable serviceusage\.googleapis\.com --project odin-test$/],
    ['too little E2 quota', preflightRules({ cpusFree: 4 }), /^error: regional quota CPUS in us-central1: 4 of 24 vCPUs free, the plan needs 10: request more/],
    ['no IAP tunnel role', preflightRules({ roles: ['roles/owner', 'roles/compute.osAdminLogin', 'roles/iam.serviceAccountUser'] }), /^error: user:operator@example\.com lacks roles\/iap\.tunnelResourceAccessor \(IAP TCP forwarding/],
    ['no OS Login admin role', preflightRules({ roles: ['roles/owner', 'roles/iap.tunnelResourceAccessor', 'roles/iam.serviceAccountUser'] }), /^error: user:operator@example\.com lacks roles\/compute\.osAdminLogin \(sudo over OS Login/],
    ['no service account user role', preflightRules({ roles: ['roles/owner', 'roles/iap.tunnelResourceAccessor', 'roles/compute.osAdminLogin'] }), /^error: user:operator@example\.com lacks roles\/iam\.serviceAccountUser/],
    ['editor without the IAM-policy roles', preflightRules({ roles: ['roles/editor', 'roles/iap.tunnelResourceAccessor', 'roles/compute.osAdminLogin', 'roles/iam.serviceAccountUser'] }), /^error: user:operator@example\.com lacks roles\/resourcemanager\.projectIamAdmin \(editor cannot set IAM policies\)/],
  ];

  for (const [name, rules, line] of CASES) {
    it(`${name}: one line with the fix, exit 1, nothing created`, async () => {
      fakes = createFakes({ rules: [...rules, ...preflightRules(), ...outputs, { tool: 'terraform', stdout: 'ok\n' }, { tool: 'gcloud', stdout: 'ok\n' }] });
      const r = await runScript(DEPLOY, [], fakes.env);
      expect(r.code).toBe(1);
      const errors = r.stderr.trim().split('\n').filter((l) => !l.startsWith('error: (roles granted through a group'));
      expect(errors.some((l) => line.test(l)), r.stderr).toBe(true);
      expect(errors.every((l) => l.startsWith('error: ')), r.stderr).toBe(true);
      expect(creates(fakes.calls())).toEqual([]);
      // Not even the build ran: a release dir would be a leftover of a refused deploy.
      expect(r.stdout).not.toContain('== build');
    });
  }

  it('a fresh project without the Compute API: preflight defers the quota check to right after the bootstrap stack enables it', async () => {
    fakes = createFakes({ rules: [...preflightRules({ apis: ['serviceusage.googleapis.com', 'cloudresourcemanager.googleapis.com'], cpusFree: 2 }), ...outputs, { tool: 'terraform', stdout: 'ok\n' }] });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('APIs to be enabled by the bootstrap stack: compute.googleapis.com');
    expect(r.stderr).toMatch(/^error: regional quota CPUS in us-central1: 2 of 24 vCPUs free/m);
    const s = summary(fakes.calls(), 3);
    expect(s.indexOf('terraform bootstrap apply -input=false -auto-approve')).toBeGreaterThan(-1);
    expect(s.indexOf('terraform bootstrap apply -input=false -auto-approve')).toBeLessThan(s.findIndex((c) => c.startsWith('gcloud compute regions')));
    expect(applied(fakes.calls())).toEqual(['bootstrap']);
  });
});
