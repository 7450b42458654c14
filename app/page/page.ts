// The live page at `/`: polls /health for the shards, and shows one channel through the official
// client (imported from /odin-client.js, the bundle the server serves; see scripts/build.mjs).
// Everything shown is set as text, never as HTML.
import { OdinClient, type OdinEvents } from '../client/index.js';

const MAX_MESSAGES = 50;
const MAX_EVENTS = 40;
const HEALTH_EVERY_MS = 2000;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the page saw, for people (the counters) and for the browser test (window.__odin). */
const seen = {
  messages: 0,
  replayed: 0,
  gaps: 0,
  recovered: 0,
  reconnects: 0,
  duplicates: 0,
  states: [] as Array<OdinEvents['state']>,
  gapEvents: [] as Array<OdinEvents['gap']>,
  /** Per concrete channel: the data of every message in arrival order is not kept; its last pos is. */
  lastPos: {} as Record<string, string>,
  /** Per channel, messages that did not follow the previous position of the same origin. */
  outOfOrder: 0,
  healthDetailed: null as boolean | null,
  shards: 0,
};
(window as unknown as { __odin: unknown }).__odin = seen;

// ---- shards ----

interface Shard { id: number; pid: number; up: boolean; connections: number; channels: number; deliveries: number; bus_messages: number; loop_lag_ms: number; restarts: number }
let previous: { at: number; shards: Map<number, Shard> } | null = null;

async function pollHealth(): Promise<void> {
  try {
    const res = await fetch('/health', { cache: 'no-store' });
    const body = (await res.json()) as Record<string, unknown>;
    renderHealth(body);
  } catch (err) {
    $('system').textContent = `/health unreachable (${(err as Error).message}); retrying`;
  } finally {
    setTimeout(() => void pollHealth(), HEALTH_EVERY_MS);
  }
}

function renderHealth(body: Record<string, unknown>): void {
  const shards = Array.isArray(body.shards) ? (body.shards as Shard[]) : null;
  seen.healthDetailed = shards !== null;
  $('health-note').hidden = shards !== null;
  $('shards').hidden = shards === null;
  if (!shards) {
    $('system').textContent = `status: ${String(body.status)}`;
    return;
  }
  const sys = (body.system ?? {}) as Record<string, unknown>;
  $('version').textContent = typeof body.version === 'string' ? body.version : '';
  $('system').textContent = `status ${String(body.status)} · ${String(sys.total_connections)} connections of ${String(sys.max_connections)} · source ${String(sys.source)} · up ${String(sys.uptime_s)} s`;
  const now = performance.now();
  const dt = previous ? (now - previous.at) / 1000 : 0;
  const tbody = $('shards').querySelector('tbody')!;
  tbody.replaceChildren(
    ...shards.map((s) => {
      const before = previous?.shards.get(s.id);
      const rate = (k: 'deliveries' | 'bus_messages') => (before && dt > 0 && before.pid === s.pid ? Math.max(0, (s[k] - before[k]) / dt).toFixed(1) : '…');
      const tr = document.createElement('tr');
      const cells: Array<[string, string?]> = [
        [String(s.id)],
        [String(s.pid)],
        [s.up ? 'up' : 'DOWN', s.up ? 'l up' : 'l down'],
        [String(s.connections)],
        [String(s.channels)],
        [rate('deliveries')],
        [rate('bus_messages')],
        [typeof s.loop_lag_ms === 'number' ? s.loop_lag_ms.toFixed(1) : ''],
        [String(s.restarts)],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement('td');
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      return tr;
    }),
  );
  seen.shards = shards.length;
  previous = { at: now, shards: new Map(shards.map((s) => [s.id, s])) };
}

// ---- channel ----

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const client = new OdinClient({ url: wsUrl, last: true, pingIntervalMs: 10_000, pongTimeoutMs: 5_000 });
(window as unknown as { __odinClient: OdinClient }).__odinClient = client;
let watching: string | null = null;

function line(list: HTMLElement, text: string, cls: string, max: number): void {
  const li = document.createElement('li');
  li.textContent = text;
  li.className = cls;
  list.prepend(li);
  while (list.children.length > max) list.lastElementChild!.remove();
}

function event(text: string, cls = ''): void {
  line($('events'), `${new Date().toLocaleTimeString()} ${text}`, cls, MAX_EVENTS);
}

function renderCounters(): void {
  const st = client.stats;
  seen.duplicates = st.duplicates;
  const items: Array<[string, number | string]> = [
    ['state', client.state],
    ['messages', seen.messages],
    ['replayed', seen.replayed],
    ['reconnects', seen.reconnects],
    ['recoveries', seen.recovered],
    ['gaps', seen.gaps],
    ['duplicates dropped', st.duplicates],
  ];
  $('counters').replaceChildren(
    ...items.map(([k, v]) => {
      const span = document.createElement('span');
      span.dataset.counter = k;
      const b = document.createElement('b');
      b.textContent = String(v);
      span.append(`${k}: `, b);
      return span;
    }),
  );
}

client.on('message', (m) => {
  seen.messages++;
  if (m.replayed) seen.replayed++;
  const prev = seen.lastPos[m.channel];
  if (prev && m.pos && prev.slice(0, prev.lastIndexOf(':')) === m.pos.slice(0, m.pos.lastIndexOf(':'))) {
    if (Number(m.pos.slice(m.pos.lastIndexOf(':') + 1)) <= Number(prev.slice(prev.lastIndexOf(':') + 1))) seen.outOfOrder++;
  }
  if (m.pos) seen.lastPos[m.channel] = m.pos;
  line($('messages'), `${m.channel} pos ${m.pos ?? '-'} seq ${m.seq ?? '-'}${m.replayed ? ' (replayed)' : ''} ${JSON.stringify(m.data).slice(0, 120)}`, m.replayed ? 'replayed' : '', MAX_MESSAGES);
  scheduleCounters();
});
client.on('state', (s) => {
  seen.states.push(s);
  if (seen.states.length > 200) seen.states.shift();
  if (s.state === 'open' && client.stats.connects > 1) seen.reconnects = client.stats.reconnects;
  const el = $('state');
  el.textContent = s.state;
  el.className = `state-${s.state}`;
  const extra = [s.code !== undefined ? `code ${s.code}` : '', s.reason ? `reason ${s.reason}` : '', s.delayMs !== undefined ? `retry in ${s.delayMs} ms` : ''].filter(Boolean).join(', ');
  event(`${s.state}${extra ? ` (${extra})` : ''}`, `state-${s.state}`);
  renderCounters();
});
client.on('gap', (g) => {
  seen.gaps++;
  seen.gapEvents.push(g);
  if (seen.gapEvents.length > 200) seen.gapEvents.shift();
  event(`gap on ${g.channel}: ${g.reason}${g.from ? ` after ${g.from}` : ''}${g.to ? ` until ${g.to}` : ''}${g.missed !== undefined ? `, ${g.missed} missed` : ''}`, 'gap');
  renderCounters();
});
client.on('recovered', (r) => {
  seen.recovered++;
  event(`recovered ${r.channel}: ${r.replayed} replayed`, 'recovered');
  renderCounters();
});
client.on('error', (e) => event(`error ${e.code}: ${e.message}`, 'gap'));

let countersQueued = false;
function scheduleCounters(): void {
  if (countersQueued) return;
  countersQueued = true;
  requestAnimationFrame(() => {
    countersQueued = false;
    renderCounters();
  });
}

async function watch(channel: string): Promise<void> {
  const err = $('pick-error');
  err.hidden = true;
  const old = watching;
  watching = channel;
  if (old && old !== channel) await client.unsubscribe([old]).catch(() => {});
  try {
    const ack = await client.subscribe([channel]);
    event(`subscribed ${ack.channels.join(', ')}`);
    const u = new URL(location.href);
    u.searchParams.set('channel', channel);
    history.replaceState(null, '', u);
  } catch (e) {
    watching = null;
    err.textContent = `${(e as { code?: string }).code ?? 'error'}: ${(e as Error).message}`;
    err.hidden = false;
  }
}

$('pick').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const ch = $<HTMLInputElement>('channel').value.trim();
  if (ch) void watch(ch);
});

const initial = new URLSearchParams(location.search).get('channel') ?? 'trades:*';
$<HTMLInputElement>('channel').value = initial;
renderCounters();
client.connect();
void watch(initial);
void pollHealth();
