// The official client in Node, recording what it emits, for the tests.
import { OdinClient, type OdinClientOptions, type OdinEvents } from '../../app/client/index.js';

export interface Recorded {
  client: OdinClient;
  messages: Array<OdinEvents['message']>;
  gaps: Array<OdinEvents['gap']>;
  recovered: Array<OdinEvents['recovered']>;
  states: Array<OdinEvents['state']>;
  closes: Array<OdinEvents['close']>;
  errors: Array<OdinEvents['error']>;
}

export function recordedClient(opts: OdinClientOptions & { since?: Record<string, string> }): Recorded {
  const client = new OdinClient(opts);
  const r: Recorded = { client, messages: [], gaps: [], recovered: [], states: [], closes: [], errors: [] };
  client.on('message', (m) => r.messages.push(m));
  client.on('gap', (g) => r.gaps.push(g));
  client.on('recovered', (e) => r.recovered.push(e));
  client.on('state', (s) => r.states.push(s));
  client.on('close', (c) => r.closes.push(c));
  client.on('error', (e) => r.errors.push(e));
  return r;
}

/** Messages per channel, in arrival order. */
export function byChannel(messages: Array<OdinEvents['message']>): Map<string, Array<OdinEvents['message']>> {
  const m = new Map<string, Array<OdinEvents['message']>>();
  for (const x of messages) m.set(x.channel, [...(m.get(x.channel) ?? []), x]);
  return m;
}
