// Open-file limits of a process, from /proc (Linux); null where they cannot be read.
import { readFileSync } from 'node:fs';

export function readFdLimit(pid: number | 'self' = 'self'): { soft: number | null; hard: number | null } {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const m = line && /^Max open files\s+(\S+)\s+(\S+)/.exec(line);
    if (!m) return { soft: null, hard: null };
    const num = (s: string) => (s === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: num(m[1]), hard: num(m[2]) };
  } catch {
    return { soft: null, hard: null };
  }
}
