// gcp:deploy against fake gcloud/cdktf and a real local server standing in for the WS VM's /health.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';
import { ROOT, createFakes, runScript, stackOutputs, summary, type Fakes, type Rule } from './support/fakes.js';

const DEPLOY = 'scripts/ops/deploy.mjs';

function happyRules(healthUrl: string): Rule[] {
  return [
    { tool: 'gcloud', match: '^auth list', stdout: 'operator@example.com\n' },
    { tool: 'gcloud', match: '^config get-value project', stdout: 'odin-test\n' },
    { tool: 'cdktf', match: '^deploy', stdout: 'Apply complete!\n' },
    { tool: 'cdktf', match: '^output', outputs: stackOutputs({ healthUrl }) },
    { tool: 'gcloud', match: '^compute (ssh|scp)', stdout: 'active\n' },
  ];
}

const RELEASES = path.join(ROOT, 'dist', 'releases');
const listReleases = () => (fs.existsSync(RELEASES) ? fs.readdirSync(RELEASES) : []);

function releaseDirOf(calls: ReturnType<Fakes['calls']>) {
  const scp = calls.find((c) => c.argv[0] === 'compute' && c.argv[1] === 'scp');
  return scp ? scp.argv.find((a) => a.startsWith('dist/releases/')) : undefined;
}

describe('gcp:deploy', () => {
  let server: RunningServer;
  let fakes: Fakes;
  let releasesBefore: string[];

  beforeAll(async () => {
    releasesBefore = listReleases();
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
    // The releases these deploys assembled (dist/ is build output; keep anyone else's).
    for (const v of listReleases().filter((r) => !releasesBefore.includes(r))) fs.rmSync(path.join(RELEASES, v), { recursive: true, force: true });
  });
  afterEach(() => fakes?.cleanup());

  it('runs preflight, deploy, outputs, upload and restart per VM in order, then waits for a healthy /health', async () => {
    fakes = createFakes({ rules: happyRules(server.healthUrl) });
    const r = await runScript(DEPLOY, ['--health-timeout', '30'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/== cost estimate\nEstimated cost, /);
    const calls = fakes.calls();
    expect(summary(calls, 4).map((c) => c.replace(/ \/\S+\/outputs\.json$/, ' <file>'))).toEqual([
      'gcloud auth list --filter=status:ACTIVE --format=value(account)',
      'gcloud config get-value project',
      'cdktf deploy * --auto-approve',
      'cdktf output * --outputs-file <file>',
      'gcloud compute scp --recurse --zone',
      'gcloud compute ssh odin-backend --zone',
      'gcloud compute scp --recurse --zone',
      'gcloud compute ssh odin-loadtest --zone',
      'gcloud compute scp --recurse --zone',
      'gcloud compute ssh odin-ws --zone',
    ]);
    // Every VM call goes through IAP in the zone and project from the outputs.
    for (const c of calls.filter((x) => x.argv[0] === 'compute')) {
      expect(c.argv).toEqual(expect.arrayContaining(['--tunnel-through-iap', '--zone', 'us-central1-a', '--project', 'odin-test']));
    }
    // The project found by preflight reaches the stacks (GCP_PROJECT) and the provider.
    expect(calls[2].env).toMatchObject({ GCP_PROJECT: 'odin-test', GOOGLE_CLOUD_PROJECT: 'odin-test', CHECKPOINT_DISABLE: '1' });

    // The uploaded release is versioned and holds the three bundles.
    const rel = releaseDirOf(calls)!;
    expect(rel).toMatch(/^dist\/releases\/[\w-]+-\d{8}T\d{6}Z$/);
    const version = path.basename(rel);
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, rel, 'release.json'), 'utf8'));
    expect(manifest.version).toBe(version);
    expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining(['server.mjs', 'publisher.mjs', 'loadtest.mjs']));
    const scpWs = calls[8].argv;
    expect(scpWs.slice(-2)).toEqual([rel, 'odin-ws:/tmp/']);

    // The WS VM switches the symlink to this version, then restarts (drains) odin-ws.
    const wsScript = calls[9].argv[calls[9].argv.indexOf('--command') + 1];
    const switchAt = wsScript.indexOf(`/opt/odin/releases/${version} /opt/odin/current.next`);
    const restartAt = wsScript.indexOf('systemctl restart odin-ws');
    expect(switchAt).toBeGreaterThan(-1);
    expect(restartAt).toBeGreaterThan(switchAt);
    const backendScript = calls[5].argv[calls[5].argv.indexOf('--command') + 1];
    expect(backendScript).toContain('systemctl restart odin-publisher');
    expect(calls[7].argv.join(' ')).not.toContain('systemctl restart');

    // It ends on the real server's /health, shown per shard.
    const health = await (await fetch(server.healthUrl)).json();
    expect(r.stdout).toMatch(/^shard\s+pid\s+up\s+connections\s+channels\s+restarts$/m);
    for (const s of health.shards) expect(r.stdout).toMatch(new RegExp(`^${s.id}\\s+${s.pid}\\s+yes\\s`, 'm'));
    expect(r.stdout).toContain(`deployed ${version}`);
  });

  it('stops at a failing cdktf deploy and shows its stderr; nothing is uploaded', async () => {
    fakes = createFakes({
      rules: [{ tool: 'cdktf', match: '^deploy', exit: 1, stderr: 'Error: googleapi: Error 403: Compute Engine API has not been used in project odin-test\n' }, ...happyRules(server.healthUrl)],
    });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('failed (exit 1): cdktf deploy');
    expect(r.stderr).toContain('Error 403: Compute Engine API has not been used');
    expect(summary(fakes.calls(), 2)).toEqual(['gcloud auth list', 'gcloud config get-value', 'cdktf deploy *']);
  });

  it('stops at the first VM whose install fails: later VMs are not touched', async () => {
    fakes = createFakes({
      rules: [
        { tool: 'gcloud', match: '^compute ssh odin-backend', exit: 1, stderr: 'Failed to restart odin-publisher.service: Unit odin-publisher.service not found.\n' },
        ...happyRules(server.healthUrl),
      ],
    });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Unit odin-publisher.service not found.');
    const calls = summary(fakes.calls(), 3);
    expect(calls.at(-1)).toBe('gcloud compute ssh odin-backend');
    expect(calls.filter((c) => c.includes('odin-ws') || c.includes('odin-loadtest'))).toEqual([]);
  });

  it('fails with the last health response when /health never turns healthy', async () => {
    const gone = await startServer();
    await gone.stop();
    fakes = createFakes({ rules: happyRules(gone.healthUrl) });
    const r = await runScript(DEPLOY, ['--health-timeout', '2'], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${gone.healthUrl} did not become healthy within 2 s`);
    expect(r.stderr).toContain('ECONNREFUSED');
  });

  it('fails preflight with the fix when gcloud has no active account', async () => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', match: '^auth list', stdout: '' }, ...happyRules(server.healthUrl)] });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('error: gcloud is not authenticated: run `gcloud auth login` and `gcloud auth application-default login`');
    expect(summary(fakes.calls(), 2)).toEqual(['gcloud auth list']);
  });

  it('fails preflight with the fix when no project is set', async () => {
    fakes = createFakes({ rules: [{ tool: 'gcloud', match: '^config get-value project', stdout: '(unset)\n' }, ...happyRules(server.healthUrl)] });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no GCP project set: run `gcloud config set project PROJECT_ID`');
    expect(fakes.calls().some((c) => c.tool === 'cdktf')).toBe(false);
  });

  it('with no gcloud on PATH exits non-zero with one line naming what to install, running nothing', async () => {
    fakes = createFakes({ tools: ['terraform', 'cdktf'], isolated: true, rules: happyRules(server.healthUrl) });
    const r = await runScript(DEPLOY, [], fakes.env);
    expect(r.code).not.toBe(0);
    const lines = `${r.stdout}${r.stderr}`.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/gcloud not found on PATH: install the Google Cloud CLI/);
    expect(fakes.calls()).toEqual([]);
  });

  it('rejects an unknown flag with usage (exit 2) before running anything', async () => {
    fakes = createFakes({ rules: happyRules(server.healthUrl) });
    const r = await runScript(DEPLOY, ['--health-timeout', 'soon'], fakes.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--health-timeout="soon": must be a whole number');
    expect(fakes.calls()).toEqual([]);
  });
});
