// Where the front process spends its CPU while consuming: a V8 CPU profile (node --cpu-prof) of
// the bundled server, each sample mapped through dist/server.mjs.map to its source file and
// grouped (kafkajs protocol decode, the rest of kafkajs, record mapping, the consumer pool, the
// bus, GC, ...). Native frames (JSON.parse) and Node's own modules (Buffer slicing, socket reads)
// count toward the nearest caller in the server or a library: kafkajs' Buffer.slice is kafkajs' cost.
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function categoryOf(source: string | null, fn: string): string | null {
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(program)') return 'v8/runtime (program)';
  if (fn === '(idle)') return 'idle';
  if (fn === '(root)') return 'root';
  if (source === null || source.startsWith('node:')) return null; // the caller's category
  if (source.includes('kafkajs/src/protocol')) return 'kafkajs protocol decode/encode';
  if (source.includes('kafkajs')) return 'kafkajs consumer runtime';
  if (source.includes('app/kafka/record-mapper')) return 'record mapping (key check, JSON.parse)';
  if (source.includes('app/kafka/')) return 'consumer pool + micro-batcher';
  if (source.includes('app/bus/')) return 'broadcast bus (seq, serialise)';
  if (source.includes('prom-client')) return 'prom-client';
  if (source.includes('node_modules')) return 'other libraries';
  if (source.includes('app/')) return 'server other';
  return 'other';
}

export function summarizeProfile(profileFile: string, bundle: { url: string; mapFile: string }, window?: { category: string }) {
  const prof = JSON.parse(readFileSync(profileFile, 'utf8')) as Profile;
  const map = new SourceMap(JSON.parse(readFileSync(bundle.mapFile, 'utf8')));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const info = new Map<number, { category: string; label: string }>();
  const own = (n: ProfileNode) => {
    const { url, functionName, lineNumber, columnNumber } = n.callFrame;
    if (url === bundle.url) {
      const e = map.findEntry(lineNumber, columnNumber) as { originalSource?: string; originalLine?: number };
      const src = e?.originalSource ? e.originalSource.replace(/^.*?\/(node_modules|app)\//, '$1/') : 'dist/server.mjs';
      return { source: src, label: `${functionName || '(anonymous)'} ${src}:${(e?.originalLine ?? 0) + 1}` };
    }
    if (url.startsWith('node:')) return { source: url, label: `${functionName || '(anonymous)'} ${url}` };
    return { source: url ? url : null, label: functionName || '(native)' };
  };
  const resolve = (id: number): { category: string; label: string } => {
    const hit = info.get(id);
    if (hit) return hit;
    const n = byId.get(id)!;
    const o = own(n);
    let category = categoryOf(o.source, n.callFrame.functionName);
    if (category === null) {
      const p = parent.get(id);
      category = p !== undefined ? resolve(p).category : 'root';
      // Only Node's own frames up to the root: event loop, timers, sockets without a JS caller.
      if (category === 'root') category = o.source?.startsWith('node:') ? 'node internals (event loop, net, timers)' : 'native';
    }
    const r = { category, label: o.label };
    info.set(id, r);
    return r;
  };
  // Optionally keep only the stretch between the first and last sample of one category (the
  // consumption itself, not start-up and shutdown).
  let from = 0;
  let to = prof.samples.length - 1;
  if (window) {
    const idx = prof.samples.map((id, i) => (resolve(id).category === window.category ? i : -1)).filter((i) => i >= 0);
    if (idx.length) [from, to] = [idx[0], idx[idx.length - 1]];
  }
  const cat = new Map<string, number>();
  const fn = new Map<string, number>();
  let total = 0;
  for (let i = from; i <= to; i++) {
    const us = prof.timeDeltas[i + 1] ?? prof.timeDeltas[i] ?? 0; // the time until the next sample
    const r = resolve(prof.samples[i]);
    if (r.category === 'idle') continue;
    total += us;
    cat.set(r.category, (cat.get(r.category) ?? 0) + us);
    fn.set(r.label, (fn.get(r.label) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((us / Math.max(1, total)) * 1000) / 10;
  const sorted = (m: Map<string, number>, k: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k);
  return {
    busy_ms: Math.round(total / 1000),
    by_category_pct: Object.fromEntries(sorted(cat, 20).map(([k, v]) => [k, pct(v)])),
    top_self_pct: sorted(fn, 12).map(([k, v]) => ({ fn: k, pct: pct(v) })),
  };
}
