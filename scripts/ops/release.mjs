// Versioned release artifacts: the esbuild bundles copied into dist/releases/<version>/ with a
// manifest, and the script that installs one on a VM behind the /opt/odin/current symlink.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { OpsError } from './gcp.mjs';

export const BUNDLES = Object.freeze(['server', 'publisher', 'loadtest']);
export const REMOTE_BASE = '/opt/odin';

/** `<short sha>[-dirty]-<UTC yyyymmddThhmmssZ>`: sortable by time, traceable to a commit. */
export function releaseVersion({ sha, dirty, date }) {
  const stamp = date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${sha || 'nogit'}${dirty ? '-dirty' : ''}-${stamp}`;
}

/** The checkout's short sha and whether it has uncommitted changes (read-only git calls). */
export function gitState(root) {
  const git = (args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return { sha: git(['rev-parse', '--short', 'HEAD']), dirty: git(['status', '--porcelain']) !== '' };
  } catch {
    return { sha: '', dirty: false };
  }
}

export const PAGE_ASSETS = ['index.html', 'odin-client.js'];

/** Copies dist/<bundle>.mjs (+ .map) and the page assets into dist/releases/<version>/ and writes release.json. */
export function assembleRelease({ root, version, now = new Date(), bundles = BUNDLES }) {
  const dist = path.join(root, 'dist');
  const dir = path.join(dist, 'releases', version);
  const missing = bundles.filter((b) => !fs.existsSync(path.join(dist, `${b}.mjs`)));
  if (missing.length) {
    throw new OpsError(`the build produced no ${missing.map((b) => `dist/${b}.mjs`).join(', ')} (see scripts/build.mjs for the entry points)`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const files = {};
  for (const b of bundles) {
    for (const name of [`${b}.mjs`, `${b}.mjs.map`]) {
      const src = path.join(dist, name);
      if (!fs.existsSync(src)) continue;
      fs.copyFileSync(src, path.join(dir, name));
      files[name] = createHash('sha256').update(fs.readFileSync(src)).digest('hex');
    }
  }
  // The live page and the official client's bundle, which the shards serve at / and /odin-client.js.
  for (const name of PAGE_ASSETS) {
    const src = path.join(dist, name);
    if (!fs.existsSync(src)) continue;
    fs.copyFileSync(src, path.join(dir, name));
    files[name] = createHash('sha256').update(fs.readFileSync(src)).digest('hex');
  }
  const manifest = { version, built_at: now.toISOString(), files };
  fs.writeFileSync(path.join(dir, 'release.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, manifest };
}

/**
 * Waits, bounded, for a unit to be active: `activating` (starting, or between auto-restarts) is
 * waited out; anything else after the wait fails with the unit's last log lines.
 */
export function waitActive(service, waitS = 60) {
  const tries = Math.max(1, Math.ceil(waitS / 2));
  return [
    `state=unknown; for i in $(seq 1 ${tries}); do state=$(systemctl is-active ${service} || true); [ "$state" = active ] && break; [ "$state" = activating ] || [ "$i" -lt 3 ] || break; sleep 2; done`,
    `if [ "$state" != active ]; then echo "${service} is $state" >&2; sudo journalctl -u ${service} -n 20 --no-pager >&2 || true; exit 1; fi`,
    `echo "${service} $state"`,
  ].join('\n');
}

export const APPLIED_MARK = '/var/lib/odin/startup-applied.sha256';
const METADATA_SCRIPT = 'http://metadata.google.internal/computeMetadata/v1/instance/attributes/startup-script';

/**
 * Shell run on a VM before a restart: if its startup-script metadata differs from the script it
 * last applied (the script records its own hash when it finishes), re-run it so changed env,
 * units, sysctls and config files are in place. The boot-time run is waited out first: two runs
 * at once would fight over apt and the files. `service` (the one the release step restarts) is
 * left for that restart, so a deploy that changes its config restarts it once, not twice.
 */
export const DEFERRED_RESTARTS = '/run/odin/deferred-restarts';

export function convergeScript({ waitBootS = 600, service = null } = {}) {
  const tries = Math.max(1, Math.ceil(waitBootS / 5));
  return [
    'set -eu',
    `for i in $(seq 1 ${tries}); do [ "$(systemctl is-active google-startup-scripts.service || true)" = activating ] || break; sleep 5; done`,
    // The service the release step restarts anyway: one restart, on the new release and config.
    ...(service ? [`sudo install -d -m 0755 /run/odin && echo ${service}.service | sudo tee ${DEFERRED_RESTARTS} >/dev/null`] : []),
    `want=$(curl -fsS -m 10 -H 'Metadata-Flavor: Google' ${METADATA_SCRIPT} | sha256sum | cut -d' ' -f1)`,
    `have=$(cat ${APPLIED_MARK} 2>/dev/null || true)`,
    'if [ "$want" = "$have" ]; then echo "converge: config up to date"; exit 0; fi',
    'echo "converge: the startup script changed: re-running it"',
    'sudo google_metadata_script_runner startup',
    `have=$(cat ${APPLIED_MARK} 2>/dev/null || true)`,
    'if [ "$want" != "$have" ]; then echo "converge: the startup script did not finish: sudo journalctl -u google-startup-scripts -n 50" >&2; exit 1; fi',
    'echo "converge: config applied"',
  ].join('\n');
}

/** The detailed /health, fetched on the WS VM from loopback (the only address always in WS_METRICS_ALLOW). */
export function healthProbeScript(port = 3004) {
  return `curl -sS -m 5 -w '\\n@@http %{http_code}\\n' http://127.0.0.1:${port}/health`;
}

/**
 * Shell run on a VM after the release dir was copied to /tmp/<version>: install it, switch the
 * symlink atomically, restart the service (SIGTERM drains: clients get 1001 and reconnect), keep
 * the newest `keep` releases. On a new VM the startup script may still be writing the unit file,
 * so wait for it, bounded.
 */
export function installScript({ version, service, keep = 3, waitUnitS = 300 }) {
  if (!/^[\w.-]+$/.test(version)) throw new OpsError(`bad release version ${JSON.stringify(version)}`);
  const rel = `${REMOTE_BASE}/releases/${version}`;
  const lines = [
    'set -eu',
    `sudo mkdir -p ${REMOTE_BASE}/releases`,
    // Guarded so that a retry after a dropped connection finds the release already installed.
    `if [ -d /tmp/${version} ]; then sudo rm -rf ${rel}; sudo cp -r /tmp/${version} ${rel}; rm -rf /tmp/${version}; fi`,
    `test -f ${rel}/release.json`,
    `sudo chmod -R a+rX ${rel}`,
    `sudo ln -sfn ${rel} ${REMOTE_BASE}/current.next`,
    `sudo mv -Tf ${REMOTE_BASE}/current.next ${REMOTE_BASE}/current`,
  ];
  if (service) {
    const tries = Math.max(1, Math.ceil(waitUnitS / 5));
    lines.push(
      `for i in $(seq 1 ${tries}); do systemctl cat ${service} >/dev/null 2>&1 && break; sleep 5; done`,
      `sudo systemctl restart ${service}`,
      `sudo rm -f ${DEFERRED_RESTARTS}`,
      waitActive(service),
    );
  }
  lines.push(`ls -1dt ${REMOTE_BASE}/releases/*/ | tail -n +${keep + 1} | xargs -r sudo rm -rf`);
  return lines.join('\n');
}
