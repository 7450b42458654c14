// The bundled publisher (dist/publisher.mjs, built by global-setup) against the real broker.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { createTopics, testBrokers, uniqueName, waitFor, withAdmin } from '../support/kafka.js';
import { makePool, poolConfig, RecordingDispatch } from './helpers.js';

const PUBLISHER = path.resolve(import.meta.dirname, '../../dist/publisher.mjs');

interface Running {
  proc: ChildProcess;
  logs: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
}

function runPublisher(args: string[], env: Record<string, string> = {}): Running {
  const proc = spawn(process.execPath, [PUBLISHER, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  readline.createInterface({ input: proc.stdout! }).on('line', (l) => {
    try {
      logs.push(JSON.parse(l));
    } catch {
      logs.push({ raw: l });
    }
  });
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, logs, stderr: () => err, exited };
}

const started: Running[] = [];
afterEach(async () => {
  for (const r of started.splice(0)) {
    if (r.proc.exitCode === null) r.proc.kill('SIGKILL');
    await r.exited;
  }
});

async function statusOf(r: Running) {
  await waitFor(() => r.logs.some((l) => l.msg === 'publisher listening'), 'publisher listening');
  const port = r.logs.find((l) => l.msg === 'publisher listening')!.port as number;
  return async () => (await fetch(`http://127.0.0.1:${port}/status`)).json() as Promise<Record<string, any>>;
}

describe('publisher', () => {
  it('publishes keyed JSON records with a contiguous seq per channel, counts them on /status, and stops on SIGTERM', async () => {
    const brokers = testBrokers();
    const prefix = uniqueName('pub');
    const topics = [`${prefix}.trades`, `${prefix}.prices`];
    await createTopics({ brokers, topics, partitions: 3 });
    const r = runPublisher(['--port', '0', '--host', '127.0.0.1', '--rate', '400', '--tokens', 'AAA,BBB,CCC', '--topics', topics.join(',')], {
      KAFKA_BROKERS: brokers,
    });
    started.push(r);
    const status = await statusOf(r);
    await waitFor(async () => (await status()).sent >= 200, '200 records sent');
    const s = await status();
    expect(s).toMatchObject({ rate: 400, errors: 0, broker: { connected: true }, tokens: 3, topics });
    expect(typeof s.uptime_s).toBe('number');
    const port = r.logs.find((l) => l.msg === 'publisher listening')!.port as number;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`odin_publisher_records_sent_total\\{topic="${prefix}.trades"\\} [1-9]`));

    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    const finalSent = r.logs.find((l) => l.msg === 'publisher stopped')!.sent as number;

    // Everything the broker acknowledged is in the topics, and every record is a valid message.
    const inTopics = await withAdmin(brokers, async (admin) => {
      let n = 0;
      for (const t of topics) for (const p of await admin.fetchTopicOffsets(t)) n += Number(p.high);
      return n;
    });
    expect(inTopics).toBe(finalSent);
    const dispatch = new RecordingDispatch();
    const { pool } = makePool(poolConfig(brokers, prefix), dispatch);
    await pool.start();
    try {
      await waitFor(() => dispatch.messages.length >= finalSent, 'publisher records consumed');
      expect(pool.health().rejected_total).toBe(0);
    } finally {
      await pool.stop();
    }
    const seqByChannel = new Map<string, number[]>();
    for (const m of dispatch.messages) {
      const v = JSON.parse(m.data) as { seq: number; ts: number; token: string };
      expect(v.token).toBe(m.token);
      expect(v.ts).toBe(m.ts);
      const k = `${m.stream}:${m.token}`;
      seqByChannel.set(k, [...(seqByChannel.get(k) ?? []), v.seq]);
    }
    expect([...seqByChannel.keys()].sort()).toEqual(['prices:AAA', 'prices:BBB', 'prices:CCC', 'trades:AAA', 'trades:BBB', 'trades:CCC']);
    for (const seqs of seqByChannel.values()) expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });

  it('keeps running and reports the broker as down when nothing answers', async () => {
    // A port nobody listens on (taken from the OS, then released).
    const net = await import('node:net');
    const dead = await new Promise<number>((res) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as import('node:net').AddressInfo).port;
        s.close(() => res(p));
      });
    });
    const r = runPublisher(['--port', '0', '--host', '127.0.0.1', '--rate', '50', '--brokers', `127.0.0.1:${dead}`]);
    started.push(r);
    const status = await statusOf(r);
    await waitFor(async () => (await status()).errors > 0, 'failed sends counted');
    expect(await status()).toMatchObject({ sent: 0, broker: { connected: false } });
    expect(r.proc.exitCode).toBeNull();
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  });

  it('exits 2 with a message naming each bad setting', async () => {
    const r = runPublisher(['--rate=-5', '--tokens', 'ok,not ok'], { KAFKA_BROKERS: 'nohostport' });
    started.push(r);
    expect(await r.exited).toBe(2);
    expect(r.stderr()).toContain('PUBLISHER_RATE (--rate)');
    expect(r.stderr()).toContain('PUBLISHER_TOKENS (--tokens)');
    expect(r.stderr()).toContain('KAFKA_BROKERS (--brokers)');
  });
});
