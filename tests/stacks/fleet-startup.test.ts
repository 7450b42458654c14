// The fleet node's startup part (stacks/assets/ws-fleet.sh), run by bash against a stand-in curl
// (the metadata server and the Cloud Storage API are GCP; curl is all the script calls): the
// per-node consumer group from the instance name, and the release the metadata names, installed
// only when its sha256 matches.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ASSET_DIR } from '../../stacks/assets.js';
import { runBash } from './helpers.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

// Answers a URL from $FAKE/<url with scheme dropped and / ? % = & as _>; 404 when absent.
const CURL = `#!/bin/bash
out=''; w=''; url=''; fail=0
while (($#)); do
  case $1 in
    -o) out=$2; shift 2 ;;
    -w) w=$2; shift 2 ;;
    -H|-m) shift 2 ;;
    -*) [[ $1 == -*f* ]] && fail=1; shift ;;
    *) url=$1; shift ;;
  esac
done
echo "$url" >>"$FAKE/urls"
key=$(printf %s "$url" | sed 's#^[a-z]*://##; s#[/?%=&]#_#g')
f=$FAKE/$key
code=404; [[ -f $f ]] && code=200
if [[ $code == 200 ]]; then if [[ -n $out ]]; then cat "$f" >"$out"; else cat "$f"; fi; fi
[[ -n $w ]] && printf '%s' "\${w//%\\{http_code\\}/$code}"
[[ $code == 404 && $fail == 1 ]] && exit 22
exit 0
`;

interface Setup {
  metadata?: Record<string, string>;
  release?: { version: string; sha?: string; tarball?: boolean };
}

function run(body: string, { metadata = {}, release }: Setup = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'odin-fleet-'));
  dirs.push(dir);
  const fake = path.join(dir, 'fake');
  const bin = path.join(dir, 'bin');
  const stage = path.join(dir, 'stage');
  mkdirSync(fake);
  mkdirSync(bin);
  mkdirSync(path.join(stage, 'etc/odin'), { recursive: true });
  writeFileSync(path.join(stage, 'etc/odin/ws.env'), 'WS_MODE=multi\n');
  writeFileSync(path.join(bin, 'curl'), CURL);
  chmodSync(path.join(bin, 'curl'), 0o755);
  const meta = (key: string, value: string) => writeFileSync(path.join(fake, `meta_${key.replace(/\//g, '_')}`), value);
  meta('instance/service-accounts/default/token', '{"access_token":"ya29.t"}');
  for (const [k, v] of Object.entries(metadata)) meta(k, v);
  if (release) {
    const src = path.join(dir, 'build', release.version);
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, 'server.mjs'), 'console.log(1)\n');
    if (release.tarball !== false) writeFileSync(path.join(src, 'release.json'), `{"version":"${release.version}"}\n`);
    const tgz = path.join(dir, 'release.tar.gz');
    expect(spawnSync('tar', ['-czf', tgz, '-C', path.join(dir, 'build'), release.version]).status).toBe(0);
    const sha = release.sha ?? createHash('sha256').update(readFileSync(tgz)).digest('hex');
    writeFileSync(path.join(fake, `gcs_b_odin-rel_o_releases_2F${release.version}.tar.gz_alt_media`), readFileSync(tgz));
    meta('instance/attributes/odin-release', release.version);
    meta('instance/attributes/odin-release-sha256', sha);
    meta('instance/attributes/odin-release-bucket', 'odin-rel');
  }
  const script = path.join(dir, 'run.sh');
  const src = (f: string) => `source ${JSON.stringify(path.join(ASSET_DIR, f))}`;
  writeFileSync(script, `${src('common.sh')}\nODIN_ROLE=ws\n${src('ws-fleet.sh')}\n${body}\n`);
  const r = runBash([script], {
    HOME: dir,
    PATH: `${bin}:${process.env.PATH}`,
    FAKE: fake,
    ODIN_SOURCE_ONLY: '1',
    ODIN_RETRY_MAX: '1',
    ODIN_RETRY_DELAY_S: '0',
    ODIN_STAGE: stage,
    ODIN_BASE: path.join(dir, 'opt'),
    ODIN_METADATA: 'http://meta',
    ODIN_STORAGE_API: 'http://gcs',
    ODIN_CONSUMER_GROUP_PREFIX: 'ws-test-',
  });
  return { ...r, dir, stageEnv: () => readFileSync(path.join(stage, 'etc/odin/ws.env'), 'utf8'), opt: path.join(dir, 'opt') };
}

describe('ws-fleet.sh, run by bash', () => {
  it('names the consumer group after the instance: ws-<env>-<instance name>', () => {
    const r = run('fleet_consumer_group', { metadata: { 'instance/name': 'odin-test-ws-x7k2' } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stageEnv()).toBe('WS_MODE=multi\nKAFKA_CONSUMER_GROUP=ws-test-odin-test-ws-x7k2\n');
  });

  it('refuses an instance name that is not one (never writes it into the env file)', () => {
    const r = run('fleet_consumer_group', { metadata: { 'instance/name': 'bad name;rm' } });
    expect(r.status).not.toBe(0);
    expect(r.stageEnv()).toBe('WS_MODE=multi\n');
  });

  it('installs the named release behind current when its sha256 matches, and marks the server for a restart', () => {
    const r = run('fleet_install_release; echo "changed=${ODIN_CHANGED[/etc/odin/ws.env]:-0}"', { release: { version: 'abc1234-20261201T120000Z' } });
    expect(r.status, r.stderr).toBe(0);
    expect(readlinkSync(path.join(r.opt, 'current'))).toBe(path.join(r.opt, 'releases', 'abc1234-20261201T120000Z'));
    expect(readFileSync(path.join(r.opt, 'current', 'release.json'), 'utf8')).toContain('abc1234-20261201T120000Z');
    expect(r.stdout).toContain('changed=1');
    expect(r.stderr).toContain('sha256 verified');
  });

  it('refuses a release whose sha256 does not match: nothing installed', () => {
    const r = run('rc=0; fleet_install_release || rc=$?; echo "rc=$rc"', { release: { version: 'v2', sha: 'a'.repeat(64) } });
    expect(r.stdout).toContain('rc=1');
    expect(r.stderr).toContain('sha256 does not match');
    expect(existsSync(path.join(r.opt, 'current'))).toBe(false);
    expect(existsSync(path.join(r.opt, 'releases', 'v2'))).toBe(false);
  });

  it('refuses malformed release metadata without downloading', () => {
    const r = run('rc=0; fleet_install_release || rc=$?; echo "rc=$rc"', {
      metadata: { 'instance/attributes/odin-release': 'v3', 'instance/attributes/odin-release-sha256': 'not-hex', 'instance/attributes/odin-release-bucket': 'odin-rel' },
    });
    expect(r.stdout).toContain('rc=1');
    expect(r.stderr).toContain('release metadata refused');
    expect(readFileSync(path.join(r.dir, 'fake', 'urls'), 'utf8')).not.toContain('gcs');
  });

  it('with no release named yet (before the first deploy): nothing to install, not a failure', () => {
    const r = run('fleet_install_release; echo ok');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('ok\n');
    expect(r.stderr).toContain('no release named');
  });
});
