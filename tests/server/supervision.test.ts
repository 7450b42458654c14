// Supervision with real processes; the hook for a hang is SIGSTOP (what a blocked event loop, a
// runaway synchronous loop or a long GC pause looks like from outside).
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TestClient, assertNoGaps } from '../support/client.js';
import { alive, fetchRetry, getHealth, listeners, startServer, until, type RunningServer } from '../support/server.js';

const CAP = 4 << 20;
// What the front may grow by beyond the bus cap while one shard is stopped (heap growth and
// allocator slack under this feed; the bus cap test measured 5-10 MB).
const SLACK = 16 << 20;
const FEED = {
  WS_SHARDS: '3',
  FEED_TOKENS: Array.from({ length: 100 }, (_, i) => `T${i}`).join(','),
  FEED_RATE: '10',
  FEED_PAYLOAD_BYTES: '2000', // 200 channels x 10/s x 2 KB: ~4 MB/s to every shard with a wildcard subscriber
  WS_BUS_SHARD_BUFFER_BYTES: String(CAP),
  WS_CLIENT_BUFFER_BYTES: String(256 << 20),
  // The recovery window is the front's other bounded store (WS_RECOVERY_MAX_BYTES; its own tests):
  // off here, so what is measured is what one stopped shard costs the front.
  WS_RECOVERY_WINDOW_MS: '0',
};
const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Subscribers to every channel that only count what they get: the several MB/s the bus must cap. */
async function heavy(srv: RunningServer, n: number): Promise<WebSocket[]> {
  const out: WebSocket[] = [];
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(srv.wsUrl);
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    ws.send(JSON.stringify({ op: 'subscribe', channels: ['trades:*', 'prices:*'] }));
    ws.on('error', () => {});
    out.push(ws);
  }
  return out;
}

/** The shard that receives the most bus messages. */
function busiest(health: { shards: Array<{ bus_messages: number }> }): number {
  let best = 0;
  health.shards.forEach((s, i) => {
    if (s.bus_messages > health.shards[best].bus_messages) best = i;
  });
  return best;
}

async function subscribers(srv: RunningServer, n: number): Promise<TestClient[]> {
  const cs = await Promise.all(Array.from({ length: n }, () => TestClient.connect(srv.wsUrl)));
  for (const c of cs) await c.subscribe(['trades:T1', 'prices:T2']);
  return cs;
}

describe('supervision', () => {
  it('declares a stopped shard hung within the liveness bound, kills and restarts it; the front stays bounded; new clients are served', async () => {
    const srv = await startServer({ env: { ...FEED, WS_SHARD_LIVENESS_MS: '2000' } });
    const load = await heavy(srv, 9);
    try {
      const cs = await subscribers(srv, 12);
      await until(() => cs.every((c) => c.messages.length >= 5), 'every client receiving');
      await sleep(2000); // the front's heap settles at this rate
      const h0 = (await getHealth(srv.healthUrl)).body;
      const v = busiest(h0); // a shard with wildcard subscribers: its bus output is the heavy one
      const victim = h0.shards[v];
      const before = rss(srv.proc.pid!);
      let peak = before;
      const stoppedAt = Date.now();
      process.kill(victim.pid, 'SIGSTOP');
      const after = await until(async () => {
        peak = Math.max(peak, rss(srv.proc.pid!));
        const { body } = await getHealth(srv.healthUrl);
        const s = body.shards[v];
        return s.hangs === 1 && s.up && s.pid !== victim.pid ? body : null;
      }, 'the hung shard killed and restarted', 20_000, 100);
      const hungLine = srv.logs.find((l) => l.msg === 'shard hung; killing it');
      expect(hungLine).toMatchObject({ shard: v, pid: victim.pid });
      console.log(`hung shard: detected ${Number(hungLine!.time ? Date.parse(String(hungLine!.time)) - stoppedAt : NaN)} ms after SIGSTOP; front RSS +${((peak - before) / 1048576).toFixed(1)} MB`);
      expect(alive(victim.pid)).toBe(false);
      expect(after.shards[v].crashes).toBe(0);
      expect(after.shards.reduce((a: number, s: { restarts: number }) => a + s.restarts, 0)).toBe(1);
      expect(peak - before).toBeLessThan(CAP + SLACK);

      // Its clients were cut (1006) and may reconnect; the others never saw a gap.
      const lost = cs.filter((c) => c.closeCode !== null);
      expect(lost.length).toBe(victim.connections - load.filter((w) => w.readyState !== WebSocket.OPEN).length);
      const kept = cs.filter((c) => c.closeCode === null);
      const marks = kept.map((c) => c.messages.length);
      await until(() => kept.every((c, i) => c.messages.length > marks[i] + 5), 'the other shards keep delivering');
      for (const c of kept) expect(assertNoGaps(c.messages)).toEqual({ gaps: 0, dups: 0 });

      // Every new client after the detection completes its handshake and receives.
      const fresh = await subscribers(srv, 12);
      await until(() => fresh.every((c) => c.messages.length >= 3), 'every new client served');
      const metrics = await (await fetchRetry(srv.metricsUrl)).text();
      expect(metrics).toMatch(new RegExp(`odin_ws_shard_restarts_total\\{shard="${v}",cause="hang"\\} 1`));
      for (const c of [...cs, ...fresh]) c.close();
    } finally {
      for (const ws of load) ws.terminate();
      await srv.stop();
    }
  }, 90_000);

  it('a shard that never gets to listening after a restart is killed and started again', async () => {
    const srv = await startServer({ env: { ...FEED, WS_SHARDS: '2', WS_SHARD_LIVENESS_MS: '1000' } });
    try {
      const h0 = (await getHealth(srv.healthUrl)).body;
      const old = h0.shards.map((s: { pid: number }) => s.pid);
      const front = srv.proc.pid!;
      const children = () => fs.readFileSync(`/proc/${front}/task/${front}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      process.kill(old[0], 'SIGKILL');
      // Stop its replacement as soon as it has exec'd: long before Node has loaded the bundle. Not
      // earlier: libuv's spawn waits (blocking) for the child's exec, so a child stopped between
      // fork and exec froze the whole front (no timers, no /health), one run in four.
      const cmdline = (pid: number) => {
        try {
          return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          return '';
        }
      };
      const frontCmd = cmdline(front);
      let stuck = 0;
      await until(() => {
        const p = children().find((c) => !old.includes(c)) ?? 0;
        const cmd = p ? cmdline(p) : '';
        if (!cmd || cmd === frontCmd) return 0;
        process.kill(p, 'SIGSTOP');
        return (stuck = p);
      }, 'the replacement forked and executed', 10_000, 1);
      try {
        const h = await until(async () => {
          const { body } = await getHealth(srv.healthUrl);
          return body.shards[0].up && body.shards[0].pid !== stuck ? body : null;
        }, 'a third shard 0 up', 30_000, 100);
        expect(srv.logs.find((l) => l.msg === 'shard did not start; killing it')).toMatchObject({ shard: 0, pid: stuck });
        expect(alive(stuck)).toBe(false);
        expect(h.shards[0].hangs).toBe(1);
        const c = await TestClient.connect(srv.wsUrl);
        expect((await c.request({ op: 'ping' })).op).toBe('pong');
        c.close();
      } finally {
        if (alive(stuck)) process.kill(stuck, 'SIGCONT');
      }
    } finally {
      await srv.stop();
    }
  }, 60_000);

  it('a shard starved in pulses shorter than the bound is not restarted: its output stays capped, drops are counted, its clients see in-order data or a gap, never silence', async () => {
    const srv = await startServer({ env: { ...FEED, WS_SHARD_LIVENESS_MS: '3000' } });
    const load = await heavy(srv, 9);
    try {
      const cs = await subscribers(srv, 12);
      await until(() => cs.every((c) => c.messages.length >= 5), 'every client receiving');
      const h0 = (await getHealth(srv.healthUrl)).body;
      const v = busiest(h0); // a shard with wildcard subscribers: its bus output is the heavy one
      for (let i = 0; i < 4; i++) {
        process.kill(h0.shards[v].pid, 'SIGSTOP');
        await sleep(1500); // ~6 MB of feed for it: over the 4 MiB cap, under the 3 s bound
        process.kill(h0.shards[v].pid, 'SIGCONT');
        await sleep(1000);
      }
      const h1 = (await getHealth(srv.healthUrl)).body;
      expect(h1.shards[v].pid).toBe(h0.shards[v].pid);
      expect(h1.shards.reduce((a: number, s: { restarts: number }) => a + s.restarts, 0)).toBe(0);
      const bus = h1.bus.shards.find((s: { id: number }) => s.id === v);
      expect(bus.dropped_bytes).toBeGreaterThan(0);
      expect(bus.pending_bytes).toBeLessThanOrEqual(CAP + (1 << 20));
      const marks = cs.map((c) => c.messages.length);
      await until(() => cs.every((c, i) => c.messages.length > marks[i] + 3), 'every client receiving again');
      for (const c of cs) {
        expect(c.closeCode).toBeNull();
        expect(assertNoGaps(c.messages).dups).toBe(0); // gaps are allowed (and visible), duplicates never
      }
      for (const c of cs) c.close();
    } finally {
      for (const ws of load) ws.terminate();
      await srv.stop();
    }
  }, 90_000);

  it('when the front is SIGKILLed every shard exits within about a second and the port is free', async () => {
    const srv = await startServer({ env: { WS_SHARDS: '3' } });
    const { body } = await getHealth(srv.healthUrl);
    const pids: number[] = body.shards.map((s: { pid: number }) => s.pid);
    const ws = new WebSocket(srv.wsUrl);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    await new Promise((r) => ws.once('open', r));
    srv.proc.kill('SIGKILL');
    const t0 = Date.now();
    await until(() => pids.every((p) => !alive(p)), 'every shard gone', 5_000, 20);
    console.log(`front SIGKILLed: shards gone after ${Date.now() - t0} ms`);
    expect(Date.now() - t0).toBeLessThan(3_000); // bound of the test, not a timing claim: "about a second" is in the note
    expect([1001, 1006]).toContain(await closed);
    expect(listeners(srv.port)).toBe(0);
    await srv.stop();
  });
});
