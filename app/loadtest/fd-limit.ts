// Open-file limit of this process. Node has no setrlimit, so the soft limit is raised to the
// hard one with util-linux `prlimit --pid` on ourselves; the outcome is reported either way so a
// run that hits EMFILE says why.
import { execFileSync } from 'node:child_process';
import { readFdLimit } from '../common/fd-limit.js';

export { readFdLimit };

export interface FdLimit {
  soft: number | null;
  hard: number | null;
  raised: boolean;
  note: string;
}

export function raiseFdLimit(): FdLimit {
  const before = readFdLimit();
  if (before.soft === null || before.hard === null) {
    return { ...before, raised: false, note: 'cannot read /proc/self/limits: fd limit unknown' };
  }
  if (before.soft >= before.hard) {
    return { ...before, raised: false, note: `soft limit already at the hard limit (${before.hard})` };
  }
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${before.hard}:${before.hard}`], { stdio: 'ignore', timeout: 5000 });
  } catch (err) {
    return { ...before, raised: false, note: `could not raise soft limit ${before.soft} to hard ${before.hard} (prlimit: ${(err as Error).message}); this process can hold ~${before.soft - 100} sockets` };
  }
  const after = readFdLimit();
  const raised = after.soft !== null && after.soft > before.soft;
  return { ...after, raised, note: raised ? `raised soft limit ${before.soft} -> ${after.soft}` : `prlimit ran but the soft limit stayed ${after.soft}` };
}
