// Reads WS_AUTH_SECRET_FILE: one secret, or two (current, then previous) one per line. Every
// message names the file and the line, never a secret's value or length.
import fs from 'node:fs';

/** RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits). */
export const MIN_SECRET_BYTES = 32;
const MAX_FILE_BYTES = 64 * 1024;

export type SecretsResult = { ok: true; secrets: string[]; warnings: string[] } | { ok: false; problem: string };

export function secretProblem(secret: string): string | null {
  return Buffer.byteLength(secret, 'utf8') >= MIN_SECRET_BYTES ? null : `must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2 for HS256), e.g. \`openssl rand -base64 48\``;
}

export function readSecretFile(path: string, setting = 'WS_AUTH_SECRET_FILE'): SecretsResult {
  const where = `${setting}=${JSON.stringify(path)}`;
  let text: string;
  let mode = 0;
  try {
    // Bounded read: a path such as /dev/zero must not hang or exhaust the process.
    const fd = fs.openSync(path, 'r');
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return { ok: false, problem: `${where}: not a regular file; it must hold one secret, or two (current, then previous) one per line` };
      mode = st.mode;
      const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      if (n > MAX_FILE_BYTES) return { ok: false, problem: `${where}: larger than ${MAX_FILE_BYTES} bytes; it must hold one or two secrets, one per line` };
      text = buf.toString('utf8', 0, n);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    return { ok: false, problem: `${where}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'}); it must be a file readable by the server holding one or two secrets, one per line` };
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0 || lines.length > 2) {
    return { ok: false, problem: `${where}: holds ${lines.length} secrets; it must hold one, or two during a rotation (current first, previous second), one per line` };
  }
  const names = ['line 1 (current secret)', 'line 2 (previous secret)'];
  for (const [i, s] of lines.entries()) {
    const p = secretProblem(s);
    if (p) return { ok: false, problem: `${where}: ${names[i]} ${p} (value not shown)` };
  }
  const warnings = mode & 0o077 ? [`${setting} ${JSON.stringify(path)} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`] : [];
  return { ok: true, secrets: lines, warnings };
}
