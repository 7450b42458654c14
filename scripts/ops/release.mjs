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

/** Copies dist/<bundle>.mjs (+ .map) into dist/releases/<version>/ and writes release.json. */
export function assembleRelease({ root, version, now = new Date() }) {
  const dist = path.join(root, 'dist');
  const dir = path.join(dist, 'releases', version);
  const missing = BUNDLES.filter((b) => !fs.existsSync(path.join(dist, `${b}.mjs`)));
  if (missing.length) {
    throw new OpsError(`the build produced no ${missing.map((b) => `dist/${b}.mjs`).join(', ')} (see scripts/build.mjs for the entry points)`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const files = {};
  for (const b of BUNDLES) {
    for (const name of [`${b}.mjs`, `${b}.mjs.map`]) {
      const src = path.join(dist, name);
      if (!fs.existsSync(src)) continue;
      fs.copyFileSync(src, path.join(dir, name));
      files[name] = createHash('sha256').update(fs.readFileSync(src)).digest('hex');
    }
  }
  const manifest = { version, built_at: now.toISOString(), files };
  fs.writeFileSync(path.join(dir, 'release.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, manifest };
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
      `systemctl is-active ${service}`,
    );
  }
  lines.push(`ls -1dt ${REMOTE_BASE}/releases/*/ | tail -n +${keep + 1} | xargs -r sudo rm -rf`);
  return lines.join('\n');
}
