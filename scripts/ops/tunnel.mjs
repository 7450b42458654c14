#!/usr/bin/env node
// gcp:grafana / gcp:console: an IAP TCP tunnel from a local port to Grafana (3010) or the Redpanda
// Console (8080) on the backend VM. The firewall admits those ports only from IAP's range, so
// this (with roles/iap.tunnelResourceAccessor) is the only way in. Runs until Ctrl-C.
import { UsageError, intFlag, isMain, parseOptions, runMain } from './cli.mjs';
import { createGcp } from './gcp.mjs';
import { resolveDeployment } from './settings.mjs';

export const UIS = Object.freeze({
  grafana: { port: 3010, what: 'Grafana (user admin; password: the Secret Manager secret, or `sudo cat /etc/odin/grafana-admin-password` on the backend VM)' },
  console: { port: 8080, what: 'Redpanda Console' },
});

export const USAGE = `usage: tunnel grafana|console [--port LOCAL_PORT] [--dry-run]
  --port N   local port (default: the same as the remote one, 3010 or 8080)`;

export function tunnelArgs({ instance, zone, project }, remotePort, localPort) {
  return ['compute', 'start-iap-tunnel', instance, String(remotePort), `--local-host-port=localhost:${localPort}`, '--zone', zone, '--project', project];
}

export async function main(argv, { env = process.env, log = (s) => process.stdout.write(`${s}\n`) } = {}) {
  const { values, positionals } = parseOptions(argv, { port: { type: 'string' } }, { usage: USAGE, positionals: true });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const ui = UIS[positionals[0]];
  if (positionals.length !== 1 || !ui) throw new UsageError('name one UI: grafana or console', USAGE);
  const localPort = intFlag(values, 'port', { min: 1024, max: 65535, def: ui.port });
  const d = await resolveDeployment(env);
  const target = { instance: d.plan.vms.backend.instanceName, zone: d.zone, project: d.project };
  log(`${ui.what}: http://localhost:${localPort}/ (IAP tunnel to ${target.instance}:${ui.port}; Ctrl-C to close)`);
  await createGcp({ dryRun: values['dry-run'], env }).gcloud(tunnelArgs(target, ui.port, localPort), { stream: true });
  return 0;
}

if (isMain(import.meta.url)) await runMain(main);
