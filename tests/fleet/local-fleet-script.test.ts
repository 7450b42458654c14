// scripts/local-fleet.mjs's pure parts: the HAProxy config (checked by the real haproxy -c), the
// stats parser, the CLI, and what `down` would stop; then the script itself, up, status and down.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { downPlan, groupName, haproxyConfig, nodeEnv, parseCli, parseStat } from '../../scripts/local-fleet.mjs';
import { testBrokers } from '../support/kafka.js';
import { ROOT, alive, until } from '../support/server.js';

const nodes = [
  { name: 'n1', port: 41001 },
  { name: 'n2', port: 41002 },
];

describe('local-fleet script', () => {
  it('writes an HAProxy config that haproxy accepts: TCP, GET /health checks expecting 200, one server per node', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-fleet-cfg-'));
    try {
      const cfg = haproxyConfig({ bind: { host: '127.0.0.1', port: 41000 }, nodes, socket: path.join(dir, 'h.sock'), check: { interMs: 500, fall: 2, rise: 2 } });
      expect(cfg).toMatch(/^\s*mode tcp$/m);
      expect(cfg).toMatch(/^\s*option httpchk GET \/health$/m);
      expect(cfg).toMatch(/^\s*http-check expect status 200$/m);
      expect(cfg).toMatch(/inter 500ms .*fall 2 rise 2/);
      expect(cfg.match(/^\s*server n\d 127\.0\.0\.1:4100\d check$/gm)).toHaveLength(2);
      fs.writeFileSync(path.join(dir, 'h.cfg'), cfg);
      const r = spawnSync('haproxy', ['-c', '-f', path.join(dir, 'h.cfg')], { encoding: 'utf8' });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads server states from `show stat`, skipping the frontend and backend rows', () => {
    const csv = '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\nws,FRONTEND,,,0,1,6000,1,0,0,0,0,0,,,,,OPEN\nnodes,n1,0,0,3,3,,3,0,0,,0,,0,0,0,0,UP\nnodes,n2,0,0,0,1,,1,0,0,,0,,0,0,0,0,DOWN\nnodes,BACKEND,0,0,3,3,600,4,0,0,0,0,,0,0,0,0,UP\n';
    expect(parseStat(csv)).toEqual([
      { proxy: 'nodes', server: 'n1', status: 'UP', sessions: 3 },
      { proxy: 'nodes', server: 'n2', status: 'DOWN', sessions: 0 },
    ]);
    expect(parseStat('')).toEqual([]);
  });

  it('gives every node its own consumer group and the drain notice', () => {
    const env = nodeEnv({ brokers: '127.0.0.1:9092', topics: ['a.trades'], group: groupName('f1', 'n2'), noticeMs: 1500, drainTimeoutMs: 5000, shards: 1 });
    expect(env).toMatchObject({ KAFKA_CONSUMER_GROUP: 'ws-fleet-f1-n2', WS_DRAIN_NOTICE_MS: '1500', KAFKA_TOPICS: 'a.trades' });
    expect(groupName('f1', 'n1')).not.toBe(groupName('f1', 'n2'));
  });

  it('parses up (the default) and down, and refuses bad flags with exit code 2', () => {
    expect(parseCli([])).toMatchObject({ command: 'up', nodes: 3, port: 3004 });
    expect(parseCli(['--nodes', '2', '--port', '0'])).toMatchObject({ command: 'up', nodes: 2, port: 0 });
    expect(parseCli(['down'])).toMatchObject({ command: 'down' });
    expect(parseCli(['status'])).toMatchObject({ command: 'status' });
    for (const bad of [['--nodes', '0'], ['--port', 'x'], ['sideways'], ['--what']]) {
      expect(() => parseCli(bad), bad.join(' ')).toThrow(expect.objectContaining({ exitCode: 2 }));
    }
  });

  it('stops the balancer first and the broker last', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-fleet-down-'));
    try {
      for (const n of ['kafka', 'n2', 'publisher', 'n1', 'haproxy']) fs.writeFileSync(path.join(dir, `${n}.pid`), '1\n');
      expect(downPlan(dir).map((p) => p.name)).toEqual(['haproxy', 'n1', 'n2', 'publisher', 'kafka']);
      expect(downPlan(path.join(dir, 'absent'))).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm run local:fleet', () => {
  it('starts the fleet in the foreground, reports every node UP, and `down` stops everything', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'odin-fleet-cli-'));
    const env = { ...process.env, ODIN_FLEET_DIR: dir, KAFKA_BROKERS: testBrokers() };
    const script = path.join(ROOT, 'scripts', 'local-fleet.mjs');
    const up = spawn(process.execPath, [script, '--port', '0', '--nodes', '2'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    up.stdout.on('data', (d) => (out += d));
    up.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
    try {
      const url = await until(() => /fleet up: (ws:\/\/127\.0\.0\.1:\d+\/ws)/.exec(out)?.[1], 'fleet up line', 90_000);
      const status = spawnSync(process.execPath, [script, 'status'], { env, encoding: 'utf8', timeout: 20_000 });
      expect(status.status, status.stdout + status.stderr).toBe(0);
      expect(status.stdout).toContain(url);
      expect(status.stdout.match(/haproxy UP/g)).toHaveLength(2);
      const pids = downPlan(dir).map((p) => Number(fs.readFileSync(p.file, 'utf8')));
      expect(pids).toHaveLength(4); // haproxy, n1, n2, publisher (the broker is not the fleet's)
      const down = spawnSync(process.execPath, [script, 'down'], { env, encoding: 'utf8', timeout: 60_000 });
      expect(down.status, down.stdout + down.stderr).toBe(0);
      // The foreground process sees the balancer go and stops the rest too: who stopped what varies.
      expect(down.stdout).toMatch(/stopped haproxy \(pid \d+\)/);
      for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
      expect(await exited).toBe(0); // the foreground process ends with its fleet
      expect(spawnSync(process.execPath, [script, 'status'], { env, encoding: 'utf8', timeout: 20_000 }).status).not.toBe(0);
    } finally {
      if (up.exitCode === null) up.kill('SIGINT');
      await exited;
      spawnSync(process.execPath, [script, 'down'], { env, timeout: 60_000 });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 150_000);
});
