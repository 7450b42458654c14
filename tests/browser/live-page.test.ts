// The live page at `/` in a real browser (headless Chromium): it loads from the server, shows the
// shards and live messages through the official client, and across a SIGTERM restart and a
// SIGKILL of every server process it reconnects and recovers with no gap and no duplicate.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'puppeteer-core';
import { createTopics, produce, testBrokers, uniqueName } from '../support/kafka.js';
import { fetchRetry, getHealth, startServer, until, type RunningServer } from '../support/server.js';
import { chromiumMissing, launch } from './chromium.js';

const missing = chromiumMissing();
if (missing) console.warn(`skipping the browser tests: ${missing}`);

interface Seen {
  messages: number;
  replayed: number;
  gaps: number;
  recovered: number;
  reconnects: number;
  duplicates: number;
  outOfOrder: number;
  healthDetailed: boolean | null;
  shards: number;
  gapEvents: unknown[];
  states: Array<{ state: string; code?: number }>;
}

describe.skipIf(missing !== null)('live page in Chromium', () => {
  const tokens = ['AAA', 'BBB', 'CCC'];
  let browser: Browser;
  let page: Page;
  const servers: RunningServer[] = [];
  let brokers: string;
  let prefix: string;

  async function server(port = 0) {
    const s = await startServer({
      env: {
        WS_SHARDS: '2',
        KAFKA_BROKERS: brokers,
        KAFKA_TOPICS: `${prefix}.trades,${prefix}.prices`,
        // A group of its own each start: a SIGKILLed member would hold its partitions until its
        // session times out. The seek-back by WS_RECOVERY_WINDOW_MS rebuilds the window anyway.
        KAFKA_CONSUMER_GROUP: uniqueName('page'),
        WS_RECONNECT_WINDOW_MS: '500',
      },
      args: ['--lb-addr', `127.0.0.1:${port}`],
    });
    servers.push(s);
    await until(async () => (await getHealth(s.healthUrl)).body.kafka?.connected === true, 'kafka connected', 60_000);
    return s;
  }

  const seen = () => page.evaluate(() => (window as unknown as { __odin: Seen }).__odin) as Promise<Seen>;
  let sent = 0;
  async function publish(n: number) {
    const recs = Array.from({ length: n }, () => {
      const k = sent++;
      return { key: tokens[k % tokens.length], value: JSON.stringify({ n: k }), timestamp: String(Date.now()) };
    });
    await produce(brokers, `${prefix}.trades`, recs);
  }

  beforeAll(async () => {
    brokers = testBrokers();
    prefix = uniqueName('page');
    await createTopics({ brokers, topics: [`${prefix}.trades`, `${prefix}.prices`] });
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    for (const s of servers) await s.stop();
  });

  it('serves the page and the client bundle, and 404 for the rest', async () => {
    const srv = await server();
    const html = await fetchRetry(`http://127.0.0.1:${srv.port}/`);
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await html.text()).toContain('import { OdinClient } from "/odin-client.js"');
    const js = await fetchRetry(`http://127.0.0.1:${srv.port}/odin-client.js`);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await js.text()).toMatch(/OdinClient = class[\s\S]*export \{[\s\S]*OdinClient/);
    expect((await fetchRetry(`http://127.0.0.1:${srv.port}/nope`)).status).toBe(404);
    await srv.stop();
  });

  it('shows the shards and live messages, and recovers across a SIGTERM restart and a SIGKILL of every process with no gap', async () => {
    let srv = await server();
    const port = srv.port;
    page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${port}/?channel=trades:*`);
    await until(async () => (await seen()).shards === 2, 'the page to list both shards', 20_000);
    expect((await seen()).healthDetailed).toBe(true);
    expect(await page.$$eval('#shards tbody tr', (rows) => rows.length)).toBe(2);
    await until(async () => (await page.$$eval('#events li', (li) => li.map((x) => x.textContent ?? ''))).some((t) => t.includes('subscribed trades:*')), 'the subscription', 20_000);

    await publish(60);
    await until(async () => (await seen()).messages >= 60, 'live messages on the page', 30_000);
    expect(await page.$$eval('#messages li', (li) => li.length)).toBeGreaterThan(10);
    expect(await page.$eval('#messages li', (li) => li.textContent)).toMatch(/^trades:(AAA|BBB|CCC) pos p\d+:\d+ seq \d+/);

    // SIGTERM: drained with 1001 and the reconnect window.
    await srv.stop();
    await publish(60); // published while no server runs
    srv = await server(port);
    await publish(60);
    await until(async () => (await seen()).messages >= sent, 'every record after the SIGTERM restart', 60_000);

    // SIGKILL of the front and every shard: no close frame, the kernel resets the connections.
    const pids = [srv.proc.pid!, ...(await getHealth(srv.healthUrl)).body.shards.map((s: { pid: number }) => s.pid)];
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await srv.stop();
    await publish(60);
    srv = await server(port);
    await publish(60);
    await until(async () => (await seen()).messages >= sent, 'every record after the SIGKILL restart', 90_000);

    const s = await seen();
    expect(s.messages).toBe(sent);
    expect(s.gaps).toBe(0);
    expect(s.gapEvents).toEqual([]);
    expect(s.outOfOrder).toBe(0);
    expect(s.reconnects).toBe(2);
    expect(s.recovered).toBeGreaterThan(0);
    // A drain close, then (the kill, and connects refused while no server ran) abnormal closures.
    const codes = s.states.filter((x) => x.state === 'reconnecting').map((x) => x.code);
    expect(codes[0]).toBe(1001);
    expect(new Set(codes.slice(1))).toEqual(new Set([1006]));
    expect(s.states.filter((x) => x.state === 'open')).toHaveLength(3);
    // What a person sees: the counters and the events list.
    expect(await page.$eval('[data-counter="gaps"] b', (b) => b.textContent)).toBe('0');
    expect(await page.$eval('[data-counter="reconnects"] b', (b) => b.textContent)).toBe('2');
    expect(await page.$$eval('#events li', (li) => li.map((x) => x.textContent ?? '').join('\n'))).toMatch(/recovered trades:/);
    expect(pageErrors).toEqual([]);
  }, 240_000);

  it('says so when /health gives only the status (an address outside WS_METRICS_ALLOW)', async () => {
    const s = await startServer({ env: { WS_SHARDS: '1', WS_METRICS_ALLOW: '10.255.255.0/24' } });
    servers.push(s);
    const p = await browser.newPage();
    await p.goto(`http://127.0.0.1:${s.port}/`);
    await until(() => p.evaluate(() => (window as unknown as { __odin: Seen }).__odin.healthDetailed === false), 'the status-only note');
    expect(await p.$eval('#health-note', (el) => (el as HTMLElement).hidden)).toBe(false);
    // The live view still works there (embedded feed).
    await until(() => p.evaluate(() => (window as unknown as { __odin: Seen }).__odin.messages > 0), 'messages on the embedded feed', 20_000);
    await p.close();
  });
});
