// The pure parts of the ops scripts: output flattening and checks, verdicts, parsers, scripts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import { ROOT, stackOutputs } from './support/fakes.js';

// The scripts are plain .mjs without declaration files: load them untyped.
const load = (rel: string) => import(pathToFileURL(path.join(ROOT, rel)).href);
const { shellQuote, resolveOutdir } = await load('scripts/ops/gcp.mjs');
const { evaluateWsHealth, formatTable } = await load('scripts/ops/health.mjs');
const { backendChecks, parseSections } = await load('scripts/ops/health-all.mjs');
const { parseResult, settleFetchedReports } = await load('scripts/ops/load-test-capacity.mjs');
const { flattenOutputs, parseTerraformOutputs, pickOutputs } = await load('scripts/ops/outputs.mjs');
const { installScript, releaseVersion } = await load('scripts/ops/release.mjs');
const { costEstimate } = await load('scripts/ops/deploy.mjs');
const { parseBrokers } = await load('scripts/local.mjs');

describe('stack outputs', () => {
  it('flattens every stack (nested constructs too) into one object and checks the names asked for', () => {
    const nested = { ...stackOutputs(), bootstrap: { frontend: { ws_url: 'ws://1.2.3.4:3004/ws', health_url: 'http://1.2.3.4:3004/health' }, ws_external_ip: '1.2.3.4' } };
    const { values, problems } = flattenOutputs(nested);
    expect(problems).toEqual([]);
    expect(pickOutputs(values, ['ws_url', 'zone', 'backend_internal_ip'])).toEqual({ ws_url: 'ws://1.2.3.4:3004/ws', zone: 'us-central1-a', backend_internal_ip: '10.10.0.3' });
  });

  it('reports names that two stacks disagree on', () => {
    const { problems } = flattenOutputs({ a: { zone: 'us-central1-a' }, b: { zone: 'europe-west1-b' } });
    expect(problems).toEqual(['zone differs between stacks a (us-central1-a) and b (europe-west1-b)']);
  });

  it('names every missing or malformed output in one error', () => {
    expect(() => pickOutputs({ ws_url: 'http://x/ws', zone: 'z' }, ['ws_url', 'zone', 'ws_internal_ip'])).toThrow(
      /ws_url="http:\/\/x\/ws" is not a ws:\/\/ URL; ws_internal_ip is missing/,
    );
  });
});

describe('health verdicts', () => {
  const body = (over: object = {}) => ({ status: 'ok', shards: [{ id: 0, up: true }, { id: 1, up: true }], ...over });
  it('is healthy only at 200, status ok, every shard up', () => {
    expect(evaluateWsHealth({ httpStatus: 200, body: body(), error: null }).ok).toBe(true);
    expect(evaluateWsHealth({ httpStatus: 503, body: body({ status: 'draining' }), error: null })).toEqual({ ok: false, problem: 'HTTP 503, status draining' });
    expect(evaluateWsHealth({ httpStatus: 200, body: body({ shards: [{ id: 0, up: true }, { id: 1, up: false }] }), error: null })).toEqual({ ok: false, problem: 'shard(s) 1 down' });
    expect(evaluateWsHealth({ httpStatus: 200, body: body({ shards: [] }), error: null }).ok).toBe(false);
    expect(evaluateWsHealth({ httpStatus: 200, body: '<html>', error: null }).ok).toBe(false);
  });

  it('reads the backend probe sections; a publisher without its broker is down', () => {
    const stdout = '@@units\nactive\nactive\nactive\nactive\nactive\n@@publisher\n{"rate":1,"sent":1,"errors":0,"broker":{"connected":false},"uptime_s":1}\n@@grafana\n200\n@@console\n000\n';
    expect(parseSections(stdout).grafana).toBe('200');
    const checks = backendChecks({ exitCode: 0, stdout, stderr: '' });
    expect(checks.filter((c: { ok: boolean }) => !c.ok).map((c: { name: string; detail: string }) => `${c.name}: ${c.detail}`)).toEqual(['publisher /status: not connected to the broker', 'redpanda console: HTTP 000']);
  });

  it('formats a table with aligned columns', () => {
    expect(formatTable(['a', 'bb'], [[1, 22], [333, 4]])).toBe('a    bb\n1    22\n333   4');
  });
});

describe('parsers', () => {
  it('takes the load generator result from the last JSON line, past trailing noise', () => {
    expect(parseResult('ramping\n{"status":"completed","target":5}\nwarning: x\n')).toEqual({ status: 'completed', target: 5 });
    expect(parseResult('{not json\nnothing\n')).toBeNull();
  });

  it('reads `terraform output -json` (name -> { value }) and names what is malformed', () => {
    expect(parseTerraformOutputs('ws', '{"ws_instance":{"sensitive":false,"type":"string","value":"odin-ws"}}\n')).toEqual({ ws_instance: 'odin-ws' });
    expect(parseTerraformOutputs('loadtest', '{}\n')).toEqual({});
    expect(() => parseTerraformOutputs('ws', 'Error: no state')).toThrow(/terraform output -json of stack ws is not JSON/);
    expect(() => parseTerraformOutputs('ws', '[]')).toThrow(/expected an object of outputs/);
    expect(() => parseTerraformOutputs('ws', '{"ws_instance":"odin-ws"}')).toThrow(/output ws_instance has no "value"/);
  });

  it('takes CDKTF_OUTDIR relative to the project, defaulting to cdktf.out; refuses / and the project itself', () => {
    expect(resolveOutdir({}, '/p')).toBe('/p/cdktf.out');
    expect(resolveOutdir({ CDKTF_OUTDIR: ' ' }, '/p')).toBe('/p/cdktf.out');
    expect(resolveOutdir({ CDKTF_OUTDIR: 'out' }, '/p')).toBe('/p/out');
    expect(resolveOutdir({ CDKTF_OUTDIR: '/tmp/x/cdktf.out' }, '/p')).toBe('/tmp/x/cdktf.out');
    for (const bad of ['/', '.', '/p', 'a\nb']) expect(() => resolveOutdir({ CDKTF_OUTDIR: bad }, '/p'), bad).toThrow(/CDKTF_OUTDIR=/);
  });

  it('reads KAFKA_BROKERS from the last line of kafka:up', () => {
    expect(parseBrokers('starting\nKAFKA_BROKERS=127.0.0.1:39092\n')).toBe('127.0.0.1:39092');
    expect(parseBrokers('KAFKA_BROKERS=127.0.0.1:1\nthen something else\n')).toBeNull();
  });

  it('quotes a shell word only when it needs it', () => {
    expect(shellQuote('ws://10.0.0.2:3004/ws')).toBe('ws://10.0.0.2:3004/ws');
    expect(shellQuote("it's *")).toBe(`'it'\\''s *'`);
  });
});

describe('cost estimate', () => {
  it('degrades to one clear line when scripts/cost.mjs is not there', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-nocost-'));
    expect(await costEstimate(empty)).toBe('cost estimate unavailable: scripts/cost.mjs could not be loaded');
    fs.rmSync(empty, { recursive: true, force: true });
  });
});

describe('releases', () => {
  it('versions by commit and UTC time', () => {
    expect(releaseVersion({ sha: 'abc1234', dirty: true, date: new Date('2025-03-04T05:06:07.891Z') })).toBe('abc1234-dirty-20250304T050607Z');
    expect(releaseVersion({ sha: '', dirty: false, date: new Date('2025-03-04T05:06:07Z') })).toBe('nogit-20250304T050607Z');
  });

  it('switches the symlink atomically before restarting, and refuses a version that is not a plain name', () => {
    const s = installScript({ version: 'abc-20250101T000000Z', service: 'odin-ws' });
    expect(s.indexOf('mv -Tf /opt/odin/current.next /opt/odin/current')).toBeLessThan(s.indexOf('systemctl restart odin-ws'));
    expect(installScript({ version: 'v1', service: null })).not.toContain('systemctl');
    expect(() => installScript({ version: 'x; rm -rf /', service: null })).toThrow(/bad release version/);
  });

  it('moves fetched report dirs into reports/ with the run log beside each', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-settle-'));
    const staging = path.join(dir, '.fetch-R');
    fs.mkdirSync(path.join(staging, 'T1'), { recursive: true });
    fs.writeFileSync(path.join(staging, 'T1', 'report.html'), 'h');
    fs.writeFileSync(path.join(staging, 'run.log'), 'log');
    expect(settleFetchedReports(staging, dir)).toEqual([path.join(dir, 'T1')]);
    expect(fs.readdirSync(dir)).toEqual(['T1']);
    expect(fs.readdirSync(path.join(dir, 'T1')).sort()).toEqual(['report.html', 'run.log']);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
