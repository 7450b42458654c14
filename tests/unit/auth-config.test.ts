// The auth settings: the secret file's forms, the rules' defaults, and no secret value in any
// problem or warning.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../app/config/config.js';
import { SERVER } from '../support/server.js';

const A = 'a-current-secret-of-at-least-32-bytes-0001';
const B = 'b-previous-secret-of-at-least-32-bytes-0002';
const SHORT = 'short-secret-31-bytes-000000000'; // 31 bytes: one below the minimum
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-auth-config-'));
let n = 0;
function file(text: string, mode = 0o600): string {
  const f = path.join(dir, `secret-${n++}`);
  fs.writeFileSync(f, text, { mode });
  fs.chmodSync(f, mode);
  return f;
}

function ok(env: NodeJS.ProcessEnv, argv: string[] = []) {
  const r = parseConfig(env, argv);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r;
}
function problems(env: NodeJS.ProcessEnv, argv: string[] = []): string {
  const r = parseConfig(env, argv);
  expect(r.ok).toBe(false);
  return r.ok ? '' : r.problems.join('\n');
}

describe('auth config', () => {
  it('is off (null) by default, with no warning', () => {
    const r = ok({});
    expect(r.config.auth).toBeNull();
    expect(r.warnings).toEqual([]);
    expect(r.config).not.toHaveProperty('authSecret');
  });

  it('reads one secret from WS_AUTH_SECRET_FILE, with the rules defaulted, frozen', () => {
    const r = ok({ WS_AUTH_SECRET_FILE: file(`${A}\n`) });
    expect(r.config.auth).toEqual({ secrets: [A], requireExp: true, audience: null, issuer: null, clockToleranceS: 5 });
    expect(Object.isFrozen(r.config.auth)).toBe(true);
    expect(Object.isFrozen(r.config.auth!.secrets)).toBe(true);
    expect(r.warnings).toEqual([]);
  });

  it('reads two secrets (current, previous), ignoring blank lines, CRLF, surrounding spaces and the trailing newline', () => {
    for (const text of [`${A}\n${B}`, `${A}\n${B}\n`, `\n${A}\r\n\r\n  ${B}  \r\n\n`]) {
      expect(ok({ WS_AUTH_SECRET_FILE: file(text) }).config.auth!.secrets, JSON.stringify(text)).toEqual([A, B]);
    }
    expect(ok({}, ['--auth-secret-file', file(`${B}\n${A}\n`)]).config.auth!.secrets).toEqual([B, A]);
  });

  it('refuses a file with no secret, three secrets, or a short one, naming the path and line but no value', () => {
    const cases: Array<[string, string]> = [
      ['', 'holds 0 secrets'],
      ['\n\n', 'holds 0 secrets'],
      [`${A}\n${B}\n${A}x\n`, 'holds 3 secrets'],
      [`${SHORT}\n`, 'line 1 (current secret) must be at least 32 bytes'],
      [`${A}\n${SHORT}\n`, 'line 2 (previous secret) must be at least 32 bytes'],
    ];
    for (const [text, want] of cases) {
      const f = file(text);
      const p = problems({ WS_AUTH_SECRET_FILE: f });
      expect(p, JSON.stringify(text)).toContain(`WS_AUTH_SECRET_FILE=${JSON.stringify(f)}`);
      expect(p, JSON.stringify(text)).toContain(want);
      for (const s of [A, B, SHORT]) expect(p).not.toContain(s);
    }
  });

  it('refuses a missing or unreadable file, or a directory, naming the path', () => {
    const missing = path.join(dir, 'nope');
    expect(problems({ WS_AUTH_SECRET_FILE: missing })).toMatch(new RegExp(`WS_AUTH_SECRET_FILE="${missing}": cannot read the file \\(ENOENT\\)`));
    expect(problems({ WS_AUTH_SECRET_FILE: dir })).toContain(`WS_AUTH_SECRET_FILE="${dir}": not a regular file`);
    if (process.getuid?.() !== 0) {
      const f = file(`${A}\n`, 0o000);
      expect(problems({ WS_AUTH_SECRET_FILE: f })).toContain('cannot read the file (EACCES)');
    }
  });

  it('warns about a file other users can read', () => {
    const r = ok({ WS_AUTH_SECRET_FILE: file(`${A}\n`, 0o644) });
    expect(r.warnings.join()).toMatch(/readable by group or others.*chmod 600/);
  });

  it('accepts WS_AUTH_SECRET / --auth-secret with a warning naming WS_AUTH_SECRET_FILE, never the value', () => {
    for (const [env, argv, name] of [[{ WS_AUTH_SECRET: A }, [], 'WS_AUTH_SECRET'], [{}, ['--auth-secret', A], '--auth-secret']] as const) {
      const r = ok(env, [...argv]);
      expect(r.config.auth!.secrets).toEqual([A]);
      expect(r.warnings.join()).toContain(name);
      expect(r.warnings.join()).toContain('WS_AUTH_SECRET_FILE');
      expect(r.warnings.join()).not.toContain(A);
    }
  });

  it('never echoes a rejected secret, from env, flag or a stray argument', () => {
    const env = problems({ WS_AUTH_SECRET: SHORT });
    expect(env).toContain('WS_AUTH_SECRET (value not shown): must be at least 32 bytes');
    expect(env).not.toContain(SHORT);
    const flag = problems({}, ['--auth-secret', SHORT]);
    expect(flag).toContain('--auth-secret (value not shown)');
    expect(flag).not.toContain(SHORT);
    const stray = problems({}, ['--auth-secret-file', '/x', SHORT]);
    expect(stray).not.toContain(SHORT);
    // 32 bytes counted as UTF-8 bytes, not characters.
    expect(problems({ WS_AUTH_SECRET: 'ü'.repeat(15) })).toContain('at least 32 bytes');
    expect(ok({ WS_AUTH_SECRET: 'ü'.repeat(16) }).config.auth!.secrets).toHaveLength(1);
  });

  it('refuses both sources at once, and aud/iss without auth', () => {
    expect(problems({ WS_AUTH_SECRET_FILE: file(`${A}\n`), WS_AUTH_SECRET: B })).toContain('WS_AUTH_SECRET_FILE and WS_AUTH_SECRET are both set');
    expect(problems({ WS_AUTH_AUDIENCE: 'x' })).toContain('WS_AUTH_AUDIENCE is set but auth is off');
    expect(problems({ WS_AUTH_ISSUER: 'x' })).toContain('WS_AUTH_ISSUER is set but auth is off');
  });

  it('parses the rules and rejects bad values', () => {
    const f = file(`${A}\n`);
    const r = ok({ WS_AUTH_SECRET_FILE: f, WS_AUTH_REQUIRE_EXP: 'false', WS_AUTH_AUDIENCE: 'odin-ws', WS_AUTH_ISSUER: 'https://issuer.example', WS_AUTH_CLOCK_TOLERANCE_S: '0' });
    expect(r.config.auth).toEqual({ secrets: [A], requireExp: false, audience: 'odin-ws', issuer: 'https://issuer.example', clockToleranceS: 0 });
    const p = problems({ WS_AUTH_SECRET_FILE: f, WS_AUTH_REQUIRE_EXP: 'maybe', WS_AUTH_AUDIENCE: 'two words', WS_AUTH_CLOCK_TOLERANCE_S: '3600' });
    expect(p).toContain('WS_AUTH_REQUIRE_EXP="maybe"');
    expect(p).toContain('WS_AUTH_AUDIENCE="two words"');
    expect(p).toContain('WS_AUTH_CLOCK_TOLERANCE_S="3600"');
  });
});

describe('auth config at start (the real server)', () => {
  const run = (env: Record<string, string>, args: string[] = []) =>
    spawnSync(process.execPath, [SERVER, '--lb-addr', '127.0.0.1:0', ...args], { env: { ...process.env, KAFKA_BROKERS: '', ...env }, encoding: 'utf8', timeout: 20_000 });

  it('exits 2 before listening on a short secret, in env, flag or file, without printing it', () => {
    for (const [env, args, name] of [
      [{ WS_AUTH_SECRET: SHORT }, [], 'WS_AUTH_SECRET'],
      [{}, ['--auth-secret', SHORT], '--auth-secret'],
      [{ WS_AUTH_SECRET_FILE: file(`${A}\n${SHORT}\n`) }, [], 'WS_AUTH_SECRET_FILE'],
    ] as const) {
      const r = run(env, [...args]);
      expect(r.status, name).toBe(2);
      expect(r.stderr, name).toContain(name);
      expect(r.stderr, name).toContain('at least 32 bytes');
      expect(r.stderr + r.stdout, name).not.toContain(SHORT);
      expect(r.stdout, name).not.toContain('listening');
    }
  });

  it('exits 2 on a missing secret file, naming it', () => {
    const missing = path.join(dir, 'missing-secret');
    const r = run({ WS_AUTH_SECRET_FILE: missing });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(missing);
    expect(r.stdout).not.toContain('listening');
  });
});
