// The fleet's rolling update (scripts/ops/rollout.mjs) against fake gcloud: the release packed and
// uploaded with its sha256, named on the group, then node by node in order (another node healthy
// in the balancer, drain, out of the balancer and stopped, recreate, the new version on the node's
// detailed /health, healthy in the balancer); a node that fails stops the rollout and is named.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../support/server.js';
import { ROOT, createFakes, inStack, outputRules, preflightRules, runScript, stackOf, stackOutputs, type Call, type Fakes, type Rule } from './support/fakes.js';

const ROLLOUT = 'scripts/ops/rollout.mjs';
const VERSION = 'test0000-20261201T000000Z-rollout';
const RELEASES = path.join(ROOT, 'dist', 'releases');
const NODES = ['odin-fleet-ws-a1b2', 'odin-fleet-ws-c3d4', 'odin-fleet-ws-e5f6'];
const ZONES = ['us-central1-a', 'us-central1-b', 'us-central1-c'];
const url = (i: number) => `https://www.googleapis.com/compute/v1/projects/odin-test/zones/${ZONES[i]}/instances/${NODES[i]}`;

const health = (states: string[]) => JSON.stringify([{ backend: 'group', status: { healthStatus: states.map((healthState, i) => ({ instance: url(i), healthState })) } }]);
const H = 'HEALTHY';
const U = 'UNHEALTHY';
/** get-health answers in call order: before the rollout, then per node: the guard, drained, healthy again. */
function healthSequence(): Rule[] {
  const seq = [[H, H, H]];
  for (let i = 0; i < NODES.length; i++) seq.push([H, H, H], NODES.map((_, j) => (j === i ? U : H)), [H, H, H]);
  return seq.map((s) => ({ tool: 'gcloud' as const, match: '^compute backend-services get-health odin-fleet-ws-backend ', stdout: health(s), times: 1 }));
}
const body = (version: string) => `${JSON.stringify({ status: 'ok', version, shards: [{ id: 0, pid: 10, up: true }] })}\n@@http 200\n`;

function rules({ front = [] as Rule[], health = healthSequence() } = {}): Rule[] {
  return [
    ...front,
    { tool: 'gcloud', match: '^storage cp ', stdout: '' },
    { tool: 'gcloud', match: '^compute instance-groups managed all-instances-config update ', stdout: '' },
    { tool: 'gcloud', match: '^compute instance-groups managed list-instances odin-fleet-ws-group ', stdout: JSON.stringify([2, 0, 1].map((i) => ({ instance: url(i), instanceStatus: 'RUNNING' }))) },
    ...health,
    { tool: 'gcloud', match: '^compute instance-groups managed recreate-instances ', stdout: '' },
    { tool: 'gcloud', match: '^compute ssh \\S+ .*systemctl stop --no-block', stdout: 'draining\n' },
    { tool: 'gcloud', match: '^compute ssh \\S+ .*systemctl is-active', stdout: 'inactive\n' },
    { tool: 'gcloud', match: '^compute ssh \\S+ .*127\\.0\\.0\\.1:3004/health', fromCall: 'odin-release=([\\w.-]+),', stdout: body('{{1}}') },
  ];
}

/** `verb node` for every node-level step, in order. */
function steps(calls: Call[]): string[] {
  return calls.flatMap((c) => {
    const a = c.argv.join(' ');
    if (c.argv[1] === 'ssh') {
      const cmd = c.argv[c.argv.indexOf('--command') + 1];
      const verb = cmd.includes('stop --no-block') ? 'drain' : cmd.includes('is-active') ? 'stopped?' : cmd.includes('/health') ? 'health' : 'ssh';
      return [`${verb} ${c.argv[2]}`];
    }
    const m = /recreate-instances \S+ --instances=(\S+)/.exec(a);
    return m ? [`recreate ${m[1]}`] : [];
  });
}

describe('gcp:deploy rollout of a fleet', () => {
  let fakes: Fakes;
  beforeAll(() => {
    fs.mkdirSync(path.join(RELEASES, VERSION), { recursive: true });
    fs.writeFileSync(path.join(RELEASES, VERSION, 'release.json'), `{"version":"${VERSION}"}\n`);
    fs.writeFileSync(path.join(RELEASES, VERSION, 'server.mjs'), '// test\n');
  });
  afterAll(() => {
    fs.rmSync(path.join(RELEASES, VERSION), { recursive: true, force: true });
    fs.rmSync(path.join(RELEASES, `${VERSION}.tar.gz`), { force: true });
  });
  afterEach(() => fakes?.cleanup());
  const run = (extra: string[] = []) => runScript(ROLLOUT, ['--version', VERSION, '--poll-ms', '10', ...extra], { ...fakes.env, ODIN_ENV: 'fleet' });

  it('uploads the release with its sha256, names it on the group, then updates one node at a time in order', async () => {
    fakes = createFakes({ rules: rules() });
    const r = await run();
    expect(r.code, r.stderr).toBe(0);
    const calls = fakes.calls();
    const joined = calls.map((c) => c.argv.join(' '));
    const upload = joined.findIndex((a) => a.startsWith('storage cp '));
    const named = joined.findIndex((a) => a.includes('all-instances-config update'));
    expect(joined[upload]).toContain(`gs://odin-test-odin-fleet-releases/releases/${VERSION}.tar.gz`);
    const sha = createHash('sha256').update(fs.readFileSync(path.join(RELEASES, `${VERSION}.tar.gz`))).digest('hex');
    expect(joined[named]).toContain(`--metadata=odin-release=${VERSION},odin-release-sha256=${sha}`);
    expect(joined[named]).toContain('odin-fleet-ws-group --region us-central1 --project odin-test');
    // Before any node is touched.
    expect(upload).toBeLessThan(named);
    expect(named).toBeLessThan(joined.findIndex((a) => a.startsWith('compute ssh')));
    // Node by node, in name order; each finished (new version on /health) before the next drains.
    expect(steps(calls)).toEqual(NODES.flatMap((n) => [`drain ${n}`, `stopped? ${n}`, `recreate ${n}`, `health ${n}`]));
    for (const c of calls.filter((x) => x.argv[1] === 'ssh')) expect(c.argv).toEqual(expect.arrayContaining(['--zone', ZONES[NODES.indexOf(c.argv[2])], '--tunnel-through-iap']));
    expect(r.stdout).toContain(`rolled out ${VERSION} to 3 node(s)`);
  });

  it('checks the version per node: a node that comes back on another release stops the rollout, named, with the rest untouched', async () => {
    fakes = createFakes({ rules: rules({ front: [{ tool: 'gcloud', match: `^compute ssh ${NODES[1]} .*127\\.0\\.0\\.1:3004/health`, stdout: body('old-release') }] }) });
    const r = await run(['--node-timeout', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rollout stopped at node ${NODES[1]} (2/3, us-central1-b)`);
    expect(r.stderr).toContain(`serves version "old-release", not the release ${VERSION}`);
    expect(r.stderr).toContain(`not updated: ${NODES[2]}`);
    expect(steps(fakes.calls()).filter((s) => s.endsWith(NODES[2]))).toEqual([]);
  });

  it('stops on a node whose recreate fails, naming it; the next node is never drained', async () => {
    fakes = createFakes({ rules: rules({ front: [{ tool: 'gcloud', match: `recreate-instances \\S+ --instances=${NODES[0]}`, exit: 1, stderr: 'ERROR: quota exceeded\n' }] }) });
    const r = await run();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rollout stopped at node ${NODES[0]} (1/3, us-central1-a)`);
    expect(r.stderr).toContain('quota exceeded');
    expect(steps(fakes.calls())).toEqual([`drain ${NODES[0]}`, `stopped? ${NODES[0]}`, `recreate ${NODES[0]}`]);
  });

  it('never drains a node while no other node is healthy in the balancer', async () => {
    // Before: the first node healthy; its guard sees only itself healthy.
    const lonely = [[H, U, U], [H, U, U]].map((s) => ({ tool: 'gcloud' as const, match: '^compute backend-services get-health ', stdout: health(s) }));
    fakes = createFakes({ rules: rules({ health: lonely }) });
    const r = await run(['--node-timeout', '1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rollout stopped at node ${NODES[0]} (1/3, us-central1-a): another healthy node before draining: not within 1 s (no other node is healthy in the balancer)`);
    expect(steps(fakes.calls())).toEqual([]);
  });
});

describe('gcp:deploy with ws.count 3', () => {
  let server: RunningServer;
  let fakes: Fakes;
  let before: string[];
  const list = () => (fs.existsSync(RELEASES) ? fs.readdirSync(RELEASES) : []);
  beforeAll(async () => {
    before = list();
    server = await startServer();
  });
  afterAll(async () => {
    await server?.stop();
    for (const v of list().filter((r) => !before.includes(r))) fs.rmSync(path.join(RELEASES, v), { recursive: true, force: true });
  });
  afterEach(() => fakes?.cleanup());

  it('applies the stacks, converges and ships the backend only, then rolls the release over the nodes, then the public /health through the balancer', async () => {
    const { ws: _single, ...outputs } = stackOutputs({ healthUrl: server.healthUrl });
    fakes = createFakes({
      rules: [
        ...preflightRules({ cpusFree: 40 }),
        { tool: 'terraform', match: inStack('[\\w-]+', 'apply'), stdout: 'Apply complete!\n' },
        ...outputRules(outputs),
        { tool: 'gcloud', match: '^compute ssh odin-backend [\\s\\S]*converge', stdout: 'converge: config up to date\n' },
        { tool: 'gcloud', match: '^compute (ssh|scp) .*odin-backend', stdout: 'active\n' },
        ...rules(),
      ],
    });
    const r = await runScript('scripts/ops/deploy.mjs', ['--poll-ms', '10'], { ...fakes.env, ODIN_ENV: 'fleet' });
    expect(r.code, r.stderr).toBe(0);
    const calls = fakes.calls();
    expect(calls.filter((c) => c.tool === 'terraform' && c.argv[1] === 'apply').map(stackOf)).toEqual(['bootstrap', 'network', 'backend', 'ws']);
    // No scp to any WS node: the nodes fetch the release from the bucket.
    expect(calls.filter((c) => c.argv[1] === 'scp').every((c) => c.argv.join(' ').includes('odin-backend'))).toBe(true);
    const version = /deployed ([\w.-]+)/.exec(r.stdout)![1];
    expect(calls.map((c) => c.argv.join(' '))).toContain(`storage cp ${path.join(RELEASES, `${version}.tar.gz`)} gs://odin-test-odin-fleet-releases/releases/${version}.tar.gz --project odin-test`);
    expect(steps(calls).filter((x) => !x.endsWith(' odin-backend'))).toEqual(NODES.flatMap((n) => [`drain ${n}`, `stopped? ${n}`, `recreate ${n}`, `health ${n}`]));
    expect(r.stdout).toContain(`public ${server.healthUrl}: ok`);
  });
});
