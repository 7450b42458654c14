// Turns the asset files plus stack props into the text a VM receives: filled templates,
// env files, and one self-contained startup script per VM.

const PLACEHOLDER = /@@([A-Z][A-Z0-9_]*)@@/g;

/** Replaces @@NAME@@ placeholders; a placeholder without a value is a synth-time error. */
export function fillTemplate(name: string, text: string, values: Readonly<Record<string, string>>): string {
  const missing = new Set<string>();
  const out = text.replace(PLACEHOLDER, (_, key: string) => {
    const value = values[key];
    if (value === undefined) missing.add(key);
    return value ?? '';
  });
  if (missing.size > 0) throw new Error(`${name}: no value for ${[...missing].map((k) => `@@${k}@@`).join(', ')}`);
  return out;
}

/** A systemd EnvironmentFile: KEY=value lines, values checked to need no quoting. */
export function renderEnvFile(entries: Readonly<Record<string, string | number>>): string {
  return Object.entries(entries)
    .map(([key, raw]) => {
      const value = String(raw);
      if (!/^[A-Z_][A-Z0-9_]*$/.test(key)) throw new Error(`env file: bad variable name ${key}`);
      if (!/^[\w.,:/@+=-]*$/.test(value)) throw new Error(`env file: value of ${key} needs quoting: ${value}`);
      return `${key}=${value}\n`;
    })
    .join('');
}

export interface StagedFile {
  /** Absolute destination on the VM; the script stages it and `place`s it when ready. */
  readonly path: string;
  readonly content: string;
  readonly mode?: string;
}

export interface StartupScriptParts {
  readonly role: string;
  readonly vars: Readonly<Record<string, string>>;
  readonly files: readonly StagedFile[];
  /** Script bodies appended in order (shebang lines dropped). */
  readonly scripts: readonly { readonly name: string; readonly text: string }[];
}

const EOF_MARK = 'ODIN_FILE_EOF';
const STAGE = '/var/lib/odin/staged';

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export function renderStartupScript({ role, vars, files, scripts }: StartupScriptParts): string {
  const lines = [
    '#!/bin/bash',
    '# shellcheck disable=SC2034 # every VM gets the same ODIN_* settings; not every role uses each one',
    `# odin ${role} VM startup script, rendered at synth time from stacks/assets/ and the stack props.`,
    '# GCE runs it on every boot and every step is idempotent. Do not edit it on the VM: change',
    '# the assets or the config and deploy again.',
    'set -euo pipefail',
    'export DEBIAN_FRONTEND=noninteractive',
    '',
  ];
  for (const [key, value] of Object.entries(vars)) {
    if (!/^ODIN_[A-Z0-9_]+$/.test(key)) throw new Error(`startup script: variable ${key} must be named ODIN_*`);
    lines.push(`${key}=${shellQuote(value)}`);
  }
  lines.push('', `ODIN_STAGE="\${ODIN_STAGE:-${STAGE}}"`, 'rm -rf "$ODIN_STAGE"', 'install -d -m 0755 "$ODIN_STAGE"');
  for (const file of files) {
    if (!/^\/[\w./-]+$/.test(file.path)) throw new Error(`startup script: bad file path ${file.path}`);
    const content = file.content.endsWith('\n') ? file.content : `${file.content}\n`;
    if (content.split('\n').includes(EOF_MARK)) throw new Error(`${file.path}: contains the line ${EOF_MARK}`);
    const staged = `"$ODIN_STAGE"${file.path}`;
    lines.push(
      `install -d -m 0755 "$(dirname ${staged})"`,
      `cat >${staged} <<'${EOF_MARK}'`,
      content + EOF_MARK,
      `chmod ${file.mode ?? '0644'} ${staged}`,
    );
  }
  for (const script of scripts) {
    lines.push('', `# ---- ${script.name} ----`, script.text.replace(/^#!.*\n/, ''));
  }
  return `${lines.join('\n').replace(/\n+$/, '')}\n`;
}

/**
 * Terraform reads `${` and `%{` inside any string as template syntax, so a shell script passed
 * verbatim breaks the plan. Escape them (`$${`, `%%{`); Terraform hands the VM the original.
 */
export function terraformLiteral(text: string): string {
  return text.replace(/\$\{/g, () => '$${').replace(/%\{/g, () => '%%{');
}

/** The inverse of terraformLiteral: what Terraform will pass on for a synthesized string. */
export function fromTerraformLiteral(text: string): string {
  return text.replace(/\$\$\{/g, () => '${').replace(/%%\{/g, () => '%{');
}
