// local:up / local:health / local:down with the real server (embedded feed, no broker), in a
// state dir of the test's own so a developer's local stack is never touched.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runScript } from './support/fakes.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-local-'));
const env = { ...process.env, ODIN_LOCAL_DIR: dir };
const local = (...args: string[]) => runScript('scripts/local.mjs', args, env, 120_000);
// A zombie still answers kill(pid, 0); a live process has a command line.
const alive = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').length > 0;
  } catch {
    return false;
  }
};

describe('local stack', () => {
  afterAll(async () => {
    await local('down', '--keep-kafka');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('up starts the server detached with a pid file, health reads it, down stops it', async () => {
    const up = await local('up', '--no-kafka', '--port', '0');
    expect(up.code, up.stderr).toBe(0);
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
    const pid = Number(fs.readFileSync(path.join(dir, 'server.pid'), 'utf8'));
    expect(state.server.pid).toBe(pid);
    expect(alive(pid)).toBe(true);
    expect(up.stdout).toContain(`up: ${state.server.ws_url}`);

    // A second up is a no-op while it runs.
    const again = await local('up', '--no-kafka', '--port', '0');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`already running: ${state.server.ws_url} (pid ${pid})`);

    const healthy = await local('health');
    expect(healthy.code, healthy.stdout + healthy.stderr).toBe(0);
    expect(healthy.stdout).toMatch(/^OK\s+server \/health/m);
    expect(healthy.stdout).toMatch(/^shard\s+pid\s+up/m);

    // The server dies: health says so and exits non-zero.
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    const down = await local('health');
    expect(down.code).toBe(1);
    expect(down.stdout).toMatch(/^DOWN\s+server \/health\s+unreachable/m);

    const stopped = await local('down', '--keep-kafka');
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, 'server.pid'))).toBe(false);
    const after = await local('health');
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('nothing is running locally');
  });

  it('down stops a running server by its pid file', async () => {
    const up = await local('up', '--no-kafka', '--port', '0');
    expect(up.code, up.stderr).toBe(0);
    const pid = Number(fs.readFileSync(path.join(dir, 'server.pid'), 'utf8'));
    const stopped = await local('down', '--keep-kafka');
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain(`stopped server (pid ${pid})`);
    expect(alive(pid)).toBe(false);
  });
});
