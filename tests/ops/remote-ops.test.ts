// gcp:logs, gcp:load-test:capacity and gcp:load-test:logs against fake gcloud/terraform (real synth).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ROOT, createFakes, inStack, outputRules, runScript, stackOutputs, summary, type Fakes, type Rule } from './support/fakes.js';

// Releases a brought-up load-test VM was shipped (dist/ is build output; keep anyone else's).
const RELEASES = path.join(ROOT, 'dist', 'releases');
const listReleases = () => (fs.existsSync(RELEASES) ? fs.readdirSync(RELEASES) : []);
const releasesBefore = listReleases();
afterAll(() => {
  for (const v of listReleases().filter((r) => !releasesBefore.includes(r))) fs.rmSync(path.join(RELEASES, v), { recursive: true, force: true });
});

const OUTPUTS: Rule[] = outputRules(stackOutputs());
const commandOf = (argv: string[]) => argv[argv.indexOf('--command') + 1];

describe('gcp:logs', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it('reads each named service journal from its VM', async () => {
    fakes = createFakes({ rules: [...OUTPUTS, { tool: 'gcloud', match: '^compute ssh', stdout: 'Nov 28 07:00:00 odin-ws node[1]: {"msg":"listening"}\n' }] });
    const r = await runScript('scripts/ops/logs.mjs', ['ws', 'publisher', '--lines', '50', '--since', '10 min ago'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('{"msg":"listening"}');
    const ssh = fakes.calls().filter((c) => c.tool === 'gcloud');
    expect(ssh.map((c) => c.argv[2])).toEqual(['odin-ws', 'odin-backend']);
    expect(commandOf(ssh[0].argv)).toBe("sudo journalctl --no-pager --output=short-iso -n 50 -u odin-ws --since '10 min ago'");
    expect(commandOf(ssh[1].argv)).toContain('-u odin-publisher');
  });

  it('rejects an unknown target, --follow of several targets and a --since that is not a time (exit 2, nothing run)', async () => {
    fakes = createFakes({ rules: OUTPUTS });
    for (const args of [['grafana'], ['--follow'], ['ws', '--since', "x'; rm -rf /"]]) {
      const r = await runScript('scripts/ops/logs.mjs', args, fakes.env);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect(fakes.calls()).toEqual([]);
  });
});

describe('gcp:load-test:capacity', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  const result = { status: 'completed', target: 300, reached: true, files: { report_html: '/var/tmp/odin-loadtest/x/20261128T080000Z/report.html' } };
  const fetched = {
    '20261128T080000Z/report.html': '<html>report</html>',
    '20261128T080000Z/result.json': JSON.stringify(result),
    'run.log': 'ramping 300\n',
    pid: '123\n',
  };

  it('runs the load generator on the load-test VM against the WS internal IP and fetches the report into --out', async () => {
    fakes = createFakes({
      rules: [
        ...OUTPUTS,
        { tool: 'gcloud', match: '^compute ssh odin-loadtest ', stdout: `ramping 300\nloadtest completed: target 300 reached\n${JSON.stringify(result)}\n` },
        { tool: 'gcloud', match: '^compute scp .*odin-loadtest:/var/tmp/odin-loadtest/\\d{8}T\\d{6}Z ', files: fetched },
      ],
    });
    const out = path.join(fakes.dir, 'reports');
    const r = await runScript('scripts/ops/load-test-capacity.mjs', ['--target', '300', '--hold', '5', '--out', out], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('loadtest completed: target 300 reached');
    const [ssh, scp] = fakes.calls().filter((c) => c.tool === 'gcloud');
    const cmd = commandOf(ssh.argv);
    expect(cmd).toContain('node /opt/odin/current/loadtest.mjs --url ws://10.10.0.2:3004/ws --target 300 --hold 5 --source-ips 10.10.0.64-10.10.0.79 --out ');
    expect(cmd).toContain(' --json ');
    // The same run directory is fetched that the load generator wrote to.
    const runDir = /--out (\/var\/tmp\/odin-loadtest\/\d{8}T\d{6}Z) /.exec(cmd)![1];
    expect(scp.argv.at(-2)).toBe(`odin-loadtest:${runDir}`);
    const report = path.join(out, '20261128T080000Z');
    expect(fs.readFileSync(path.join(report, 'report.html'), 'utf8')).toBe('<html>report</html>');
    expect(JSON.parse(fs.readFileSync(path.join(report, 'result.json'), 'utf8'))).toEqual(result);
    expect(fs.readFileSync(path.join(report, 'run.log'), 'utf8')).toBe('ramping 300\n');
    expect(fs.readdirSync(out)).toEqual(['20261128T080000Z']);
    expect(r.stdout).toContain(`report: ${path.join(report, 'report.html')}`);
    // It was deployed: not brought up, not torn down.
    expect(fakes.calls().some((c) => c.tool === 'terraform' && !['init', 'output'].includes(c.argv[1]))).toBe(false);
  });

  it('brings the load-test VM up when it is not deployed, and --teardown destroys it after the report is fetched', async () => {
    fakes = createFakes({
      rules: [
        // Never applied: terraform prints no outputs for it, until the apply below.
        ...outputRules({ loadtest: {} }, { times: 1 }),
        ...OUTPUTS,
        { tool: 'terraform', match: inStack('loadtest', '(apply|destroy)'), stdout: 'ok\n' },
        { tool: 'gcloud', match: '^compute ssh odin-loadtest [\\s\\S]*loadtest\\.mjs --url', stdout: `${JSON.stringify(result)}\n` },
        { tool: 'gcloud', match: '^compute scp .*odin-loadtest:/var/tmp/odin-loadtest/', files: fetched },
        { tool: 'gcloud', match: '^compute (ssh|scp)', stdout: 'ok\n' },
      ],
    });
    const out = path.join(fakes.dir, 'reports');
    const r = await runScript('scripts/ops/load-test-capacity.mjs', ['--target', '300', '--hold', '5', '--out', out, '--teardown'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    const s = summary(fakes.calls(), 3);
    const at = (re: RegExp) => s.findIndex((c) => re.test(c));
    expect(at(/^terraform loadtest apply -input=false -auto-approve/)).toBeGreaterThan(at(/^terraform loadtest output -json/));
    // Up, then converge and the release shipped to it, then the run, the fetch, the teardown.
    expect(at(/^terraform loadtest apply/)).toBeLessThan(at(/^gcloud compute scp --recurse/));
    const run = fakes.calls().findIndex((c) => c.tool === 'gcloud' && c.argv.join(' ').includes('loadtest.mjs --url'));
    expect(run).toBeGreaterThan(at(/^gcloud compute scp --recurse/));
    expect(s.at(-1)).toBe('terraform loadtest destroy -input=false -auto-approve');
    expect(fs.readdirSync(out)).toEqual(['20261128T080000Z']);
  });

  it('exits with the load generator\'s failure, still fetching what it left', async () => {
    fakes = createFakes({
      rules: [
        ...OUTPUTS,
        { tool: 'gcloud', match: '^compute ssh odin-loadtest ', exit: 1, stdout: 'loadtest: connect ECONNREFUSED 10.10.0.2:3004\n' },
        { tool: 'gcloud', match: '^compute scp ', files: { 'run.log': 'loadtest: connect ECONNREFUSED\n' } },
      ],
    });
    const out = path.join(fakes.dir, 'reports');
    const r = await runScript('scripts/ops/load-test-capacity.mjs', ['--out', out], fakes.env);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('no result JSON');
    const kept = fs.readdirSync(out);
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatch(/^\d{8}T\d{6}Z-incomplete$/);
    expect(fs.readFileSync(path.join(out, kept[0], 'run.log'), 'utf8')).toContain('ECONNREFUSED');
  });

  it('validates --target before running anything', async () => {
    fakes = createFakes({ rules: OUTPUTS });
    const r = await runScript('scripts/ops/load-test-capacity.mjs', ['--target', '12k'], fakes.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--target="12k": must be a whole number');
    expect(fakes.calls()).toEqual([]);
  });
});

describe('gcp:load-test:logs', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it('tails the chosen run log on the load-test VM', async () => {
    fakes = createFakes({ rules: [...OUTPUTS, { tool: 'gcloud', match: '^compute ssh odin-loadtest ', stdout: '== /var/tmp/odin-loadtest/20261128T080000Z/run.log\nramping\n' }] });
    const r = await runScript('scripts/ops/load-test-logs.mjs', ['--run', '20261128T080000Z', '--lines', '20'], fakes.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('ramping');
    const cmd = commandOf(fakes.calls().find((c) => c.tool === 'gcloud')!.argv);
    expect(cmd).toContain('d=/var/tmp/odin-loadtest/20261128T080000Z');
    expect(cmd).toContain('tail -n 20 "$d/run.log"');
  });

  it('rejects a run id that is not one (exit 2)', async () => {
    fakes = createFakes({ rules: OUTPUTS });
    const r = await runScript('scripts/ops/load-test-logs.mjs', ['--run', '../../etc'], fakes.env);
    expect(r.code).toBe(2);
    expect(fakes.calls()).toEqual([]);
  });
});
