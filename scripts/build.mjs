#!/usr/bin/env node
// Bundles the runtime roles into self-contained ESM files under dist/ (what ships to the VMs), and
// the browser side: the official client (dist/odin-client.js) and the live page (dist/index.html),
// which the server reads from beside its own bundle.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const entries = {
  server: 'app/server.ts',
  publisher: 'app/publisher/main.ts',
  loadtest: 'app/loadtest/main.ts',
};

/** Browser bundles: the client's target is the project's language level (tsconfig ES2022). */
export const browserTarget = 'es2022';

/** The official client as one ESM file for browsers (and Node >= 22: it uses the global WebSocket). */
export async function bundleClient(outdir) {
  const outfile = path.join(outdir, 'odin-client.js');
  await build({
    entryPoints: [path.join(root, 'app/client/index.ts')],
    outfile,
    bundle: true,
    platform: 'browser',
    target: browserTarget,
    format: 'esm',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  return outfile;
}

/**
 * The live page: app/page/page.ts bundled and inlined into app/page/index.html. Its import of the
 * client stays an import of /odin-client.js, the bundle the server serves beside it.
 */
export async function bundlePage(outdir) {
  const fs = await import('node:fs');
  const toServedClient = {
    name: 'served-client',
    setup(b) {
      b.onResolve({ filter: /\/client\/index\.js$/ }, () => ({ path: '/odin-client.js', external: true }));
    },
  };
  const out = await build({
    entryPoints: [path.join(root, 'app/page/page.ts')],
    bundle: true,
    write: false,
    platform: 'browser',
    target: browserTarget,
    format: 'esm',
    logLevel: 'warning',
    plugins: [toServedClient],
  });
  const script = out.outputFiles[0].text.replaceAll('</script', '<\\/script');
  const html = fs.readFileSync(path.join(root, 'app/page/index.html'), 'utf8');
  if (!html.includes('<!-- page-script -->')) throw new Error('app/page/index.html lacks the <!-- page-script --> marker');
  const outfile = path.join(outdir, 'index.html');
  fs.mkdirSync(outdir, { recursive: true });
  fs.writeFileSync(outfile, html.replace('<!-- page-script -->', () => `<script type="module">\n${script}</script>`));
  return outfile;
}

export async function bundle({ only, outdir = path.join(root, 'dist') } = {}) {
  const fs = await import('node:fs');
  const names = Object.keys(entries).filter((n) => (!only || only.includes(n)) && fs.existsSync(path.join(root, entries[n])));
  // The server serves the client and the page: they are built with it.
  const browser = !only || only.includes('server') || only.includes('client');
  await Promise.all([
    ...(browser && fs.existsSync(path.join(root, 'app/client/index.ts')) ? [bundleClient(outdir)] : []),
    ...(browser && fs.existsSync(path.join(root, 'app/page/page.ts')) ? [bundlePage(outdir)] : []),
    ...names.map((name) =>
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
  ]);
  return names.map((n) => path.join(outdir, `${n}.mjs`));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const only = process.argv.slice(2);
  await bundle({ only: only.length ? only : undefined });
}
