// Runs the bundled load generator (dist/loadtest.mjs) and returns its result JSON (the last
// stdout line of --json). Its progress line, if any, goes to our stderr.
import { spawn } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const LOADTEST = path.join(ROOT, 'dist/loadtest.mjs');

export function runLoadtest(args: string[], killAfterMs: number): Promise<{ code: number | null; result: any; stdout: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [LOADTEST, ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    proc.stdout.on('data', (d) => (stdout += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
    proc.once('error', reject);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      const last = stdout.trimEnd().split('\n').pop() ?? '';
      try {
        resolve({ code, result: JSON.parse(last), stdout });
      } catch {
        reject(new Error(`loadtest exited ${code} without a result line:\n${stdout.slice(-2000)}`));
      }
    });
  });
}
