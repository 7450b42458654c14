#!/usr/bin/env node
// Bundles the runtime roles into self-contained ESM files under dist/ (what ships to the VMs).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const entries = {
  server: 'app/server.ts',
  publisher: 'app/publisher/main.ts',
  loadtest: 'app/loadtest/main.ts',
};

export async function bundle({ only, outdir = path.join(root, 'dist') } = {}) {
  const fs = await import('node:fs');
  const names = Object.keys(entries).filter((n) => (!only || only.includes(n)) && fs.existsSync(path.join(root, entries[n])));
  await Promise.all(
    names.map((name) =>
      build({
        entryPoints: [path.join(root, entries[name])],
        outfile: path.join(outdir, `${name}.mjs`),
        bundle: true,
        platform: 'node',
        target: 'node24',
        format: 'esm',
        sourcemap: 'linked',
        logLevel: 'warning',
        // CJS deps (pino, kafkajs) call require(); give the ESM bundle one.
        banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
      }),
    ),
  );
  return names.map((n) => path.join(outdir, `${n}.mjs`));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const only = process.argv.slice(2);
  await bundle({ only: only.length ? only : undefined });
}
