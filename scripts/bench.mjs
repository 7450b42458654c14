#!/usr/bin/env node
// Benchmark dispatcher: `npm run bench -- NAME [args]` runs bench/NAME.ts (through tsx) or
// bench/NAME.mjs (plain node) as a child process with the remaining args. A scenario is any such
// file at the top of bench/; helpers live in bench/ subfolders and are never listed.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(root, 'bench');
const NAME_RE = /^[a-z0-9][a-z0-9-]*$/;

/** Scenario names found in bench/: `fanout` for bench/fanout.ts or bench/fanout.mjs. */
export function listScenarios(dir = benchDir) {
  if (!existsSync(dir)) return [];
  return [...new Set(readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && /\.(ts|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')).map((e) => e.name.replace(/\.(ts|mjs)$/, '')))].filter((n) => NAME_RE.test(n)).sort();
}

/** The command that runs scenario `name`, or null when there is no such file. */
export function scenarioCommand(name, args = [], dir = benchDir) {
  if (!NAME_RE.test(name)) return null;
  const mjs = path.join(dir, `${name}.mjs`);
  const ts = path.join(dir, `${name}.ts`);
  if (existsSync(mjs)) return { cmd: process.execPath, args: [mjs, ...args] };
  if (existsSync(ts)) return { cmd: process.execPath, args: ['--import', 'tsx', ts, ...args] };
  return null;
}

async function main(argv) {
  const [name, ...rest] = argv;
  const names = listScenarios();
  if (!name || name === '--help' || name === '-h') {
    process.stderr.write(`usage: npm run bench -- <scenario> [args]\nscenarios: ${names.join(', ') || '(none in bench/)'}\n`);
    return name ? 0 : 2;
  }
  const c = scenarioCommand(name, rest);
  if (!c) {
    process.stderr.write(`bench: unknown scenario "${name}"; scenarios: ${names.join(', ') || '(none in bench/)'}\n`);
    return 2;
  }
  const child = spawn(c.cmd, c.args, { stdio: 'inherit', cwd: root });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
