// Starts a server under test (the odin-ws bundle or the baseline bundle) on a free loopback
// port and waits for its `listening` JSON log line.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';

export interface ServerProc {
  pid: number;
  wsUrl: string;
  healthUrl: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The server's log lines are appended to `logFile` when given, and to `BENCH_SERVER_LOG=FILE` from
 * the bench's environment (to read what the server decided during a run: its saturation verdicts,
 * sheds and cuts, a shard it declared hung).
 */
export async function startServerProc(script: string, args: string[], env: Record<string, string>, timeoutMs = 30_000, logFile?: string): Promise<ServerProc> {
  const proc = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, KAFKA_BROKERS: '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  for (const file of [logFile, process.env.BENCH_SERVER_LOG]) if (file) proc.stdout!.pipe(fs.createWriteStream(file, { flags: 'a' }));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const rec = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not listen within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    readline.createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const r = JSON.parse(line);
        if (r.msg === 'listening') {
          clearTimeout(timer);
          resolve(r);
        }
      } catch {
        // not a log line
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${script} exited before listening: ${stderr}`));
    });
  });
  let stopping: Promise<void> | null = null;
  return {
    pid: proc.pid!,
    wsUrl: rec.ws_url as string,
    healthUrl: rec.health_url as string,
    proc,
    stop() {
      stopping ??= (async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        proc.kill('SIGTERM');
        const killer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killer);
      })();
      return stopping;
    },
  };
}
