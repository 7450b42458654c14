// Continuity on the real broker: clients that re-subscribe with `since` lose nothing and get
// nothing twice across server restarts (SIGTERM, and SIGKILL of the whole process group) and
// across a move to another server process reading the same topics.
import { Kafka, logLevel, Partitioners, type Producer } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RecoveringClient } from '../support/recovering-client.js';
import { createTopics, testBrokers, uniqueName } from '../support/kafka.js';
import { getHealth, startServer, until, type RunningServer } from '../support/server.js';

const TOKENS = ['AAA', 'BBB', 'CCC', 'DDD'];
const CHANNELS = TOKENS.map((t) => `trades:${t}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A paced producer: every tick one record per token, values numbered per token from 0. */
class Ticker {
  readonly sent = new Map<string, number>(TOKENS.map((t) => [t, 0]));
  private timer: NodeJS.Timeout | null = null;
  private inflight: Promise<unknown> = Promise.resolve();
  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
  ) {}
  start(everyMs = 25): void {
    this.timer = setInterval(() => {
      const messages = TOKENS.map((t) => {
        const n = this.sent.get(t)!;
        this.sent.set(t, n + 1);
        return { key: t, value: JSON.stringify({ n }) };
      });
      // One send at a time, so the records of a key stay in order.
      this.inflight = this.inflight.then(() => this.producer.send({ topic: this.topic, acks: -1, messages }));
    }, everyMs);
  }
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.inflight;
  }
}

async function kafkaServer(brokers: string, prefix: string, group: string, port = 0, detached = false): Promise<RunningServer> {
  const srv = await startServer({
    env: { WS_SHARDS: '2', KAFKA_BROKERS: brokers, KAFKA_TOPICS: `${prefix}.trades,${prefix}.prices`, KAFKA_CONSUMER_GROUP: group, WS_RECONNECT_WINDOW_MS: '300' },
    args: ['--lb-addr', `127.0.0.1:${port}`],
    detached,
  });
  await until(async () => (await getHealth(srv.healthUrl)).body.kafka?.connected === true, 'kafka connected', 60_000);
  return srv;
}

/** Every client has, per channel, exactly the values published, once each, in order. */
function expectComplete(clients: RecoveringClient[], ticker: Ticker): void {
  for (const c of clients) {
    const got = Object.fromEntries(CHANNELS.map((ch) => [ch, (c.got.get(ch) ?? []).map((m) => m.data.n)]));
    const want = Object.fromEntries(TOKENS.map((t) => [`trades:${t}`, Array.from({ length: ticker.sent.get(t)! }, (_, i) => i)]));
    expect(got).toEqual(want);
    expect({ duplicates: c.duplicates, seqGaps: c.seqGaps }).toEqual({ duplicates: 0, seqGaps: 0 });
  }
}

const caughtUp = (clients: RecoveringClient[], ticker: Ticker) => () =>
  clients.every((c) => TOKENS.every((t) => (c.got.get(`trades:${t}`)?.length ?? 0) >= ticker.sent.get(t)!));

/** Waits for every client to have every message; on timeout, says what each one has. */
async function allDelivered(clients: RecoveringClient[], ticker: Ticker): Promise<void> {
  try {
    await until(caughtUp(clients, ticker), 'every client has every message', 60_000);
  } catch (e) {
    const sent = Object.fromEntries(ticker.sent);
    const behind = clients.filter((c) => !caughtUp([c], ticker)());
    const have = behind.map((c) => ({
      got: Object.fromEntries(CHANNELS.map((ch) => [ch, c.got.get(ch)?.length ?? 0])),
      dups: c.duplicates,
      gaps: c.seqGaps,
      gapLog: c.gapLog,
      closes: c.closes,
      outcomes: c.outcomes.map((o) => JSON.stringify(o.recovery ?? o.code ?? o.op)),
    }));
    throw new Error(`${(e as Error).message}: sent ${JSON.stringify(sent)}; ${behind.length} of ${clients.length} behind: ${JSON.stringify(have.slice(0, 3))}`);
  }
}

describe('continuity over Kafka (real processes)', () => {
  const brokers = testBrokers();
  let producer: Producer;
  const servers: RunningServer[] = [];
  const clients: RecoveringClient[] = [];

  beforeAll(async () => {
    producer = new Kafka({ clientId: 'continuity-test', brokers: [brokers], logLevel: logLevel.NOTHING }).producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.stop();
    for (const s of servers.splice(0)) {
      if (s.proc.exitCode === null && s.proc.signalCode === null) {
        try {
          process.kill(-s.proc.pid!, 'SIGKILL');
        } catch {
          await s.stop();
        }
      }
    }
  });
  afterAll(async () => {
    await producer?.disconnect();
  });

  async function setup(n: number) {
    const prefix = uniqueName('cont');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`] });
    return { prefix, group: uniqueName('ws-cont'), ticker: new Ticker(producer, `${prefix}.trades`), n };
  }

  it('three SIGTERM restarts: every recovering client ends with every message once, in order', async () => {
    const { prefix, group, ticker, n } = await setup(12);
    let srv = await kafkaServer(brokers, prefix, group, 0, true);
    servers.push(srv);
    const port = srv.port;
    for (let i = 0; i < n; i++) clients.push(new RecoveringClient(() => `ws://127.0.0.1:${port}/ws`, CHANNELS));
    await Promise.all(clients.map((c) => c.start()));
    ticker.start();
    for (let r = 0; r < 3; r++) {
      await sleep(1500);
      await srv.stop();
      srv = await kafkaServer(brokers, prefix, group, port, true);
      servers.push(srv);
    }
    await sleep(1000);
    await ticker.stop();
    await allDelivered(clients, ticker);
    expectComplete(clients, ticker);
    for (const c of clients) {
      expect(c.closes.filter((x) => x === 1001)).toHaveLength(3); // told, each time
      const recovered = c.outcomes.filter((o) => o.op === 'subscribed' && o.recovery);
      expect(recovered.length).toBeGreaterThanOrEqual(3);
      for (const o of recovered) for (const v of Object.values(o.recovery as object)) expect(v).not.toHaveProperty('unrecoverable');
    }
  }, 180_000);

  it('SIGKILL of the whole server (front and shards): the restarted server rebuilds the window from Kafka', async () => {
    const { prefix, group, ticker, n } = await setup(8);
    const srv = await kafkaServer(brokers, prefix, group, 0, true);
    servers.push(srv);
    const port = srv.port;
    for (let i = 0; i < n; i++) clients.push(new RecoveringClient(() => `ws://127.0.0.1:${port}/ws`, CHANNELS));
    await Promise.all(clients.map((c) => c.start()));
    ticker.start();
    await sleep(1500);
    const exited = new Promise((r) => srv.proc.once('exit', r));
    process.kill(-srv.proc.pid!, 'SIGKILL');
    await exited;
    await sleep(500); // published while no server runs
    servers.push(await kafkaServer(brokers, prefix, group, port, true));
    await sleep(1500);
    await ticker.stop();
    try {
      await allDelivered(clients, ticker);
    } catch (e) {
      const h = (await getHealth(servers[servers.length - 1].healthUrl)).body;
      console.log(JSON.stringify({ bus: h.bus.shards, rec: h.recovery, kafka: h.kafka, shards: h.shards.map((x: any) => x.slow_consumers) }));
      throw e;
    }
    expectComplete(clients, ticker);
  }, 120_000);

  it('a client moved to another server reading the same topics resumes with no loss and no duplicate', async () => {
    const { prefix, ticker, n } = await setup(8);
    const a = await kafkaServer(brokers, prefix, uniqueName('ws-a'));
    const b = await kafkaServer(brokers, prefix, uniqueName('ws-b'));
    servers.push(a, b);
    let target = a;
    for (let i = 0; i < n; i++) clients.push(new RecoveringClient(() => target.wsUrl, CHANNELS));
    await Promise.all(clients.map((c) => c.start()));
    ticker.start();
    await sleep(1500);
    target = b;
    for (const c of clients) c.bounce();
    await sleep(1500);
    await ticker.stop();
    await allDelivered(clients, ticker);
    expectComplete(clients, ticker);
    for (const c of clients) {
      expect(c.connects).toBe(2);
      const moved = c.outcomes.filter((o) => o.op === 'subscribed' && o.recovery);
      expect(moved).toHaveLength(1);
      for (const v of Object.values(moved[0].recovery as object)) expect(v).toHaveProperty('replayed');
    }
    // The same record has the same position on both servers, whatever their numbering.
    const posOf = (srv: RunningServer) =>
      new Promise<string[]>((resolve) => {
        const c = new RecoveringClient(() => srv.wsUrl, ['trades:AAA'], { last: true });
        clients.push(c);
        void c.start();
        void until(() => (c.got.get('trades:AAA')?.length ?? 0) > 0, 'last value').then(() => resolve([c.lastPos('trades:AAA')!, String(c.got.get('trades:AAA')![0].data.n)]));
      });
    expect(await posOf(a)).toEqual(await posOf(b));
  }, 120_000);

  it('beyond the window: an explicit out_of_window, never a silent gap; the last value before live data', async () => {
    const prefix = uniqueName('cont');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`] });
    const srv = await startServer({
      env: { WS_SHARDS: '2', KAFKA_BROKERS: brokers, KAFKA_TOPICS: `${prefix}.trades,${prefix}.prices`, KAFKA_CONSUMER_GROUP: uniqueName('ws-w'), WS_RECOVERY_MAX_MESSAGES: '5' },
    });
    servers.push(srv);
    await until(async () => (await getHealth(srv.healthUrl)).body.kafka?.connected === true, 'kafka connected', 60_000);
    const watcher = new RecoveringClient(() => srv.wsUrl, ['trades:AAA']);
    clients.push(watcher);
    await watcher.start();
    await producer.send({ topic: `${prefix}.trades`, acks: -1, messages: Array.from({ length: 20 }, (_, n) => ({ key: 'AAA', value: JSON.stringify({ n }) })) });
    await until(() => (watcher.got.get('trades:AAA')?.length ?? 0) === 20, 'the watcher has all 20');
    const seen = watcher.got.get('trades:AAA')!;

    const ask = async (body: Record<string, unknown>) => {
      const ws = new (await import('ws')).default(srv.wsUrl);
      const frames: Array<Record<string, unknown>> = [];
      ws.on('message', (raw) => {
        const v = JSON.parse(raw.toString());
        frames.push(...(Array.isArray(v) ? v : [v]));
      });
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ op: 'subscribe', id: 1, ...body }));
      await until(() => frames.some((f) => f.op === 'subscribed' || f.op === 'error'), 'reply');
      await sleep(300);
      ws.close();
      return frames;
    };
    const old = await ask({ channels: ['trades:AAA'], since: { 'trades:AAA': seen[2].pos } });
    expect(old[0]).toMatchObject({ op: 'subscribed', recovery: { 'trades:AAA': { unrecoverable: 'out_of_window' } } });
    expect(old.filter((f) => !f.op)).toEqual([]); // nothing replayed as if it were complete

    const recent = await ask({ channels: ['trades:AAA'], since: { 'trades:AAA': seen[16].pos } });
    expect(recent[0]).toMatchObject({ op: 'subscribed', recovery: { 'trades:AAA': { replayed: 3 } } });
    expect(recent.slice(1).map((f) => (f.data as { n: number }).n)).toEqual([17, 18, 19]);

    const [origin] = seen[0].pos.split(':');
    const elsewhere = await ask({ channels: ['trades:AAA'], since: { 'trades:AAA': `p99:1` } });
    expect(elsewhere[0]).toMatchObject({ recovery: { 'trades:AAA': { unrecoverable: 'unknown_origin' } } });
    expect(origin).toMatch(/^p\d+$/);

    const last = await ask({ channels: ['trades:AAA', 'trades:BBB'], last: true });
    expect(last[0]).toMatchObject({ op: 'subscribed', recovery: { 'trades:AAA': { last: 1 }, 'trades:BBB': { last: 0 } } });
    expect(last[1]).toMatchObject({ channel: 'trades:AAA', pos: seen[19].pos, data: { n: 19 } });

    const { body } = await getHealth(srv.healthUrl);
    expect(body.recovery.unrecoverable).toMatchObject({ out_of_window: 1, unknown_origin: 1 });
    expect(body.recovery.evicted.count).toBe(15);
  }, 90_000);
});
