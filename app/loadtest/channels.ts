// The subscription mix: which channels each simulated client subscribes to.
// Syntax (--channels): `a,b,c` (every client takes the whole list), `random:K` (K distinct
// concrete channels per client from those discovered on the server), `none` (idle clients).

import { isChannelShape } from '../common/channel.js';

export type ChannelSpec =
  | { readonly kind: 'list'; readonly channels: readonly string[] }
  | { readonly kind: 'random'; readonly k: number }
  | { readonly kind: 'none' };

/** What workers receive: the spec resolved against the discovered pool. */
export type ChannelPlan =
  | { readonly kind: 'list'; readonly channels: readonly string[] }
  | { readonly kind: 'random'; readonly k: number; readonly pool: readonly string[] }
  | { readonly kind: 'none' };

const MAX_CHANNELS = 1000;

export function parseChannelSpec(text: string): { ok: true; spec: ChannelSpec } | { ok: false; problem: string } {
  const s = text.trim();
  if (s === 'none') return { ok: true, spec: { kind: 'none' } };
  const m = /^random:(\d+)$/.exec(s);
  if (m) {
    const k = Number(m[1]);
    if (k < 1 || k > MAX_CHANNELS) return { ok: false, problem: `random:K needs K in 1..${MAX_CHANNELS}` };
    return { ok: true, spec: { kind: 'random', k } };
  }
  const list = s.split(',').map((c) => c.trim()).filter(Boolean);
  if (!list.length) return { ok: false, problem: 'empty; use a channel list, random:K or none' };
  const bad = list.filter((c) => !isChannelShape(c));
  if (bad.length) return { ok: false, problem: `not <stream>:<token|*>: ${bad.slice(0, 5).join(', ')} (or use random:K, none)` };
  if (new Set(list).size !== list.length) return { ok: false, problem: 'lists a channel twice' };
  if (list.length > MAX_CHANNELS) return { ok: false, problem: `at most ${MAX_CHANNELS} channels` };
  return { ok: true, spec: { kind: 'list', channels: list } };
}

/** Channels for the client with this global index: deterministic, so runs are repeatable. */
export function channelsFor(plan: ChannelPlan, clientIndex: number): readonly string[] {
  if (plan.kind === 'none') return [];
  if (plan.kind === 'list') return plan.channels;
  const pool = plan.pool;
  const k = Math.min(plan.k, pool.length);
  const rand = mulberry32(clientIndex + 0x9e3779b9);
  // Partial Fisher-Yates over an index array: K distinct picks.
  const idx = Array.from(pool.keys());
  const out: string[] = [];
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rand() * (idx.length - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
    out.push(pool[idx[i]]);
  }
  return out;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
