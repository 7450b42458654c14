// Everything the benchmark starts is undone on the way out: normal end, error, SIGINT or SIGTERM.
// Cleanups run newest first; then any descendant process still alive (a load generator worker, a
// shard) is killed by its pid, so nothing outlives the run.
import { processTree } from '../lib/proc-tree.js';

type Cleanup = () => Promise<void> | void;

const stack: Array<{ what: string; fn: Cleanup }> = [];
let running: Promise<void> | null = null;

export function onCleanup(what: string, fn: Cleanup): () => void {
  const entry = { what, fn };
  stack.push(entry);
  return () => {
    const i = stack.indexOf(entry);
    if (i >= 0) stack.splice(i, 1);
  };
}

export function cleanupAll(log: (m: string) => void): Promise<void> {
  running ??= (async () => {
    while (stack.length) {
      const { what, fn } = stack.pop()!;
      try {
        await Promise.race([fn(), new Promise((r) => setTimeout(r, 40_000).unref())]);
      } catch (e) {
        log(`cleanup ${what}: ${(e as Error).message}`);
      }
    }
    killDescendants('SIGKILL');
  })();
  return running;
}

export function killDescendants(signal: NodeJS.Signals): number {
  const pids = processTree(process.pid).filter((p) => p !== process.pid);
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  return pids.length;
}

/** SIGINT/SIGTERM: clean up, then exit 130/143. A second signal exits at once. */
export function installSignalCleanup(log: (m: string) => void): void {
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(sig, () => {
      if (running) process.exit(code);
      log(`${sig}: stopping the broker and every process this run started`);
      void cleanupAll(log).finally(() => process.exit(code));
    });
  }
  // Last resort on an unexpected exit: no orphaned JVM or server.
  process.on('exit', () => killDescendants('SIGKILL'));
}
