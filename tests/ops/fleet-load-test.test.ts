// gcp:load-test:capacity against a fleet (ws.count 3, loadtest.count 2 in stacks/config/fleet.json),
// fake gcloud/terraform: every load-test VM runs at once against the fleet's public address with
// its share of the target, each report is fetched, and the results merge into one report with
// per-VM rows, totals and limited_by named with the VM it came from.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { ROOT, createFakes, outputRules, runScript, stackOutputs, type Fakes } from './support/fakes.js';

const { mergeResults, splitTarget } = await import(pathToFileURL(path.join(ROOT, 'scripts/ops/load-test-capacity.mjs')).href);

const VMS = ['odin-fleet-loadtest', 'odin-fleet-loadtest-2'];
const result = (over: Record<string, unknown>) => ({
  status: 'completed', target: 150, capacity: null, reached: true, slo: { met: true }, limited_by: 'none', limited_by_detail: 'target reached',
  connections: { attempted: 150, opened: 150, peak_open: 150, refused: 0 }, deliveries: { per_s: 1000 }, seq: { missing: 0, duplicates: 0, reordered: 0 }, latency_ms: { p99: 20 },
  ...over,
});
const commandOf = (argv: string[]) => argv[argv.indexOf('--command') + 1];

describe('gcp:load-test:capacity against a fleet', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  it('runs every load-test VM at once against the balancer, fetches each report and merges them', async () => {
    const second = result({ target: 150, reached: false, slo: { met: false }, limited_by: 'guard_refusals', limited_by_detail: '12 upgrades refused', connections: { attempted: 150, opened: 138, peak_open: 138, refused: 12 }, deliveries: { per_s: 900 }, latency_ms: { p99: 35 } });
    const outputs = stackOutputs();
    fakes = createFakes({
      rules: [
        ...outputRules({ bootstrap: { ...outputs.bootstrap, ws_external_ip: '203.0.113.7' }, network: outputs.network, loadtest: { loadtest_internal_ip: '10.10.0.30', loadtest_instance: VMS[0] } }),
        { tool: 'gcloud', match: `^compute ssh ${VMS[0]} `, stdout: `${JSON.stringify(result({}))}\n` },
        { tool: 'gcloud', match: `^compute ssh ${VMS[1]} `, stdout: `${JSON.stringify(second)}\n` },
        { tool: 'gcloud', match: '^compute scp ', files: { '20261201T120000Z/result.json': '{}', '20261201T120000Z/report.html': '<html/>', 'run.log': 'x\n' } },
      ],
    });
    const out = path.join(fakes.dir, 'reports');
    const r = await runScript('scripts/ops/load-test-capacity.mjs', ['--target', '300', '--hold', '5', '--out', out], { ...fakes.env, ODIN_ENV: 'fleet' });
    // One VM was limited: the merged run is, too.
    expect(r.code).toBe(1);
    const ssh = fakes.calls().filter((c) => c.argv[1] === 'ssh');
    expect(ssh.map((c) => c.argv[2]).sort()).toEqual(VMS);
    for (const c of ssh) {
      expect(commandOf(c.argv)).toContain('loadtest.mjs --url ws://203.0.113.7:3004/ws --target 150 --hold 5 --out ');
      expect(commandOf(c.argv)).not.toContain('--source-ips');
    }
    // Started together: both runs began before any report was fetched.
    const calls = fakes.calls().map((c) => c.argv[1]);
    expect(calls.lastIndexOf('ssh')).toBeLessThan(calls.indexOf('scp'));
    const run = fs.readdirSync(out).find((d) => d.endsWith('-fleet')) ?? '';
    expect(run, r.stdout + r.stderr).not.toBe('');
    const merged = JSON.parse(fs.readFileSync(path.join(out, run, 'result.json'), 'utf8'));
    expect(merged).toMatchObject({
      generators: 2, target: 300, reached: false, slo_met: false, limited_by: 'guard_refusals', limited_by_detail: `${VMS[1]}: 12 upgrades refused`,
      connections: { attempted: 300, opened: 288, peak_open: 288, refused: 12 }, deliveries_per_s: 1900, latency_ms_p99_worst: 35,
    });
    expect(merged.per_generator.map((g: { vm: string }) => g.vm)).toEqual(VMS);
    for (const vm of VMS) expect(fs.existsSync(path.join(out, run.replace(/-fleet$/, ''), vm, '20261201T120000Z', 'report.html'))).toBe(true);
    expect(r.stdout).toContain('limited by guard_refusals: odin-fleet-loadtest-2: 12 upgrades refused');
  });
});

describe('mergeResults and splitTarget', () => {
  it('every VM within the SLO: none; a VM without a result: generator_failed, named', () => {
    const ok = mergeResults([{ vm: 'a', result: result({}) }, { vm: 'b', result: result({}) }]);
    expect(ok).toMatchObject({ limited_by: 'none', reached: true, slo_met: true, target: 300 });
    const failed = mergeResults([{ vm: 'a', result: result({}) }, { vm: 'b', result: null }]);
    expect(failed).toMatchObject({ limited_by: 'generator_failed', limited_by_detail: 'no result from b', reached: false });
    expect(failed.per_generator[1]).toEqual({ vm: 'b', error: 'no result' });
  });

  it('splits the target over the VMs, the remainder on the first', () => {
    expect(splitTarget(12_000, 3)).toEqual([4000, 4000, 4000]);
    expect(splitTarget(10, 3)).toEqual([4, 3, 3]);
  });
});
