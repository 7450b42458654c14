// Minimal inline-SVG line charts, so the HTML report needs no script, library or network.

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number | null]>;
  dashed?: boolean;
}

export interface ChartOptions {
  title: string;
  yLabel: string;
  xLabel?: string;
  hline?: { y: number; label: string };
}

const W = 920;
const H = 280;
const M = { l: 64, r: 16, b: 40 };
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c'];

export const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** 1, 2, 5 x 10^n step giving about `n` ticks up to `max`. */
function niceStep(max: number, n: number): number {
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

const fmt = (v: number): string => (Math.abs(v) >= 10_000 ? `${Math.round(v / 1000)}k` : Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)}k` : String(Math.round(v * 100) / 100));

export function lineChart(series: readonly Series[], o: ChartOptions): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]).filter((y): y is number => y !== null));
  if (o.hline) ys.push(o.hline.y);
  const xMax = Math.max(1, ...xs);
  const yStep = niceStep(Math.max(1, ...ys), 5);
  const yMax = Math.max(yStep, Math.ceil(Math.max(1, ...ys) / yStep) * yStep);
  const xStep = niceStep(xMax, 8);
  const top = 34 + Math.ceil(series.length / 6) * 13;
  const px = (x: number) => M.l + (x / xMax) * (W - M.l - M.r);
  const py = (y: number) => H - M.b - (y / yMax) * (H - top - M.b);
  const parts: string[] = [];
  parts.push(`<text x="${M.l}" y="18" font-size="14" font-weight="600">${escapeHtml(o.title)}</text>`);
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${py(y)}" y2="${py(y)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${M.l - 6}" y="${py(y) + 4}" font-size="11" text-anchor="end">${fmt(y)}</text>`);
  }
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    parts.push(`<text x="${px(x)}" y="${H - M.b + 16}" font-size="11" text-anchor="middle">${fmt(x)}</text>`);
  }
  parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" stroke="#9ca3af"/>`);
  parts.push(`<text x="${(W + M.l) / 2}" y="${H - 6}" font-size="11" text-anchor="middle">${escapeHtml(o.xLabel ?? 'seconds since start')}</text>`);
  parts.push(`<text x="14" y="${(H - M.b + top) / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 14 ${(H - M.b + top) / 2})">${escapeHtml(o.yLabel)}</text>`);
  if (o.hline) {
    parts.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${py(o.hline.y)}" y2="${py(o.hline.y)}" stroke="#111" stroke-dasharray="2 3"/>`);
    parts.push(`<text x="${W - M.r - 4}" y="${py(o.hline.y) - 4}" font-size="11" text-anchor="end">${escapeHtml(o.hline.label)}</text>`);
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    let d = '';
    let pen = false;
    for (const [x, y] of s.points) {
      if (y === null) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${px(x).toFixed(1)},${py(y).toFixed(1)}`;
      pen = true;
    }
    if (d) parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    const lx = M.l + (i % 6) * 140;
    const ly = 34 + Math.floor(i / 6) * 13;
    parts.push(`<rect x="${lx}" y="${ly - 5}" width="12" height="3" fill="${color}"/><text x="${lx + 16}" y="${ly}" font-size="11">${escapeHtml(s.name)}</text>`);
  });
  if (!series.some((s) => s.points.some((p) => p[1] !== null))) {
    parts.push(`<text x="${W / 2}" y="${H / 2}" font-size="13" text-anchor="middle" fill="#6b7280">no data</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${escapeHtml(o.title)}">${parts.join('')}</svg>`;
}
