// CPU-seconds and RSS of a process and all its descendants, read from /proc (utime + stime in
// /proc/<pid>/stat, resident pages in /proc/<pid>/statm): the server's own view is not trusted
// for the benchmark, and its shard processes must be counted too.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const PAGE = (() => {
  try {
    return Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim()) || 4096;
  } catch {
    return 4096;
  }
})();

/** Fields after the `(comm)` part of /proc/<pid>/stat; index 0 is field 3 (state). */
function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (!f) continue;
    const ppid = Number(f[1]);
    let l = children.get(ppid);
    if (!l) children.set(ppid, (l = []));
    l.push(Number(name));
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length && out.length < 10_000) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

export interface TreeSample {
  at: number;
  cpuS: number;
  rssMb: number;
  pids: number;
}

export function sampleTree(root: number): TreeSample {
  let ticks = 0;
  let pages = 0;
  const pids = processTree(root);
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    try {
      pages += Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    } catch {
      // exited between the scan and the read
    }
  }
  return { at: Date.now(), cpuS: ticks / CLK_TCK, rssMb: (pages * PAGE) / 1048576, pids: pids.length };
}

/** Samples a process tree every `everyMs` until stopped; answers CPU and RSS over a window. */
export class TreeSampler {
  readonly samples: TreeSample[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly root: number,
    private readonly everyMs = 250,
  ) {}

  start(): this {
    this.samples.push(sampleTree(this.root));
    this.timer = setInterval(() => this.samples.push(sampleTree(this.root)), this.everyMs);
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** CPU-seconds between two instants, linearly interpolated between samples. */
  cpuBetween(from: number, to: number): number {
    return this.cpuAt(to) - this.cpuAt(from);
  }

  private cpuAt(t: number): number {
    const s = this.samples;
    if (!s.length) return 0;
    if (t <= s[0].at) return s[0].cpuS;
    for (let i = 1; i < s.length; i++) {
      if (s[i].at >= t) {
        const a = s[i - 1];
        const b = s[i];
        return a.cpuS + ((b.cpuS - a.cpuS) * (t - a.at)) / Math.max(1, b.at - a.at);
      }
    }
    return s[s.length - 1].cpuS;
  }

  /** Mean RSS of the samples inside the window (the last one before it if none). */
  rssBetween(from: number, to: number): number | null {
    const inside = this.samples.filter((x) => x.at >= from && x.at <= to);
    const use = inside.length ? inside : this.samples.filter((x) => x.at <= to).slice(-1);
    return use.length ? use.reduce((a, x) => a + x.rssMb, 0) / use.length : null;
  }
}
