// Runs the real bundled load generator (dist/loadtest.mjs, built by the global setup) as a child
// process and parses the result JSON from the last stdout line.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const LOADTEST = path.join(ROOT, 'dist/loadtest.mjs');

export interface LoadtestRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** The parsed last stdout line when --json was given and the run printed one. */
  result: any;
}

export function tempOut(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'odin-loadtest-'));
}

export function runLoadtestCli(args: string[], timeoutMs = 120_000): Promise<LoadtestRun> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [LOADTEST, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: '1' } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`loadtest did not finish within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      const last = stdout.trimEnd().split('\n').pop() ?? '';
      let result: unknown = null;
      if (last.startsWith('{')) {
        try {
          result = JSON.parse(last);
        } catch {
          result = null;
        }
      }
      resolve({ code, stdout, stderr, result });
    });
  });
}
