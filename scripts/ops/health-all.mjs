#!/usr/bin/env node
// gcp:health:all: the WS server's detailed /health as a per-shard table, read on the WS VM itself
// over IAP SSH (the public port shows only {"status":"ok"} to addresses outside WS_METRICS_ALLOW;
// an IAP TCP tunnel would arrive from 35.235.240.0/20, so loopback on the VM is the path that is
// always allowed); the public /health from here (what clients and balancers see); then what only
// the VPC can see: the backend's services, the publisher's /status, Grafana and the console, and
// whether the WS VM reaches Redpanda. Exits 1 if anything is down. A fleet (ws.count >= 2): the
// same per node of the group, and each node's state in the balancer.
import { isMain, parseOptions, runMain } from './cli.mjs';
import { createGcp, shellQuote as sq } from './gcp.mjs';
import { evaluatePublicHealth, evaluatePublisherStatus, evaluateWsHealth, fetchJson, formatChecks, formatHealth, formatPublisherStatus, parseRemoteHealth } from './health.mjs';
import { healthProbeScript } from './release.mjs';
import { readOutputs } from './outputs.mjs';
import { balancerHealth, fleetTarget, listNodes } from './rollout.mjs';
import { resolveDeployment } from './settings.mjs';

export const USAGE = 'usage: health-all [--dry-run]';
export const KAFKA_PORT = 9092; // the Kafka API port (DESIGN: Redpanda, Kafka API :9092)
export const BACKEND_UNITS = Object.freeze(['odin-publisher', 'redpanda', 'redpanda-console', 'prometheus', 'grafana-server']);
const NEEDED = ['health_url', 'ws_instance', 'backend_instance', 'backend_internal_ip', 'publisher_status_url', 'grafana_url', 'console_url', 'zone', 'project'];
const FLEET_NEEDED = NEEDED.filter((n) => n !== 'ws_instance');

/** One SSH session's worth of probes; each section starts with a `@@name` line. */
export function backendProbeScript(out) {
  const code = (url) => `curl -sS -m 5 -o /dev/null -w '%{http_code}' ${sq(url)} || true; echo`;
  return [
    'echo @@units',
    `systemctl is-active ${BACKEND_UNITS.join(' ')} || true`,
    'echo @@publisher',
    `curl -sS -m 5 ${sq(out.publisher_status_url)} || true; echo`,
    'echo @@grafana',
    code(`${out.grafana_url.replace(/\/+$/, '')}/api/health`),
    'echo @@console',
    code(out.console_url),
  ].join('\n');
}

export function wsProbeScript(out) {
  return [
    'echo @@health',
    `${healthProbeScript()} || true`,
    'echo @@units',
    'systemctl is-active odin-ws || true',
    'echo @@kafka',
    `timeout 3 bash -c ${sq(`: </dev/tcp/${out.backend_internal_ip}/${KAFKA_PORT}`)} 2>/dev/null && echo open || echo closed`,
  ].join('\n');
}

/** `@@name` sections of a probe's stdout -> { name: trimmed text }. */
export function parseSections(stdout) {
  const sections = {};
  let current = null;
  for (const line of String(stdout).split('\n')) {
    const m = /^@@(\w+)\s*$/.exec(line);
    if (m) sections[(current = m[1])] = '';
    else if (current) sections[current] += `${line}\n`;
  }
  for (const k of Object.keys(sections)) sections[k] = sections[k].trim();
  return sections;
}

const httpOk = (code) => /^[23]\d\d$/.test(code);

/** Checks from the backend probe; a failed SSH marks everything it would have shown as down. */
export function backendChecks(probe) {
  if (probe.exitCode !== 0) {
    const why = `ssh failed: ${lastLine(probe.stderr)}`;
    return [...BACKEND_UNITS.map((u) => ({ name: `backend ${u}`, ok: false, detail: why })), { name: 'publisher /status', ok: false, detail: why }];
  }
  const s = parseSections(probe.stdout);
  const states = (s.units ?? '').split('\n');
  const checks = BACKEND_UNITS.map((u, i) => ({ name: `backend ${u}`, ok: states[i] === 'active', detail: states[i] || 'unknown' }));
  let body = s.publisher ?? '';
  try {
    body = JSON.parse(body);
  } catch {
    /* not JSON: shown as text */
  }
  const pub = evaluatePublisherStatus({ httpStatus: typeof body === 'object' ? 200 : null, body, error: typeof body === 'object' ? null : body || 'no answer' });
  checks.push({ name: 'publisher /status', ok: pub.ok, detail: pub.ok ? formatPublisherStatus(body) : pub.problem });
  checks.push({ name: 'grafana', ok: httpOk(s.grafana), detail: `HTTP ${s.grafana || '-'}` });
  checks.push({ name: 'redpanda console', ok: httpOk(s.console), detail: `HTTP ${s.console || '-'}` });
  return checks;
}

export function wsVmChecks(probe, out, who = 'ws') {
  if (probe.exitCode !== 0) {
    const why = `ssh failed: ${lastLine(probe.stderr)}`;
    return [{ name: `${who} odin-ws`, ok: false, detail: why }, { name: `redpanda from ${who}`, ok: false, detail: why }];
  }
  const s = parseSections(probe.stdout);
  return [
    { name: `${who} odin-ws`, ok: s.units === 'active', detail: s.units || 'unknown' },
    { name: `redpanda from ${who}`, ok: s.kafka === 'open', detail: `${out.backend_internal_ip}:${KAFKA_PORT} ${s.kafka || 'unknown'}` },
  ];
}

/** One WS server's detailed /health from its probe: the verdict check, printed table first. */
function wsHealthCheck(probe, who, log) {
  const health = probe.exitCode === 0 ? parseRemoteHealth({ exitCode: 0, stdout: parseSections(probe.stdout).health ?? '' }) : parseRemoteHealth(probe);
  const verdict = evaluateWsHealth(health);
  log(`\nWS ${who} 127.0.0.1:3004/health${health.body?.version ? ` (version ${health.body.version})` : ''}`);
  if (health.body && typeof health.body === 'object' && Array.isArray(health.body.shards)) log(formatHealth(health.body));
  return { name: `${who} /health`, ok: verdict.ok, detail: verdict.ok ? `${health.body.shards.length} shards up${health.body.version ? `, ${health.body.version}` : ''}` : verdict.problem };
}

/** A fleet: every node's probe and its state in the balancer; at least one node must exist. */
async function fleetChecks(gcp, deployment, out, log) {
  const target = fleetTarget(deployment);
  const [nodes, states] = await Promise.all([listNodes(gcp, target), balancerHealth(gcp, target)]);
  if (gcp.dryRun) {
    await gcp.ssh({ instance: `${target.group}-NODE`, zone: deployment.zone, project: out.project }, wsProbeScript(out), { allowFail: true, retries: 0, quiet: true });
    return [];
  }
  const probes = await Promise.all(nodes.map((n) => gcp.ssh({ instance: n.name, zone: n.zone, project: out.project }, wsProbeScript(out), { allowFail: true, retries: 0, quiet: true })));
  const checks = [{ name: `ws group ${target.group}`, ok: nodes.length > 0, detail: `${nodes.length} node(s)${nodes.length ? `: ${nodes.map((n) => `${n.name} ${n.status}`).join(', ')}` : ''}` }];
  nodes.forEach((n, i) => {
    checks.push(wsHealthCheck(probes[i], n.name, log));
    checks.push({ name: `${n.name} in balancer`, ok: states.get(n.name) === 'HEALTHY', detail: states.get(n.name) ?? 'not listed' });
    checks.push(...wsVmChecks(probes[i], out, n.name));
  });
  return checks;
}

const lastLine = (text) => String(text ?? '').trim().split('\n').pop() || 'no output';

export async function healthAll(gcp, { log = (s) => process.stdout.write(`${s}\n`), deployment } = {}) {
  if (deployment?.plan?.fleet) return healthAllFleet(gcp, deployment, log);
  const out = await readOutputs(gcp, NEEDED);
  const ws = { instance: out.ws_instance, zone: out.zone, project: out.project };
  const backend = { instance: out.backend_instance, zone: out.zone, project: out.project };
  if (!gcp.dryRun) log(`probing ${out.health_url} from here; ${out.ws_instance} and ${out.backend_instance} over IAP SSH`);
  const [publicHealth, wsProbe, backendProbe] = await Promise.all([
    gcp.dryRun ? null : fetchJson(out.health_url),
    // No retries: a health check reports an unreachable VM rather than waiting for it.
    gcp.ssh(ws, wsProbeScript(out), { allowFail: true, retries: 0, quiet: true }),
    gcp.ssh(backend, backendProbeScript(out), { allowFail: true, retries: 0, quiet: true }),
  ]);
  if (gcp.dryRun) {
    log(`[dry-run] GET ${out.health_url}`);
    return { ok: true, checks: [] };
  }
  const health = wsProbe.exitCode === 0
    ? parseRemoteHealth({ exitCode: 0, stdout: parseSections(wsProbe.stdout).health ?? '' })
    : parseRemoteHealth(wsProbe);
  const verdict = evaluateWsHealth(health);
  const pub = evaluatePublicHealth(publicHealth);
  log(`\nWS ${out.ws_instance} 127.0.0.1:3004/health${health.body?.version ? ` (version ${health.body.version})` : ''}`);
  if (health.body && typeof health.body === 'object' && Array.isArray(health.body.shards)) log(formatHealth(health.body));
  const checks = [
    { name: 'ws /health', ok: verdict.ok, detail: verdict.ok ? `${health.body.shards.length} shards up` : verdict.problem },
    { name: 'ws public /health', ok: pub.ok, detail: pub.ok ? `${out.health_url} ok` : `${out.health_url}: ${pub.problem}` },
    ...wsVmChecks(wsProbe, out),
    ...backendChecks(backendProbe),
  ];
  const { text, ok } = formatChecks(checks);
  log(`\n${text}`);
  log(ok ? '\nall healthy' : `\n${checks.filter((c) => !c.ok).length} check(s) DOWN`);
  return { ok, checks };
}

async function healthAllFleet(gcp, deployment, log) {
  const out = await readOutputs(gcp, FLEET_NEEDED);
  const backend = { instance: out.backend_instance, zone: out.zone, project: out.project };
  if (!gcp.dryRun) log(`probing ${out.health_url} (the balancer) from here; the group's nodes and ${out.backend_instance} over IAP SSH`);
  const [publicHealth, fleet, backendProbe] = await Promise.all([
    gcp.dryRun ? null : fetchJson(out.health_url),
    fleetChecks(gcp, deployment, out, log),
    gcp.ssh(backend, backendProbeScript(out), { allowFail: true, retries: 0, quiet: true }),
  ]);
  if (gcp.dryRun) {
    log(`[dry-run] GET ${out.health_url}`);
    return { ok: true, checks: [] };
  }
  const pub = evaluatePublicHealth(publicHealth);
  const checks = [...fleet, { name: 'ws public /health', ok: pub.ok, detail: pub.ok ? `${out.health_url} ok` : `${out.health_url}: ${pub.problem}` }, ...backendChecks(backendProbe)];
  const { text, ok } = formatChecks(checks);
  log(`\n${text}`);
  log(ok ? '\nall healthy' : `\n${checks.filter((c) => !c.ok).length} check(s) DOWN`);
  return { ok, checks };
}

export async function main(argv, { env = process.env } = {}) {
  const { values } = parseOptions(argv, {}, { usage: USAGE });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const deployment = await resolveDeployment(env);
  const { ok } = await healthAll(createGcp({ dryRun: values['dry-run'], env }), { deployment });
  return ok ? 0 : 1;
}

if (isMain(import.meta.url)) await runMain(main);
