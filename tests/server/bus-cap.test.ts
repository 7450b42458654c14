// The per-shard bus output cap with real processes: one shard stopped (SIGSTOP, as a hung event
// loop or a long GC pause) under a feed of several MB/s. The front's memory stays bounded, what is
// dropped for that shard is counted, its clients see the loss as a seq gap after SIGCONT, and the
// clients of the other shards lose nothing.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { fetchRetry, getHealth, startServer, until, type RunningServer } from '../support/server.js';

const CAP = 4 << 20;
// What the front may grow by beyond the cap while one shard is stopped: V8 heap growth and
// allocator slack under this feed, measured at 5-10 MB on this machine.
const SLACK = 16 << 20;
const TOKENS = Array.from({ length: 100 }, (_, i) => `T${i}`).join(',');

/** A lean client: per channel the last (epoch, seq), gaps within an epoch, and epoch changes. */
class Tracker {
  readonly ws: WebSocket;
  received = 0;
  gaps = 0;
  dups = 0;
  epochChanges = 0;
  closeCode: number | null = null;
  private readonly last = new Map<string, { epoch: string; seq: number }>();
  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('close', (c) => (this.closeCode = c));
    this.ws.on('message', (raw) => {
      const v = JSON.parse(raw.toString());
      for (const m of Array.isArray(v) ? v : [v]) {
        if (m.op) continue;
        this.received++;
        const prev = this.last.get(m.channel);
        if (prev && prev.epoch !== m.epoch) this.epochChanges++;
        else if (prev && m.seq !== prev.seq + 1) {
          if (m.seq <= prev.seq) this.dups++;
          else this.gaps += m.seq - prev.seq - 1;
        }
        this.last.set(m.channel, { epoch: m.epoch, seq: m.seq });
      }
    });
  }
  open() {
    return new Promise<void>((r, j) => {
      this.ws.once('open', () => r());
      this.ws.once('error', j);
    });
  }
  subscribe() {
    this.ws.send(JSON.stringify({ op: 'subscribe', channels: ['trades:*', 'prices:*'], id: 1 }));
  }
}

const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('bus output cap per shard (real processes)', () => {
  let srv: RunningServer;
  const clients: Tracker[] = [];
  beforeAll(async () => {
    srv = await startServer({
      env: {
        WS_SHARDS: '3',
        FEED_TOKENS: TOKENS,
        FEED_RATE: '10',
        FEED_PAYLOAD_BYTES: '2000',
        WS_BUS_SHARD_BUFFER_BYTES: String(CAP),
        WS_SHARD_LIVENESS_MS: '60000', // this test holds a shard stopped for 10 s: supervision is tests/server/supervision.test.ts
        WS_CLIENT_BUFFER_BYTES: String(256 << 20), // the test's own clients must never be the slow ones
        // The recovery window is the front's other bounded store (WS_RECOVERY_MAX_BYTES, its own
        // tests): off here, so what is measured is the bus alone.
        WS_RECOVERY_WINDOW_MS: '0',
      },
    });
  });
  afterAll(async () => {
    for (const c of clients) c.ws.terminate();
    await srv?.stop();
  });

  it('bounds the front, counts the drops, and shows the stopped shard clients a gap; the others none', async () => {
    // The kernel picks each client's shard: open enough that every shard has some, then tell the
    // stopped shard's clients apart by who stops receiving.
    for (let i = 0; i < 9; i++) {
      const c = new Tracker(srv.wsUrl);
      await c.open();
      clients.push(c);
    }
    const { body: placed } = await until(async () => {
      const h = await getHealth(srv.healthUrl);
      return h.body.system.total_connections === 9 ? h : null;
    }, 'every client counted');
    const v = placed.shards.findIndex((x: { connections: number }) => x.connections > 0);
    for (const c of clients) c.subscribe();
    await until(() => clients.every((c) => c.received > 2000), 'the feed reaches every client', 20_000);
    await sleep(3000); // the front's heap settles at this rate
    const { body: h0 } = await getHealth(srv.healthUrl);
    const victim = h0.shards[v].pid as number;
    const front = srv.proc.pid!;
    const before = rssBytes(front);
    let peak = before;
    process.kill(victim, 'SIGSTOP');
    let resumed = false;
    let stopped: Tracker[] = [];
    try {
      const end = Date.now() + 10_000;
      await sleep(500);
      const marks = clients.map((c) => c.received);
      while (Date.now() < end) {
        peak = Math.max(peak, rssBytes(front));
        await sleep(100);
      }
      stopped = clients.filter((c, i) => c.received === marks[i]);
      console.log(`front RSS while shard ${v} is stopped: +${Math.round((peak - before) / 104857.6) / 10} MB`);
      expect(peak - before).toBeLessThan(CAP + SLACK);
      const { body: h1 } = await getHealth(srv.healthUrl);
      expect(stopped).toHaveLength(h0.shards[v].connections);
      const s1 = h1.bus.shards.find((s: { id: number }) => s.id === v);
      expect(s1.dropped_bytes).toBeGreaterThan(0);
      expect(s1.dropped_messages).toBeGreaterThan(0);
      expect(s1.over_cap_since_ms).toBeTypeOf('number');
      expect(s1.pending_bytes).toBeLessThanOrEqual(CAP + (1 << 20));
      // A shard the kernel gave no client has no subscriber, so the bus never wrote to it and does
      // not list it: nothing was dropped for it either.
      for (const id of [0, 1, 2].filter((x) => x !== v)) expect(h1.bus.shards.find((s: { id: number }) => s.id === id)?.dropped_bytes ?? 0).toBe(0);
      const metrics = await (await fetchRetry(srv.metricsUrl)).text();
      expect(metrics).toMatch(new RegExp(`odin_ws_bus_dropped_bytes_total\\{shard="${v}"\\} [1-9]`));
      process.kill(victim, 'SIGCONT');
      resumed = true;
    } finally {
      if (!resumed) process.kill(victim, 'SIGCONT');
    }
    const at = stopped.map((c) => c.received);
    await until(() => stopped.every((c, i) => c.received > at[i] + 2000), 'the resumed shard delivers again', 20_000);
    await sleep(1000);
    const after = rssBytes(front);
    const mb = (b: number) => Math.round((b / 1048576) * 10) / 10;
    console.log(`front RSS MB: before ${mb(before)} peak ${mb(peak)} after ${mb(after)}; growth ${mb(peak - before)} (cap ${mb(CAP)} + slack ${mb(SLACK)})`);
    expect(peak - before).toBeLessThan(CAP + SLACK);
    for (const c of stopped) {
      expect(c.gaps).toBeGreaterThan(0); // told, never silent
      expect(c.closeCode).toBeNull();
    }
    for (const c of clients.filter((x) => !stopped.includes(x))) expect({ gaps: c.gaps, dups: c.dups, closed: c.closeCode }).toEqual({ gaps: 0, dups: 0, closed: null });
    const { body: h2 } = await getHealth(srv.healthUrl);
    expect(h2.bus.shards.find((s: { id: number }) => s.id === v).over_cap_since_ms).toBeNull();
  }, 90_000);
});
