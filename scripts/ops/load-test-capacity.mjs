#!/usr/bin/env node
// gcp:load-test:capacity: run the load generator on the load-test VM against the WS VM's internal
// address, stream its output, then fetch its JSON and HTML report into reports/.
// The run is detached on the VM (nohup): a dropped SSH session does not end it, and
// gcp:load-test:logs can still read it. The load-test VM is optional (loadtest.enabled): when it
// is not deployed, this brings it up (terraform apply of the loadtest stack, converge, ship the release) first,
// and --teardown destroys it again after the report is fetched. Its NIC's alias range (config
// loadtest.sourceCidr) is passed to the generator as --source-ips.
// Against a fleet (ws.count >= 2) every load-test VM (loadtest.count) runs at once against the
// fleet's public address (the balancer), each with its share of --target, and their results are
// merged into one report: per load-test VM and in total, limited_by named with the VM it came from.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError, intFlag, isMain, parseOptions, runMain } from './cli.mjs';
import { OpsError, createGcp, shellQuote } from './gcp.mjs';
import { readOutputs } from './outputs.mjs';
import { REMOTE_BASE, assembleRelease, convergeScript, gitState, installScript, releaseVersion } from './release.mjs';
import { cidrToRange, resolveDeployment } from './settings.mjs';

export const USAGE = `usage: load-test-capacity [--target N] [--hold SECONDS] [--ramp N] [--channels SPEC] [--teardown] [--dry-run]
  --target N       connections to ramp to (default 12000)
  --hold S         seconds to hold at the target (default 60)
  --ramp N         new connections per second (default: the load generator's)
  --channels SPEC  subscription mix per client (default: the load generator's, trades:*)
  --out DIR        where reports go (default reports)
  --teardown       destroy the load-test VM after the report is fetched (it costs ~0.27 USD/h)`;

export const WS_PORT = 3004; // DESIGN: WebSocket at ws://HOST:3004/ws
export const REMOTE_RUNS = '/var/tmp/odin-loadtest';

export function runId(date = new Date()) {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** The load generator's argv (validated flags only; the values are numbers or a checked spec). */
export function loadtestArgs({ wsInternalIp, target, hold, ramp, channels, outDir, sourceIps }) {
  // wsInternalIp: the WS VM's internal address, or the fleet's public one.
  const args = ['--url', `ws://${wsInternalIp}:${WS_PORT}/ws`, '--target', String(target), '--hold', String(hold)];
  if (ramp !== undefined) args.push('--ramp', String(ramp));
  if (channels !== undefined) args.push('--channels', channels);
  if (sourceIps) args.push('--source-ips', sourceIps);
  args.push('--out', outDir, '--json');
  return args;
}

/**
 * Remote shell: start detached, follow its log until it exits, exit with its code.
 * Every argument is shell-quoted.
 */
export function remoteRunScript({ run, args }) {
  const dir = `${REMOTE_RUNS}/${run}`;
  return [
    'set -u',
    `d=${dir}`,
    'mkdir -p "$d"',
    `nohup node ${REMOTE_BASE}/current/loadtest.mjs ${args.map(shellQuote).join(' ')} >"$d/run.log" 2>&1 </dev/null &`,
    'pid=$!',
    'echo "$pid" >"$d/pid"',
    'tail -n +1 -f --pid="$pid" "$d/run.log"',
    'wait "$pid"',
  ].join('\n');
}

/** The load generator prints its result JSON as the last stdout line: find the last JSON object line. */
export function parseResult(output) {
  const lines = String(output).trim().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (!line.startsWith('{')) continue;
    try {
      return JSON.parse(line);
    } catch {
      /* a progress line that happens to start with { */
    }
  }
  return null;
}

/**
 * reports/.fetch-<run>/ holds the VM's run dir: <report-ts>/report.html + result.json, run.log.
 * Moves each report dir to reports/<report-ts>/ with the run log beside it; returns their paths.
 */
export function settleFetchedReports(staging, reportsDir) {
  const moved = [];
  const entries = fs.existsSync(staging) ? fs.readdirSync(staging, { withFileTypes: true }) : [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const dest = path.join(reportsDir, e.name);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(path.join(staging, e.name), dest);
    const log = path.join(staging, 'run.log');
    if (fs.existsSync(log)) fs.copyFileSync(log, path.join(dest, 'run.log'));
    moved.push(dest);
  }
  if (moved.length === 0 && entries.length) {
    // No report was written (the run failed early): keep what there is, under the run id.
    const dest = path.join(path.dirname(staging), `${path.basename(staging).replace(/^\.fetch-/, '')}-incomplete`);
    fs.renameSync(staging, dest);
    return [dest];
  }
  fs.rmSync(staging, { recursive: true, force: true });
  return moved;
}

const NEEDED = ['ws_internal_ip', 'loadtest_instance', 'zone', 'project'];
/** A fleet has no single WS address inside: the load goes to its public address. */
const FLEET_NEEDED = ['ws_external_ip', 'loadtest_instance', 'zone', 'project'];

/** `total` connections split over `n` generators, the remainder on the first ones. */
export function splitTarget(total, n) {
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

const sum = (xs) => xs.reduce((a, b) => a + (Number(b) || 0), 0);
const maxOf = (xs) => (xs.filter((x) => typeof x === 'number').length ? Math.max(...xs.filter((x) => typeof x === 'number')) : null);

/**
 * One report from the load-test VMs' results ({ vm, result } each; a missing result counts as a
 * failed VM): totals of connections, deliveries, refusals and sequence faults, the worst p99, and
 * limited_by from the first VM that was limited (named), `none` only when every VM passed.
 */
export function mergeResults(parts) {
  const ok = parts.filter((p) => p.result && typeof p.result === 'object');
  const failed = parts.filter((p) => !p.result || typeof p.result !== 'object').map((p) => p.vm);
  const r = ok.map((p) => p.result);
  const limited = ok.find((p) => p.result.limited_by && p.result.limited_by !== 'none');
  const limited_by = failed.length ? 'generator_failed' : limited ? limited.result.limited_by : 'none';
  const limited_by_detail = failed.length
    ? `no result from ${failed.join(', ')}`
    : limited ? `${limited.vm}: ${limited.result.limited_by_detail ?? ''}` : 'every load-test VM reached its share within the SLO';
  return {
    schema: 'odin-ws.loadtest.fleet-result/v1',
    generators: parts.length,
    target: sum(r.map((x) => x.target)),
    capacity: r.every((x) => typeof x.capacity === 'number') && !failed.length ? sum(r.map((x) => x.capacity)) : null,
    reached: !failed.length && r.every((x) => x.reached === true),
    slo_met: !failed.length && r.every((x) => x.slo?.met === true),
    limited_by,
    limited_by_detail,
    connections: {
      attempted: sum(r.map((x) => x.connections?.attempted)),
      opened: sum(r.map((x) => x.connections?.opened)),
      peak_open: sum(r.map((x) => x.connections?.peak_open)),
      refused: sum(r.map((x) => x.connections?.refused)),
    },
    deliveries_per_s: sum(r.map((x) => x.deliveries?.per_s)),
    seq: { missing: sum(r.map((x) => x.seq?.missing)), duplicates: sum(r.map((x) => x.seq?.duplicates)), reordered: sum(r.map((x) => x.seq?.reordered)) },
    latency_ms_p99_worst: maxOf(r.map((x) => x.latency_ms?.p99)),
    per_generator: parts.map((p) => ({
      vm: p.vm,
      ...(p.result
        ? { target: p.result.target, reached: p.result.reached, limited_by: p.result.limited_by, opened: p.result.connections?.opened, peak_open: p.result.connections?.peak_open, deliveries_per_s: p.result.deliveries?.per_s, p99_ms: p.result.latency_ms?.p99 ?? null, missing: p.result.seq?.missing }
        : { error: 'no result' }),
    })),
  };
}

/** The merged report as text. */
export function formatMerged(m) {
  const lines = [
    `fleet load test: ${m.generators} generator(s), target ${m.target}, peak open ${m.connections.peak_open}, ${m.deliveries_per_s} deliveries/s, worst p99 ${m.latency_ms_p99_worst ?? '-'} ms, missing ${m.seq.missing}, duplicates ${m.seq.duplicates}`,
    `limited by ${m.limited_by}: ${m.limited_by_detail}`,
  ];
  for (const g of m.per_generator) lines.push(g.error ? `  ${g.vm}: ${g.error}` : `  ${g.vm}: target ${g.target}, peak ${g.peak_open}, ${g.deliveries_per_s}/s, p99 ${g.p99_ms ?? '-'} ms, ${g.limited_by}`);
  return lines.join('\n');
}

/** The load-test VM's outputs; when it is not deployed, deploy it and ship it the current release. */
export async function ensureLoadtestVm(gcp, { now = new Date(), log, needed = NEEDED, instances }) {
  try {
    return { out: await readOutputs(gcp, needed), broughtUp: false };
  } catch (e) {
    if (!(e instanceof OpsError) || !/loadtest_instance is missing/.test(e.message)) throw e;
  }
  log('== the load-test VM is not deployed: bringing it up (terraform apply of the loadtest stack)');
  const version = releaseVersion({ ...gitState(gcp.root), date: now });
  await gcp.run(process.execPath, [path.join(gcp.root, 'scripts', 'build.mjs'), 'loadtest'], { display: 'node scripts/build.mjs loadtest', stream: true });
  await gcp.terraform('loadtest', ['apply', '-input=false', '-auto-approve'], { stream: true });
  const out = await readOutputs(gcp, needed);
  if (!gcp.dryRun) assembleRelease({ root: gcp.root, version, now, bundles: ['loadtest'] });
  for (const instance of instances ?? [out.loadtest_instance]) {
    const vm = { instance, zone: out.zone, project: out.project };
    await gcp.ssh(vm, convergeScript(), { retries: 9, stream: true });
    await gcp.scp(vm, [path.join('dist', 'releases', version)], `${instance}:/tmp/`, { retries: 9 });
    await gcp.ssh(vm, installScript({ version, service: null }), { retries: 9 });
  }
  return { out, broughtUp: true };
}

export async function capacityTest(gcp, deployment, opts) {
  if (deployment.plan.fleet) return fleetCapacityTest(gcp, deployment, opts);
  const { target, hold, ramp, channels, reportsDir, teardown = false, now = new Date(), log = (s) => process.stdout.write(`${s}\n`) } = opts;
  const { out } = await ensureLoadtestVm(gcp, { now, log });
  const vm = { instance: out.loadtest_instance, zone: out.zone, project: out.project };
  const run = runId(now);
  const sourceIps = cidrToRange(deployment.config.loadtest.sourceCidr) ?? undefined;
  const args = loadtestArgs({ wsInternalIp: out.ws_internal_ip, target, hold, ramp, channels, outDir: `${REMOTE_RUNS}/${run}`, sourceIps });
  log(`== load test ${run}: ${target} connections to ws://${out.ws_internal_ip}:${WS_PORT}/ws, hold ${hold} s`);
  // Never retried: a second attempt would start a second load test.
  const res = await gcp.ssh(vm, remoteRunScript({ run, args }), { stream: true, allowFail: true, retries: 0 });
  const result = gcp.dryRun ? null : parseResult(res.stdout);
  if (res.exitCode === 255) log(`the SSH session dropped; the run goes on on the VM: npm run gcp:load-test:logs -- --run ${run} --follow`);

  log(`== fetching the report into ${path.relative(gcp.root, reportsDir) || '.'}/`);
  const staging = path.join(reportsDir, `.fetch-${run}`);
  if (!gcp.dryRun) fs.mkdirSync(reportsDir, { recursive: true });
  const fetched = await gcp.scp(vm, [`${out.loadtest_instance}:${REMOTE_RUNS}/${run}`], staging, { allowFail: true });
  const local = gcp.dryRun || fetched.exitCode !== 0 ? [] : settleFetchedReports(staging, reportsDir);
  for (const dir of local) log(`report: ${path.join(dir, 'report.html')}`);
  if (fetched.exitCode !== 0) log(`could not fetch the report (exit ${fetched.exitCode}): ${fetched.stderr.trim().split('\n').pop()}`);

  if (teardown) {
    log('== --teardown: destroying the load-test VM (the report is here)');
    await gcp.terraform('loadtest', ['destroy', '-input=false', '-auto-approve'], { stream: true });
  }
  if (gcp.dryRun) return { exitCode: 0, result: null, reports: [] };
  if (!result) log(`no result JSON in the load generator's output (exit ${res.exitCode}); see gcp:load-test:logs`);
  return { exitCode: res.exitCode !== 0 ? res.exitCode : fetched.exitCode !== 0 || !result ? 1 : 0, result, reports: local };
}

/**
 * Every load-test VM at once against the fleet's public address, each with its share of the
 * target; each VM's report fetched into reports/<run>/<vm>/, the merged one into
 * reports/<run>-fleet/result.json (and printed). Exit 1 when any VM failed, or the merged run did
 * not reach its target within the SLO.
 */
export async function fleetCapacityTest(gcp, deployment, { target, hold, ramp, channels, reportsDir, teardown = false, now = new Date(), log = (s) => process.stdout.write(`${s}\n`) }) {
  const instances = deployment.plan.loadtestVms.map((v) => v.instanceName);
  const { out } = await ensureLoadtestVm(gcp, { now, log, needed: FLEET_NEEDED, instances });
  const run = runId(now);
  const shares = splitTarget(target, instances.length);
  log(`== fleet load test ${run}: ${target} connections over ${instances.length} load-test VM(s) (${shares.join(' + ')}) to ws://${out.ws_external_ip}:${WS_PORT}/ws (the balancer), hold ${hold} s`);
  // Never retried (a second attempt would start a second load test); only the first streams.
  const runs = await Promise.all(
    instances.map((instance, i) => {
      const args = loadtestArgs({ wsInternalIp: out.ws_external_ip, target: shares[i], hold, ramp, channels, outDir: `${REMOTE_RUNS}/${run}` });
      return gcp.ssh({ instance, zone: out.zone, project: out.project }, remoteRunScript({ run, args }), { stream: i === 0, allowFail: true, retries: 0 });
    }),
  );
  const parts = instances.map((vm, i) => ({ vm, exitCode: runs[i].exitCode, result: gcp.dryRun ? null : parseResult(runs[i].stdout) }));
  log(`== fetching the reports into ${path.relative(gcp.root, reportsDir) || '.'}/${run}/`);
  const runDir = path.join(reportsDir, run);
  const reports = [];
  let fetchFailed = false;
  for (const vm of instances) {
    const staging = path.join(runDir, `.fetch-${vm}`);
    if (!gcp.dryRun) fs.mkdirSync(runDir, { recursive: true });
    const fetched = await gcp.scp({ zone: out.zone, project: out.project }, [`${vm}:${REMOTE_RUNS}/${run}`], staging, { allowFail: true });
    if (fetched.exitCode !== 0) {
      fetchFailed = true;
      log(`could not fetch ${vm}'s report (exit ${fetched.exitCode})`);
    } else if (!gcp.dryRun) {
      fs.mkdirSync(path.join(runDir, vm), { recursive: true });
      reports.push(...settleFetchedReports(staging, path.join(runDir, vm)));
    }
  }
  if (teardown) {
    log('== --teardown: destroying the load-test VMs (the reports are here)');
    await gcp.terraform('loadtest', ['destroy', '-input=false', '-auto-approve'], { stream: true });
  }
  if (gcp.dryRun) return { exitCode: 0, result: null, reports: [] };
  const merged = mergeResults(parts);
  const mergedDir = path.join(reportsDir, `${run}-fleet`);
  fs.mkdirSync(mergedDir, { recursive: true });
  fs.writeFileSync(path.join(mergedDir, 'result.json'), `${JSON.stringify(merged, null, 2)}\n`);
  log(formatMerged(merged));
  log(`merged report: ${path.join(mergedDir, 'result.json')}`);
  const anyFailed = parts.some((p) => p.exitCode !== 0 || !p.result);
  return { exitCode: anyFailed || fetchFailed || !merged.reached || !merged.slo_met ? 1 : 0, result: merged, reports };
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, {
    target: { type: 'string' },
    hold: { type: 'string' },
    ramp: { type: 'string' },
    channels: { type: 'string' },
    out: { type: 'string', default: 'reports' },
    teardown: { type: 'boolean', default: false },
  }, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const target = intFlag(values, 'target', { min: 1, max: 1_000_000, def: 12_000 });
  const hold = intFlag(values, 'hold', { min: 1, max: 86_400, def: 60 });
  const ramp = intFlag(values, 'ramp', { min: 1, max: 1_000_000, def: undefined });
  if (values.channels !== undefined && !/^[\w:*,-]{1,200}$/.test(values.channels)) {
    throw new UsageError(`--channels=${JSON.stringify(values.channels)}: a comma list of channels, random:K or none`);
  }
  const deployment = await resolveDeployment(env);
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  const { exitCode } = await capacityTest(gcp, deployment, { target, hold, ramp, channels: values.channels, teardown: values.teardown, reportsDir: path.resolve(gcp.root, values.out) });
  return exitCode;
}

if (isMain(import.meta.url)) await runMain(main);
