// One self-overwriting status line on stderr, only on a TTY outside CI (the caller decides).
import type { Progress } from './run.js';

const WIDTH = 24;

export function formatProgress(p: Progress): string {
  const r = p.row;
  const frac = p.target ? Math.min(1, r.open / p.target) : 0;
  const bar = '#'.repeat(Math.round(frac * WIDTH)).padEnd(WIDTH, '-');
  const rate = r.deliveries_per_s >= 1000 ? `${(r.deliveries_per_s / 1000).toFixed(1)}k` : String(r.deliveries_per_s);
  return (
    `[${bar}] ${r.open}/${p.target} ${p.phase} step ${p.step}/${p.steps} | ${rate} msg/s | p99 ${r.p99 ?? '-'} ms | ` +
    `refused ${r.refused_total} | errors ${r.connect_errors_total} | missing ${r.missing_total} | t ${r.t}s`
  );
}

export class ProgressLine {
  private shown = false;

  constructor(private readonly enabled: boolean) {}

  update(p: Progress): void {
    if (!this.enabled) return;
    const cols = process.stderr.columns || 120;
    process.stderr.write(`\r\x1b[2K${formatProgress(p).slice(0, cols - 1)}`);
    this.shown = true;
  }

  end(): void {
    if (this.shown) process.stderr.write('\n');
    this.shown = false;
  }
}
