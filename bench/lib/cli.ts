// The command-line edge shared by the benchmarks: strict flags, --help, integer flags checked
// against their range, and one exit-2 report listing every problem.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Flags = Record<string, string | boolean | undefined>;

export function benchCli(name: string, usage: string, argv: string[], options: NonNullable<ParseArgsConfig['options']>) {
  const die = (problems: string[]): never => {
    for (const p of problems) process.stderr.write(`bench ${name}: ${p}\n`);
    process.stderr.write(`bench ${name}: see --help\n`);
    process.exit(2);
  };
  let v: Flags = {};
  try {
    v = parseArgs({ args: argv, strict: true, options: { ...options, help: { type: 'boolean' } } }).values as Flags;
  } catch (err) {
    die([(err as Error).message]);
  }
  if (v.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const problems: string[] = [];
  const int = (f: string, def: number, min: number, max: number) => {
    if (v[f] === undefined) return def;
    const x = Number(v[f]);
    if (!Number.isInteger(x) || x < min || x > max) problems.push(`--${f}=${JSON.stringify(v[f])}: must be an integer in ${min}..${max}`);
    return x;
  };
  return { v, problems, int, die };
}
