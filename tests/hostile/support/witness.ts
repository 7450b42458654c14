// The check every hostile test ends with: a well-behaved client still receives its channel with
// no gap, and /health answers 200.
import { expect } from 'vitest';
import { TestClient, assertNoGaps } from '../../support/client.js';
import { until, type RunningServer } from '../../support/server.js';

/** A client on `channel` that has already received a couple of messages; `query` e.g. `?token=...`. */
export async function connectWitness(srv: RunningServer, channel = 'trades:ODIN1', query = ''): Promise<TestClient> {
  const c = await TestClient.connect(srv.wsUrl + query);
  expect((await c.subscribe([channel])).op).toBe('subscribed');
  await until(() => c.messages.length >= 2, `witness receives ${channel}`);
  return c;
}

/** The witness gets `more` new messages, never saw a gap or a duplicate, and /health is 200. */
export async function expectWitnessServed(srv: RunningServer, witness: TestClient, more = 5): Promise<void> {
  const mark = witness.messages.length;
  await until(() => witness.messages.length >= mark + more || witness.closeCode !== null, 'witness keeps receiving', 20_000);
  expect(witness.closeCode).toBeNull();
  expect(witness.messages.length).toBeGreaterThanOrEqual(mark + more);
  expect(assertNoGaps(witness.messages)).toEqual({ gaps: 0, dups: 0 });
  const res = await fetch(srv.healthUrl);
  expect(res.status).toBe(200);
  await res.body?.cancel();
}

/** Sum of every sample of a Prometheus metric (all label sets). */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export async function metrics(srv: RunningServer): Promise<string> {
  return (await fetch(srv.metricsUrl)).text();
}

/** Sum of a Prometheus metric's samples whose labels include `label` (e.g. `reason="slow"`). */
export function metricSumWith(text: string, name: string, label: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.slice(0, line.indexOf('}')).includes(label)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
