// Load generator entry. The same bundle is the coordinator (default) and, with `--role worker`,
// a worker process forked by the coordinator.
// Exit codes: 0 run completed (the verdict is in the result, met or not), 1 run failed or was cut
// short (deadline, signal), 2 invalid arguments.
import { fileURLToPath } from 'node:url';
import { parseCli, USAGE } from './cli.js';
import { ProgressLine } from './progress.js';
import { writeReport } from './report.js';
import { RunError, runLoadtest } from './run.js';
import { runWorker } from './worker.js';

async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--role') {
    if (argv[1] === 'worker' && argv.length === 2) {
      runWorker();
      return -1; // keeps running until told to stop
    }
    process.stderr.write('loadtest: --role accepts only "worker" (used internally by the coordinator)\n');
    return 2;
  }
  const parsed = parseCli(argv);
  if (!parsed.ok) {
    if (parsed.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    for (const p of parsed.problems) process.stderr.write(`loadtest: ${p}\n`);
    process.stderr.write('loadtest: see --help\n');
    return 2;
  }
  const cfg = parsed.config;
  const ac = new AbortController();
  let signalled = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      signalled = true;
      ac.abort();
    });
  }
  const progress = new ProgressLine(cfg.progress);
  let result;
  try {
    result = await runLoadtest(cfg, { bundlePath: fileURLToPath(import.meta.url), signal: ac.signal, onProgress: (p) => progress.update(p) });
  } catch (err) {
    progress.end();
    process.stderr.write(`loadtest: ${err instanceof RunError ? err.message : (err as Error).stack}\n`);
    return 1;
  }
  progress.end();
  const files = writeReport(result, cfg.outDir);
  const s = result;
  const lines = [
    `loadtest ${s.status}: ${s.mode === 'search' ? `capacity ${s.capacity ?? 'none'} (search up to ${s.target})` : `target ${s.target} ${s.reached ? 'reached' : 'not reached'}`}, SLO ${s.slo.met ? 'met' : 'not met'}`,
    `limited_by ${s.limited_by}: ${s.limited_by_detail}`,
    ...s.slo.violations.map((v) => `  violation: ${v}`),
    `deliveries ${s.deliveries.total} (${s.deliveries.per_s}/s in the hold), hold latency p99 ${s.latency_ms.p99 ?? '-'} ms, missing ${s.seq.missing}, refused ${s.connections.refused}, shard spread ${s.shard_spread ?? '-'}`,
    ...s.warnings.map((w) => `  warning: ${w}`),
    `report: ${files.report_html}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (cfg.json) process.stdout.write(`${JSON.stringify({ ...s, files })}\n`);
  if (signalled) return 130;
  return s.status === 'completed' ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Exit explicitly: stdout/stderr are synchronous for files and pipes on Linux, and a
    // lingering keep-alive socket must not hold the run open.
    if (code >= 0) process.exit(code);
  },
  (err) => {
    process.stderr.write(`loadtest: ${(err as Error).stack}\n`);
    process.exitCode = 1;
  },
);
