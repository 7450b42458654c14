// The startup scripts' order and their common.sh steps, run by bash: retries with backoff, the
// optional agent never fatal, and the Secret Manager fetch against a stand-in curl (the metadata
// server and the Secret Manager API are GCP; curl is the only thing the script calls).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ASSET_DIR } from '../../stacks/assets.js';
import { runBash, startupScript, synthAll } from './helpers.js';

const { stacks } = synthAll();
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Line index of the first line of `script` (after the staging header) that starts with `call`. */
function callAt(script: string, call: string): number {
  const body = script.slice(script.indexOf('# ---- ws-startup.sh') >= 0 ? script.indexOf('# ---- ws-startup.sh') : script.indexOf('# ---- backend-startup.sh'));
  const lines = body.split('\n');
  const i = lines.findIndex((l) => l.startsWith(call));
  expect(i, `no line starting with ${call}`).toBeGreaterThanOrEqual(0);
  return i;
}

describe('startup order: config and units first, packages, then (re)start, optional agent last', () => {
  it('ws', () => {
    const s = startupScript(stacks.ws);
    expect(callAt(s, 'place /etc/systemd/system/odin-ws.service')).toBeLessThan(callAt(s, 'install_base'));
    expect(callAt(s, 'place /etc/odin/ws.env')).toBeLessThan(callAt(s, 'install_node'));
    expect(callAt(s, 'install_node')).toBeLessThan(callAt(s, 'start_service odin-ws.service'));
    expect(callAt(s, 'start_service odin-ws.service')).toBeLessThan(callAt(s, 'install_ops_agent'));
    expect(s.trimEnd().split('\n').at(-1)).toBe('install_ops_agent');
  });

  it('backend', () => {
    const s = startupScript(stacks.backend);
    expect(callAt(s, 'place /etc/systemd/system/odin-publisher.service')).toBeLessThan(callAt(s, 'install_base'));
    expect(callAt(s, 'place /etc/systemd/system/grafana-server.service.d/odin.conf')).toBeLessThan(callAt(s, 'install_base'));
    expect(callAt(s, 'start_service odin-publisher.service')).toBeLessThan(callAt(s, 'install_ops_agent'));
    expect(s.trimEnd().split('\n').at(-1)).toBe('install_ops_agent');
  });

  it('apt waits for the dpkg lock instead of failing, and installs the pinned versions', () => {
    const common = readFileSync(path.join(ASSET_DIR, 'common.sh'), 'utf8');
    expect(common).toContain('APT_OPTS=(-q -o DPkg::Lock::Timeout=600)');
    expect(common).toMatch(/retry apt-get "\$\{APT_OPTS\[@\]\}" update/);
    expect(common).toMatch(/retry apt-get "\$\{APT_OPTS\[@\]\}" install/);
    const backend = startupScript(stacks.backend);
    for (const pin of ['ODIN_PIN_NODEJS=', 'ODIN_PIN_REDPANDA=', 'ODIN_PIN_REDPANDA_CONSOLE=', 'ODIN_PIN_GRAFANA=', 'ODIN_PIN_PROMETHEUS=']) expect(backend).toContain(pin);
    expect(backend).toContain('"redpanda=${ODIN_PIN_REDPANDA}"');
    expect(backend).toContain('"grafana=${ODIN_PIN_GRAFANA}"');
    expect(startupScript(stacks.ws)).toContain("ODIN_PIN_NODEJS='24.");
  });
});

/** Runs `body` after sourcing common.sh, with a stand-in bin dir first on PATH. */
function withCommon(body: string, { bin = {} as Record<string, string>, env = {} as Record<string, string> } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'odin-common-'));
  dirs.push(dir);
  mkdirSync(path.join(dir, 'bin'));
  for (const [name, text] of Object.entries(bin)) {
    writeFileSync(path.join(dir, 'bin', name), text);
    chmodSync(path.join(dir, 'bin', name), 0o755);
  }
  const script = path.join(dir, 'run.sh');
  writeFileSync(script, `source ${JSON.stringify(path.join(ASSET_DIR, 'common.sh'))}\nODIN_ROLE=test\n${body}\n`);
  const r = runBash([script], { HOME: dir, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`, ODIN_RETRY_DELAY_S: '0', ...env });
  return { ...r, dir };
}

describe('common.sh, run by bash', () => {
  it('retry: gives up after the bounded attempts with a log line, succeeds when a later attempt does', () => {
    const r = withCommon('n=0; flaky() { n=$((n+1)); ((n >= 3)); }\nretry flaky && echo "ok after $n"\nODIN_RETRY_MAX=2 retry false || echo "gave up"');
    expect(r.stdout).toBe('ok after 3\ngave up\n');
    expect(r.stderr).toContain('attempt 1 failed, retrying in 0s: flaky');
    expect(r.stderr).toContain('giving up after 2 attempts: false');
  });

  it('install_ops_agent: a failing installer is logged, never fatal', () => {
    const r = withCommon('set -e\nODIN_INSTALL_OPS_AGENT=true\nODIN_RETRY_MAX=1\ninstall_ops_agent\necho "still here"', {
      bin: { curl: '#!/bin/sh\nexit 22\n', systemctl: '#!/bin/sh\nexit 1\n' },
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('still here\n');
    expect(r.stderr).toContain('ops agent NOT installed (optional');
  });
});

describe('start_service', () => {
  // systemctl stand-in: the unit is active; every call is logged to $CALLS.
  const systemctl = '#!/bin/sh\necho "$*" >>"$CALLS"\n[ "$1" = is-active ] && exit 0\nexit 0\n';
  function run(deferred: string | null) {
    const dir = mkdtempSync(path.join(tmpdir(), 'odin-start-'));
    dirs.push(dir);
    if (deferred !== null) writeFileSync(path.join(dir, 'deferred'), `${deferred}\n`);
    const r = withCommon('ODIN_CHANGED[/etc/odin/ws.env]=1\nstart_service odin-ws.service /etc/odin/ws.env\nstart_service other.service /etc/odin/other.env', {
      bin: { systemctl },
      env: { CALLS: path.join(dir, 'calls'), ODIN_DEFERRED_RESTARTS: path.join(dir, 'deferred') },
    });
    expect(r.status, r.stderr).toBe(0);
    return readFileSync(path.join(dir, 'calls'), 'utf8').trim().split('\n');
  }

  it('restarts an active unit only when one of its files changed', () => {
    const calls = run(null);
    expect(calls.filter((c) => c.startsWith('restart'))).toEqual(['restart odin-ws.service']);
  });

  it('leaves the restart of the unit the deploy restarts anyway to the deploy (one restart per deploy)', () => {
    expect(run('odin-ws.service').filter((c) => c.startsWith('restart'))).toEqual([]);
    expect(run('odin-publisher.service').filter((c) => c.startsWith('restart'))).toEqual(['restart odin-ws.service']);
  });
});

describe('fetch_secret: Secret Manager at boot, with the VM service account', () => {
  const owner = `${process.getuid!()}:${process.getgid!()}`;
  // curl stand-in: the metadata server and the Secret Manager REST API, from files in $FAKE.
  const curl = `#!/bin/bash
url="\${@: -1}"
case $url in
  */token) echo '{"access_token":"tok"}' ;;
  */project-id) echo odin-proj ;;
  */versions\\?filter=state:ENABLED) cat "$FAKE/list.json" ;;
  *:access) v=\${url%:access}; v=\${v##*/}; [ -f "$FAKE/v$v" ] || exit 22; printf '{"payload":{"data":"%s"}}' "$(base64 -w0 <"$FAKE/v$v")" ;;
  *) exit 22 ;;
esac
`;
  const b64 = (s: string) => s;
  function run(versions: Array<{ n: number; created: string; value: string }>, count = 2) {
    const dir = mkdtempSync(path.join(tmpdir(), 'odin-secret-'));
    dirs.push(dir);
    writeFileSync(path.join(dir, 'list.json'), JSON.stringify({ versions: versions.map((v) => ({ name: `projects/1/secrets/s/versions/${v.n}`, createTime: v.created, state: 'ENABLED' })) }));
    for (const v of versions) writeFileSync(path.join(dir, `v${v.n}`), b64(v.value));
    const dest = path.join(dir, 'auth-secret');
    writeFileSync(dest, 'old\n');
    const r = withCommon(`rc=0; fetch_secret odin-test-ws-auth-secret ${dest} ${count} ${owner} 0400 || rc=$?; echo "rc=$rc"`, { bin: { curl }, env: { FAKE: dir } });
    return { ...r, dest };
  }

  it('writes the newest enabled versions, newest first, one per line, mode 0400', () => {
    const A = 'a'.repeat(40);
    const B = 'b'.repeat(48);
    const r = run([{ n: 1, created: '2026-01-01T00:00:00Z', value: `${A}\n` }, { n: 2, created: '2026-02-01T00:00:00Z', value: B }, { n: 3, created: '2025-01-01T00:00:00Z', value: 'c'.repeat(40) }]);
    expect(r.stdout.trim()).toBe('rc=0');
    expect(readFileSync(r.dest, 'utf8')).toBe(`${B}\n${A}\n`);
    expect(statSync(r.dest).mode & 0o777).toBe(0o400);
  });

  it('no enabled version: exit 2 and the old file removed (the server runs without auth, and says so)', () => {
    const r = run([]);
    expect(r.stdout.trim()).toBe('rc=2');
    expect(existsSync(r.dest)).toBe(false);
    const ws = readFileSync(path.join(ASSET_DIR, 'ws-startup.sh'), 'utf8');
    expect(ws).toContain('the server runs WITHOUT auth');
  });

  it('a version shorter than 32 bytes: exit 3, nothing replaced, the value not logged', () => {
    const r = run([{ n: 1, created: '2026-01-01T00:00:00Z', value: 'short-secret-value' }]);
    expect(r.stdout.trim()).toBe('rc=3');
    expect(readFileSync(r.dest, 'utf8')).toBe('old\n');
    expect(r.stderr).toContain('is not one line of at least 32 bytes: refused');
    expect(r.stderr).not.toContain('short-secret-value');
  });

  it('Secret Manager unreachable: exit 1, the file kept (never a silent fall back to no auth)', () => {
    const r = withCommon(`rc=0; fetch_secret s /nonexistent/x 2 ${owner} 0400 || rc=$?; echo "rc=$rc"`, { bin: { curl: '#!/bin/sh\nexit 7\n' }, env: { ODIN_RETRY_MAX: '1' } });
    expect(r.stdout.trim()).toBe('rc=1');
  });
});
