// One client process of the continuity benchmark: K official clients (app/client) on the server's
// URL, each on one concrete channel, recording what they are given and when they come back. The
// parent asks for progress and, at the end, for the verdict against what the broker holds.
import { OdinClient } from '../../app/client/index.js';

export type ToWorker =
  | { t: 'start'; url: string; channels: string[]; first: number; count: number; reconnectBaseMs: number }
  | { t: 'progress'; since: number }
  | { t: 'verdict'; truth: Record<string, string[]> }
  | { t: 'stop' };

export type FromWorker =
  | { t: 'started'; subscribed: number; failed: number }
  | { t: 'progress'; open: number; streamingSince: number; recoveredSince: number; gaps: number }
  | { t: 'verdict'; clients: number; lost: number; duplicates: number; unordered: number; gaps: number; delivered: number; replayed: number; reconnects: number; episodes: Episode[] }
  | { t: 'error'; message: string };

/** One reconnect of one client: the close, the next open, and its channel recovered. */
export interface Episode {
  closedAt: number;
  code: number | undefined;
  openAt: number | null;
  recoveredAt: number | null;
}

interface Tracked {
  client: OdinClient;
  channel: string;
  got: string[];
  lastAt: number;
  lastRecoveredAt: number;
  gaps: number;
  episodes: Episode[];
}

const clients: Tracked[] = [];
const send = (m: FromWorker) => process.send?.(m);

async function start(m: Extract<ToWorker, { t: 'start' }>): Promise<void> {
  let failed = 0;
  for (let i = 0; i < m.count; i++) {
    const channel = m.channels[(m.first + i) % m.channels.length];
    const client = new OdinClient({ url: m.url, backoffBaseMs: m.reconnectBaseMs, backoffMaxMs: 2000, connectTimeoutMs: 10_000, ackTimeoutMs: 20_000 });
    const t: Tracked = { client, channel, got: [], lastAt: 0, lastRecoveredAt: 0, gaps: 0, episodes: [] };
    client.on('message', (e) => {
      t.got.push(e.pos ?? '');
      t.lastAt = Date.now();
    });
    client.on('gap', () => t.gaps++);
    client.on('recovered', () => {
      t.lastRecoveredAt = Date.now();
      // A reconnect that failed again before its recovery (e.g. a dead-connection ping timeout
      // while the server catches up) is back only now, like the one after it.
      for (const ep of t.episodes) if (ep.recoveredAt === null) ep.recoveredAt = t.lastRecoveredAt;
    });
    client.on('state', (s) => {
      if (s.state === 'reconnecting' && (t.episodes.length === 0 || t.episodes.at(-1)!.openAt !== null)) {
        t.episodes.push({ closedAt: Date.now(), code: s.code, openAt: null, recoveredAt: null });
      } else if (s.state === 'open') {
        const ep = t.episodes.at(-1);
        if (ep && ep.openAt === null) ep.openAt = Date.now();
      }
    });
    clients.push(t);
  }
  // Connect in slices: a storm of first connects is not what is measured.
  for (let i = 0; i < clients.length; i += 200) {
    const r = await Promise.allSettled(clients.slice(i, i + 200).map((t) => t.client.connect().subscribe([t.channel])));
    failed += r.filter((x) => x.status === 'rejected').length;
  }
  send({ t: 'started', subscribed: clients.length - failed, failed });
}

function verdict(truth: Record<string, string[]>): FromWorker {
  let lost = 0;
  let duplicates = 0;
  let unordered = 0;
  let delivered = 0;
  for (const t of clients) {
    const all = truth[t.channel] ?? [];
    const index = new Map(all.map((p, i) => [p, i]));
    const seen = new Set<string>();
    let prev = -1;
    for (const p of t.got) {
      delivered++;
      if (seen.has(p)) duplicates++;
      seen.add(p);
      const i = index.get(p) ?? -1;
      if (i <= prev) unordered++;
      prev = Math.max(prev, i);
    }
    // Every record from the client's first one to the end must be there.
    const from = t.got.length ? (index.get(t.got[0]) ?? 0) : all.length;
    for (let i = from; i < all.length; i++) if (!seen.has(all[i])) lost++;
  }
  return {
    t: 'verdict',
    clients: clients.length,
    lost,
    duplicates,
    unordered,
    gaps: clients.reduce((a, t) => a + t.gaps, 0),
    delivered,
    replayed: clients.reduce((a, t) => a + t.client.stats.replayed, 0),
    reconnects: clients.reduce((a, t) => a + t.client.stats.reconnects, 0),
    episodes: clients.flatMap((t) => t.episodes),
  };
}

process.on('message', (m: ToWorker) => {
  try {
    if (m.t === 'start') void start(m).catch((e) => send({ t: 'error', message: String(e?.stack ?? e) }));
    else if (m.t === 'progress') {
      send({
        t: 'progress',
        open: clients.filter((t) => t.client.state === 'open').length,
        streamingSince: clients.filter((t) => t.lastAt > m.since).length,
        recoveredSince: clients.filter((t) => t.lastRecoveredAt > m.since).length,
        gaps: clients.reduce((a, t) => a + t.gaps, 0),
      });
    } else if (m.t === 'verdict') send(verdict(m.truth));
    else if (m.t === 'stop') {
      for (const t of clients) t.client.close();
      setTimeout(() => process.exit(0), 200);
    }
  } catch (e) {
    send({ t: 'error', message: String((e as Error)?.stack ?? e) });
  }
});
process.on('disconnect', () => process.exit(0));
