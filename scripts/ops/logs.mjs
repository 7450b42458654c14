#!/usr/bin/env node
// gcp:logs: the systemd journal of the odin services on each VM, over IAP SSH.
import { UsageError, intFlag, isMain, parseOptions, runMain } from './cli.mjs';
import { createGcp } from './gcp.mjs';
import { readOutputs } from './outputs.mjs';
import { fleetTarget, listNodes } from './rollout.mjs';
import { resolveDeployment } from './settings.mjs';

export const USAGE = `usage: logs [ws|backend|publisher ...] [--lines N] [--since WHEN] [--follow] [--dry-run]
  ws         odin-ws on the WS VM (a fleet: on every node, in turn)
  publisher  odin-publisher on the backend VM
  backend    every service on the backend VM (publisher, redpanda, console, prometheus, grafana)
  (default: ws and backend)
  --lines N      last N lines per VM (default 200)
  --since WHEN   journalctl --since, e.g. "10 min ago" or "2025-01-01 12:00"
  --follow       keep streaming (one target only; Ctrl-C to stop)`;

export const TARGETS = Object.freeze({
  ws: { instance: 'ws_instance', units: ['odin-ws'] },
  publisher: { instance: 'backend_instance', units: ['odin-publisher'] },
  backend: { instance: 'backend_instance', units: ['odin-publisher', 'redpanda', 'redpanda-console', 'prometheus', 'grafana-server'] },
});

/** The journalctl command for one target. `since` is validated, then single-quoted. */
export function journalCommand(units, { lines, since, follow }) {
  const parts = ['sudo journalctl --no-pager --output=short-iso', `-n ${lines}`, ...units.map((u) => `-u ${u}`)];
  if (since) parts.push(`--since '${since}'`);
  if (follow) parts.push('-f');
  return parts.join(' ');
}

export function parseLogsArgs(argv) {
  const { values, positionals } = parseOptions(argv, {
    lines: { type: 'string' },
    since: { type: 'string' },
    follow: { type: 'boolean', default: false },
  }, { usage: USAGE, positionals: true });
  const targets = positionals.length ? [...new Set(positionals)] : ['ws', 'backend'];
  const unknown = targets.filter((t) => !(t in TARGETS));
  if (unknown.length) throw new UsageError(`unknown log target(s): ${unknown.join(', ')} (use ws, backend or publisher)`, USAGE);
  if (values.follow && targets.length !== 1) throw new UsageError('--follow streams one target: name ws, backend or publisher', USAGE);
  if (values.since !== undefined && !/^[\w :.+-]{1,40}$/.test(values.since)) {
    throw new UsageError(`--since=${JSON.stringify(values.since)}: use a journalctl time such as "10 min ago" or "2025-01-01 12:00"`);
  }
  return {
    help: values.help,
    dryRun: values['dry-run'],
    targets,
    lines: intFlag(values, 'lines', { min: 1, max: 100_000, def: 200 }),
    since: values.since,
    follow: values.follow,
  };
}

export async function logs(gcp, { targets, lines, since, follow, deployment, log = (s) => process.stdout.write(`${s}\n`) }) {
  const fleet = deployment?.plan?.fleet;
  const out = await readOutputs(gcp, [...(fleet ? [] : ['ws_instance']), 'backend_instance', 'zone', 'project']);
  for (const t of targets) {
    const { instance, units } = TARGETS[t];
    if (t === 'ws' && fleet) {
      const nodes = await listNodes(gcp, fleetTarget(deployment));
      if (follow && nodes.length > 1) throw new UsageError(`--follow streams one VM: the fleet has ${nodes.length} nodes (${nodes.map((n) => n.name).join(', ')}); use gcloud compute ssh NODE --tunnel-through-iap -- sudo journalctl -fu odin-ws`);
      for (const n of nodes) {
        log(`== ws (${n.name}: ${units.join(', ')})`);
        await gcp.ssh({ instance: n.name, zone: n.zone, project: out.project }, journalCommand(units, { lines, since, follow }), { stream: true });
      }
      continue;
    }
    log(`== ${t} (${out[instance]}: ${units.join(', ')})`);
    await gcp.ssh({ instance: out[instance], zone: out.zone, project: out.project }, journalCommand(units, { lines, since, follow }), { stream: true });
  }
}

export async function main(argv, { env = process.env } = {}) {
  const opts = parseLogsArgs(argv);
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  await logs(createGcp({ dryRun: opts.dryRun, env }), { ...opts, deployment: await resolveDeployment(env) });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
