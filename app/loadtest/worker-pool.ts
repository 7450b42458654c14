// The coordinator's handle on its worker processes: fork (same bundle, role flag), split the
// target between them, collect their reports, and always end them.
import { fork, type ChildProcess } from 'node:child_process';
import type { FdLimit } from './fd-limit.js';
import type { FromWorker, ToWorker, WorkerDelta, WorkerGauges, WorkerInit } from './ipc.js';

export interface WorkerInfo {
  index: number;
  pid: number;
  fd: FdLimit;
  gauges: WorkerGauges | null;
}

export type DeltaListener = (workerIndex: number, d: WorkerDelta, g: WorkerGauges) => void;

export class WorkerPool {
  readonly info: WorkerInfo[] = [];
  /** Workers that died before stop(): a run with any is not trustworthy and says so. */
  readonly crashes: string[] = [];
  private readonly procs: ChildProcess[] = [];
  private flushId = 0;
  private readonly waiting = new Map<number, { left: Set<number>; done: () => void }>();
  private stopped = false;

  constructor(
    private readonly bundlePath: string,
    private readonly onDelta: DeltaListener,
  ) {}

  async start(count: number, initFor: (index: number) => WorkerInit, timeoutMs = 15_000): Promise<void> {
    const ready = Array.from({ length: count }, (_, index) => {
      const proc = fork(this.bundlePath, ['--role', 'worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
      this.procs.push(proc);
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${index} did not start within ${timeoutMs} ms`)), timeoutMs);
        proc.once('exit', (code) => reject(new Error(`worker ${index} exited during start (code ${code})`)));
        proc.on('message', (m: FromWorker) => {
          if (m.t === 'ready') {
            clearTimeout(timer);
            this.info[index] = { index, pid: m.pid, fd: m.fd, gauges: null };
            this.send(index, { t: 'init', init: initFor(index) });
            resolve();
          } else if (m.t === 'stats') this.onStats(index, m);
        });
      });
    });
    await Promise.all(ready);
    this.procs.forEach((p, i) => {
      p.removeAllListeners('exit');
      p.once('exit', (code, signal) => {
        if (!this.stopped) this.crashes.push(`worker ${i} (pid ${p.pid}) exited: ${signal ?? `code ${code}`}`);
      });
    });
  }

  /** Cumulative attempts for the whole pool, split evenly; rate likewise. */
  ramp(total: number, rate: number): void {
    const n = this.procs.length;
    this.procs.forEach((_, i) => {
      const share = Math.floor(total / n) + (i < total % n ? 1 : 0);
      this.send(i, { t: 'ramp', total: share, rate: Math.max(1, rate / n) });
    });
  }

  /** Asks every worker for its counters; resolves when all answered or after timeoutMs. */
  flush(timeoutMs: number): Promise<{ late: number }> {
    const id = ++this.flushId;
    return new Promise((resolve) => {
      const left = new Set(this.procs.map((_, i) => i));
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ late: left.size });
      }, timeoutMs);
      this.waiting.set(id, {
        left,
        done: () => {
          clearTimeout(timer);
          this.waiting.delete(id);
          resolve({ late: 0 });
        },
      });
      this.procs.forEach((_, i) => this.send(i, { t: 'flush', id }));
    });
  }

  private onStats(index: number, m: Extract<FromWorker, { t: 'stats' }>): void {
    const info = this.info[index];
    if (info) info.gauges = m.g;
    this.onDelta(index, m.d, m.g);
    const w = this.waiting.get(m.id);
    if (w) {
      w.left.delete(index);
      if (!w.left.size) w.done();
    }
  }

  private send(i: number, m: ToWorker): void {
    const p = this.procs[i];
    if (p?.connected) p.send(m);
  }

  /** Idempotent: asks workers to close their sockets and exit; kills stragglers. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(
      this.procs.map(
        (p, i) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const timer = setTimeout(() => {
              p.kill('SIGKILL');
              resolve();
            }, timeoutMs);
            p.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            this.send(i, { t: 'stop' });
          }),
      ),
    );
  }
}
