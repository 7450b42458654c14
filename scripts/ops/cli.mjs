// What every operation script shares at its edge: flag parsing with clear messages, the main
// guard, error printing and exit codes, and the confirmation prompt.
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { OpsError } from './gcp.mjs';

export const COMMON_OPTIONS = Object.freeze({
  'dry-run': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
});

/** Bad flags exit 2 (usage), like the load generator and the server. */
export class UsageError extends OpsError {
  constructor(message, usage) {
    super(usage ? `${message}\n${usage}` : message, { exitCode: 2 });
  }
}

/** node:util parseArgs, strict, with COMMON_OPTIONS added; throws UsageError naming the flag. */
export function parseOptions(argv, options, { usage = '', positionals = false } = {}) {
  try {
    const r = parseArgs({ args: [...argv], options: { ...COMMON_OPTIONS, ...options }, strict: true, allowPositionals: positionals });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError(e.message, usage);
  }
}

/** A whole number in [min, max] from a string flag, or the default when absent. */
export function intFlag(values, name, { min, max, def }) {
  const raw = values[name];
  if (raw === undefined) return def;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name}=${JSON.stringify(raw)}: must be a whole number in ${min}..${max}`);
  }
  return n;
}

/** True when the module at metaUrl is the script node was asked to run. */
export function isMain(metaUrl, argv1 = process.argv[1]) {
  if (!argv1) return false;
  try {
    return fs.realpathSync(path.resolve(argv1)) === fs.realpathSync(fileURLToPath(metaUrl));
  } catch {
    return false;
  }
}

/** Last `max` lines of a command's output, indented, for an error report. */
export function tail(text, max = 40) {
  const lines = String(text).replace(/\s+$/, '').split('\n');
  const kept = lines.length > max ? [`... (${lines.length - max} earlier lines)`, ...lines.slice(-max)] : lines;
  return kept.map((l) => `  ${l}`).join('\n');
}

/** Runs main(argv) and turns its outcome into an exit code; OpsErrors print without a stack. */
export async function runMain(main, { argv = process.argv.slice(2), err = process.stderr } = {}) {
  try {
    const code = await main(argv);
    process.exitCode = typeof code === 'number' ? code : 0;
  } catch (e) {
    if (e instanceof OpsError) {
      err.write(`error: ${e.message}\n`);
      if (e.detail && String(e.detail).trim()) err.write(`${tail(e.detail)}\n`);
      process.exitCode = e.exitCode;
    } else {
      err.write(`error: ${e?.stack ?? e}\n`);
      process.exitCode = 1;
    }
  }
}

/**
 * Asks for `expected` to be typed. Without a terminal there is no one to ask: refuse.
 * @returns {Promise<boolean>}
 */
export async function confirmTyped(prompt, expected, { input = process.stdin, output = process.stdout } = {}) {
  if (!input.isTTY) return false;
  const rl = readline.createInterface({ input, output });
  try {
    const answer = await rl.question(`${prompt} Type "${expected}" to continue: `);
    return answer.trim() === expected;
  } finally {
    rl.close();
  }
}
