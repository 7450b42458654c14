// The one door to gcloud, terraform and the stack synth (and any other command an operation
// runs): every call is echoed, honours --dry-run (print, run nothing), and fails with the
// command's stderr. Terraform runs per stack in <outdir>/stacks/<stack>/, the layout the cdktf
// library's App.synth() writes (what the archived cdktf CLI ran underneath).
import { $, which } from 'zx';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** What to install when a tool is missing: one line each, shown as is. */
export const INSTALL_HINTS = Object.freeze({
  gcloud: 'gcloud not found on PATH: install the Google Cloud CLI (Debian/Ubuntu package google-cloud-cli), then run `gcloud init`',
  terraform: 'terraform not found on PATH: install Terraform >= 1.5 (HashiCorp package `terraform`)',
});

/** A failed operation step; `detail` (usually the step's stderr) is printed under the message. */
export class OpsError extends Error {
  constructor(message, { detail = '', exitCode = 1 } = {}) {
    super(message);
    this.name = 'OpsError';
    this.detail = detail;
    this.exitCode = exitCode;
  }
}

/** Absolute path of `name` on env.PATH, or null. */
export function findTool(name, { env = process.env } = {}) {
  return which.sync(name, { path: env.PATH ?? '', nothrow: true }) ?? null;
}

/**
 * Where synth writes and terraform runs: CDKTF_OUTDIR (the variable the cdktf library itself
 * reads), else <root>/cdktf.out. With local state, the state files sit beside this directory
 * (the stacks write them three levels up from <outdir>/stacks/<stack>/): the project root by default.
 */
export function resolveOutdir(env = process.env, root = ROOT) {
  const raw = env.CDKTF_OUTDIR;
  if (raw === undefined || raw.trim() === '') return path.join(root, 'cdktf.out');
  if (/[\u0000-\u001f]/.test(raw)) throw new OpsError(`CDKTF_OUTDIR=${JSON.stringify(raw)}: must be a directory path (no control characters)`);
  const dir = path.resolve(root, raw);
  if (dir === path.parse(dir).root || dir === root) throw new OpsError(`CDKTF_OUTDIR=${JSON.stringify(raw)}: must be a directory of its own, not / or the project itself`);
  return dir;
}

/** A stack id as the stacks name them (stacks/outputs.ts); anything else never reaches a path. */
export const STACK_ID = /^[a-z][\w-]{0,63}$/;

/** One word for a POSIX shell: as is when safe, else single-quoted. */
export function shellQuote(word) {
  const s = String(word);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** How a command is shown: quoted where needed, so it can be pasted into a shell. */
export function displayCommand(cmd, args) {
  return [cmd, ...args].map(shellQuote).join(' ');
}

/** The fixed flags every `gcloud compute ssh|scp` call carries. */
export function computeFlags({ zone, project }) {
  return ['--zone', zone, '--project', project, '--tunnel-through-iap', '--quiet'];
}

// ssh exits 255 on connection failures (IAP tunnel not up yet, sshd still starting on a new VM).
const SSH_CONNECT_FAILED = 255;

/**
 * @param {{ dryRun?: boolean, root?: string, env?: NodeJS.ProcessEnv, out?: NodeJS.WritableStream,
 *           err?: NodeJS.WritableStream, retryDelayMs?: number }} opts
 */
export function createGcp({ dryRun = false, root = ROOT, env = process.env, out = process.stdout, err = process.stderr, retryDelayMs = 10_000 } = {}) {
  // Terraform's update check would try the network on every call.
  const extraEnv = { CHECKPOINT_DISABLE: '1' };
  const resolved = new Map();
  const outdir = resolveOutdir(env, root);
  const shownOutdir = path.relative(root, outdir).startsWith('..') ? outdir : path.relative(root, outdir);
  /** Stacks of this run's synth (null until it ran; in --dry-run it never runs). */
  let synthesized = null;
  let synthDone = false;
  const initialized = new Set();

  function resolveTool(tool) {
    if (path.isAbsolute(tool)) return tool;
    if (!resolved.has(tool)) resolved.set(tool, findTool(tool, { env, root }));
    const bin = resolved.get(tool);
    if (!bin) throw new OpsError(INSTALL_HINTS[tool] ?? `${tool} not found on PATH`);
    return bin;
  }

  /**
   * Runs one command. stream: also copy its output to the terminal as it comes (long steps).
   * allowFail: return a non-zero result instead of throwing. retries: re-run on ssh's 255 (only
   * for commands that are safe to run twice).
   * display: how to show the command when it differs from argv (e.g. `node` for process.execPath).
   * quiet: do not echo it on a real run (probes whose output is summarised); --dry-run still shows it.
   */
  async function exec(tool, args, { stream = false, allowFail = false, retries = 0, display, quiet = false, cwd = root } = {}) {
    const shown = display ?? displayCommand(tool, args);
    if (dryRun) {
      out.write(`[dry-run] ${shown}\n`);
      return { stdout: '', stderr: '', exitCode: 0, dryRun: true };
    }
    const bin = resolveTool(tool);
    if (!quiet) out.write(`$ ${shown}\n`);
    for (let attempt = 0; ; attempt++) {
      // stdin is /dev/null: nothing reads it, and a socket there makes bash source ~/.bashrc.
      const p = $({ cwd, env: { ...env, ...extraEnv }, nothrow: true, quiet: true, stdio: ['ignore', 'pipe', 'pipe'] })`${bin} ${args}`;
      if (stream) {
        p.stdout.on('data', (d) => out.write(d));
        p.stderr.on('data', (d) => err.write(d));
      }
      const res = await p;
      const result = { stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode ?? 1, dryRun: false };
      if (result.exitCode === 0) return result;
      if (attempt < retries && result.exitCode === SSH_CONNECT_FAILED) {
        out.write(`  connection failed (exit 255), retrying in ${Math.round(retryDelayMs / 1000)} s (${attempt + 1}/${retries})\n`);
        await new Promise((r) => setTimeout(r, retryDelayMs));
        continue;
      }
      if (allowFail) return result;
      throw new OpsError(`failed (exit ${result.exitCode}): ${shown}`, { detail: result.stderr || result.stdout });
    }
  }

  /**
   * Synthesizes every stack from this checkout's config into the outdir (offline, the cdktf
   * library through stacks/main.ts) once per run; returns the stack names of the manifest (null
   * in --dry-run). Every terraform call runs after it: a cdk.tf.json left by an earlier synth
   * (another env, project or bucket) must never be applied.
   */
  async function synth() {
    if (synthDone) return synthesized;
    await exec(process.execPath, ['--import', 'tsx', path.join(root, 'stacks', 'main.ts'), '--output', outdir], {
      display: displayCommand('node', ['--import', 'tsx', 'stacks/main.ts', '--output', shownOutdir]),
    });
    synthDone = true;
    if (dryRun) return null;
    const file = path.join(outdir, 'manifest.json');
    try {
      const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (!manifest || typeof manifest.stacks !== 'object' || manifest.stacks === null) throw new Error('no "stacks" object');
      synthesized = Object.freeze(Object.keys(manifest.stacks));
    } catch (e) {
      throw new OpsError(`synth wrote no readable ${file} (${e.message})`);
    }
    return synthesized;
  }

  /**
   * `terraform -chdir=<outdir>/stacks/<stack> ARGS`, after this run's synth and, the first time
   * the run touches the stack, `terraform init -input=false` there (a fresh directory has no
   * providers and no backend; the synthesized JSON configures the GCS or local backend).
   */
  async function terraform(stack, args, opts = {}) {
    if (!STACK_ID.test(String(stack))) throw new OpsError(`not a stack name: ${JSON.stringify(stack)}`);
    const stacks = await synth();
    if (stacks && !stacks.includes(stack)) throw new OpsError(`stack ${stack} is not synthesized (the stacks are: ${stacks.join(', ')})`);
    const chdir = `-chdir=${path.join(shownOutdir, 'stacks', stack)}`;
    if (!initialized.has(stack)) {
      const init = await exec('terraform', [chdir, 'init', '-input=false'], { stream: opts.stream, quiet: opts.quiet, allowFail: opts.allowFail });
      if (init.exitCode !== 0) return init;
      initialized.add(stack);
    }
    return exec('terraform', [chdir, ...args], opts);
  }

  const gcp = {
    dryRun,
    root,
    /** Environment added to every later command (e.g. the project for the terraform provider). */
    setEnv(vars) {
      Object.assign(extraEnv, vars);
    },
    outdir,
    run: exec,
    gcloud: (args, opts) => exec('gcloud', args, opts),
    synth,
    terraform,
    /** `gcloud compute ssh` through IAP; `command` runs in the VM's login shell. */
    ssh({ instance, zone, project }, command, opts = {}) {
      return exec('gcloud', ['compute', 'ssh', instance, ...computeFlags({ zone, project }), '--command', command], { retries: 2, ...opts });
    },
    /** `gcloud compute scp --recurse` through IAP; `from`/`to` use INSTANCE:PATH for the remote side. */
    scp({ zone, project }, from, to, opts = {}) {
      return exec('gcloud', ['compute', 'scp', '--recurse', ...computeFlags({ zone, project }), ...from, to], { retries: 2, ...opts });
    },
  };
  return gcp;
}
