// The benchmark plumbing: the scenario dispatcher and the plain-ws baseline server it compares
// odin-ws against (it must speak protocol v1 and feed like the embedded feed, or the comparison
// is meaningless).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { listScenarios, scenarioCommand } from '../../scripts/bench.mjs';
import { TestClient, assertNoGaps } from '../support/client.js';
import { until } from '../support/server.js';
import { ROOT } from './run-loadtest.js';

describe('bench dispatcher', () => {
  it('finds scenarios by file name in bench/ and runs .mjs with node, .ts through tsx', () => {
    expect(listScenarios()).toContain('fanout');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'odin-bench-'));
    writeFileSync(path.join(dir, 'kafka.ts'), '');
    writeFileSync(path.join(dir, 'plain.mjs'), '');
    writeFileSync(path.join(dir, 'types.d.ts'), '');
    expect(listScenarios(dir)).toEqual(['kafka', 'plain']);
    expect(scenarioCommand('kafka', ['--x'], dir)).toEqual({ cmd: process.execPath, args: ['--import', 'tsx', path.join(dir, 'kafka.ts'), '--x'] });
    expect(scenarioCommand('plain', [], dir)?.args).toEqual([path.join(dir, 'plain.mjs')]);
    expect(scenarioCommand('nope', [], dir)).toBeNull();
    expect(scenarioCommand('../etc', [], dir)).toBeNull();
  });
});

describe('plain ws baseline server', () => {
  let proc: ChildProcess | null = null;
  afterAll(() => {
    proc?.kill('SIGTERM');
  });

  it('speaks protocol v1 with the embedded feed shape: per-channel seq, ts, padded payload, one message per frame', async () => {
    proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/baseline/ws-baseline.ts')], {
      env: { ...process.env, FEED_TOKENS: 'AAA,BBB', FEED_STREAMS: 'trades', FEED_RATE: '20', FEED_PAYLOAD_BYTES: '200' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const port = await new Promise<number>((resolve) => {
      readline.createInterface({ input: proc!.stdout! }).on('line', (l) => {
        const r = JSON.parse(l);
        if (r.msg === 'listening') resolve(r.port);
      });
    });
    const c = await TestClient.connect(`ws://127.0.0.1:${port}/ws`);
    const both = await TestClient.connect(`ws://127.0.0.1:${port}/ws`);
    expect(await c.subscribe(['trades:*'])).toMatchObject({ op: 'subscribed', channels: ['trades:*'] });
    await both.subscribe(['trades:AAA', 'trades:*']);
    await until(() => c.messages.length >= 20 && both.messages.length >= 20, 'baseline deliveries');
    expect(new Set(c.messages.map((m) => m.channel))).toEqual(new Set(['trades:AAA', 'trades:BBB']));
    expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });
    expect(assertNoGaps(both.messages)).toEqual({ gaps: 0, dups: 0 }); // exact + wildcard: once
    expect(c.frames - c.replies.length).toBe(c.messages.length); // send() per client per message, no coalescing
    // Same payload shape and padding rule as the odin-ws embedded feed (pad = bytes - 90).
    expect(Object.keys(c.messages[0].data)).toEqual(['price', 'size', 'side', 'pad']);
    expect(String(c.messages[0].data.pad)).toHaveLength(110);
    expect((await c.request({ op: 'nope' })).code).toBe('UNKNOWN_OP');
    const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
    expect(health.system.total_connections).toBe(2);
    expect(health.shards).toEqual([expect.objectContaining({ id: 0, connections: 2 })]);
    c.close();
    both.close();
  });
});
