// The soak script's pure parts (the soak itself runs minutes and is not in CI: `npm run soak`).
import * as wsLib from 'ws';
import { describe, expect, it } from 'vitest';
import { clientFrame, judge, parseSoakArgs, procStats } from '../../scripts/soak.mjs';

// ws exports its frame parser at runtime; @types/ws does not declare it.
type FrameParser = { on(ev: 'message', fn: (d: Buffer) => void): void; write(b: Buffer): void };
const { Receiver } = wsLib as unknown as { Receiver: new (o: object) => FrameParser };

describe('soak script', () => {
  it('parses its flags and names every invalid one', () => {
    const ok = parseSoakArgs(['--minutes', '1', '--shards', '2']);
    expect(ok).toMatchObject({ ok: true, opts: { minutes: 1, shards: 2, witnesses: 10, rssToleranceMb: 64 } });
    const bad = parseSoakArgs(['--minutes', '0', '--churn', 'lots']);
    expect(bad.ok).toBe(false);
    const text = !bad.ok ? bad.problems.join('\n') : '';
    expect(text).toContain('--minutes="0"');
    expect(text).toContain('--churn="lots"');
    const unknown = parseSoakArgs(['--hours', '1']);
    expect(!unknown.ok && unknown.problems[0]).toMatch(/--hours.*accepted flags: --minutes/);
  });

  it('fails on any fd difference and on RSS growth past the tolerance', () => {
    const base = { front: { rssMb: 80, fds: 26 }, shard0: { rssMb: 70, fds: 25 } };
    expect(judge(base, { front: { rssMb: 100, fds: 26 }, shard0: { rssMb: 90, fds: 25 } }, { rssToleranceMb: 64 })).toEqual({ ok: true, problems: [], rssGrowthMb: 40 });
    const leak = judge(base, { front: { rssMb: 80, fds: 27 }, shard0: { rssMb: 70, fds: 25 } }, { rssToleranceMb: 64 });
    expect(leak.ok).toBe(false);
    expect(leak.problems).toEqual(['front: 27 fds, baseline 26']);
    const grown = judge(base, { front: { rssMb: 200, fds: 26 }, shard0: { rssMb: 70, fds: 25 } }, { rssToleranceMb: 64 });
    expect(grown.problems[0]).toMatch(/RSS grew 120 MiB/);
    expect(judge(base, { front: base.front, shard0: null }, { rssToleranceMb: 64 }).problems).toEqual(['shard0: gone (pid changed or exited)']);
  });

  it('reads RSS and open descriptors from /proc', () => {
    const s = procStats(process.pid);
    expect(s.rssMb).toBeGreaterThan(1);
    expect(s.fds).toBeGreaterThan(2);
  });

  it('builds masked client frames a WebSocket server decodes', () => {
    const got: string[] = [];
    const r = new Receiver({ isServer: true, maxPayload: 1 << 20 });
    r.on('message', (d: Buffer) => got.push(d.toString()));
    for (const n of [0, 5, 125, 126, 70_000]) r.write(clientFrame(1, 'a'.repeat(n)));
    expect(got.map((s) => s.length)).toEqual([0, 5, 125, 126, 70_000]);
  });
});
