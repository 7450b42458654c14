#!/usr/bin/env node
// gcp:load-test:logs: the load generator's log on the load-test VM: the latest run (or --run ID),
// --follow while it is still running, --list for every run kept there.
import { UsageError, intFlag, isMain, parseOptions, runMain } from './cli.mjs';
import { createGcp } from './gcp.mjs';
import { REMOTE_RUNS } from './load-test-capacity.mjs';
import { readOutputs } from './outputs.mjs';

export const USAGE = `usage: load-test-logs [--run ID | --list] [--lines N] [--follow] [--dry-run]
  --run ID     a run id as printed by gcp:load-test:capacity (default: the latest)
  --list       list the runs on the load-test VM
  --lines N    last N lines (default 200)
  --follow     keep streaming until the run ends`;

export function remoteLogScript({ run, lines, follow, list }) {
  if (list) return `ls -1t ${REMOTE_RUNS} 2>/dev/null || echo "no load test has run on this VM"`;
  const pick = run ? `d=${REMOTE_RUNS}/${run}` : `d=$(ls -1dt ${REMOTE_RUNS}/*/ 2>/dev/null | head -n 1); d=\${d%/}`;
  const show = follow
    ? `if kill -0 "$(cat "$d/pid" 2>/dev/null)" 2>/dev/null; then tail -n ${lines} -f --pid="$(cat "$d/pid")" "$d/run.log"; else tail -n ${lines} "$d/run.log"; fi`
    : `tail -n ${lines} "$d/run.log"`;
  return [
    pick,
    'if [ -z "$d" ] || [ ! -f "$d/run.log" ]; then echo "no load test log found${d:+ in $d}" >&2; exit 1; fi',
    'echo "== $d/run.log"',
    show,
  ].join('\n');
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, {
    run: { type: 'string' },
    list: { type: 'boolean', default: false },
    lines: { type: 'string' },
    follow: { type: 'boolean', default: false },
  }, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.run !== undefined && !/^\d{8}T\d{6}Z$/.test(values.run)) {
    throw new UsageError(`--run=${JSON.stringify(values.run)}: a run id looks like 20250101T120000Z (see --list)`);
  }
  const lines = intFlag(values, 'lines', { min: 1, max: 100_000, def: 200 });
  const gcp = createGcp({ dryRun: values['dry-run'], env });
  const out = await readOutputs(gcp, ['loadtest_instance', 'zone', 'project']);
  await gcp.ssh({ instance: out.loadtest_instance, zone: out.zone, project: out.project },
    remoteLogScript({ run: values.run, lines, follow: values.follow, list: values.list }), { stream: true });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
