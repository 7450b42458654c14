// Every Taskfile task is a thin alias of an npm script of the same name; `task --list` parses it.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ROOT } from './support/fakes.js';

const taskfile = parse(fs.readFileSync(path.join(ROOT, 'Taskfile.yml'), 'utf8')) as { version: string; tasks: Record<string, { cmds: unknown[] }> };
const scripts = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const taskNames = Object.keys(taskfile.tasks).sort();

const ISSUE_TASKS = [
  'gcp:deploy', 'gcp:health:all', 'gcp:logs', 'gcp:load-test:capacity', 'gcp:load-test:logs', 'gcp:delete', 'gcp:cost',
  'gcp:stop', 'gcp:start', 'gcp:grafana', 'gcp:console',
  'infra:synth', 'infra:diff', 'infra:hcl', 'local:up', 'local:down', 'local:health', 'local:load-test:capacity', 'test', 'bench',
];

/** The go-task binary: on PATH, else where scripts/setup-task.sh puts it. */
function findTask(): string | null {
  const dirs = (process.env.PATH ?? '').split(path.delimiter);
  if (process.env.TASK_BIN_DIR) dirs.push(process.env.TASK_BIN_DIR);
  if (process.env.GOBIN) dirs.push(process.env.GOBIN);
  try {
    dirs.push(path.join(execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).trim().split(path.delimiter)[0], 'bin'));
  } catch {
    /* no Go: only PATH */
  }
  return dirs.map((d) => path.join(d, 'task')).find((p) => fs.existsSync(p)) ?? null;
}

describe('Taskfile.yml', () => {
  it('has every task the operations issue names', () => {
    expect(taskNames).toEqual(expect.arrayContaining(ISSUE_TASKS));
  });

  for (const name of taskNames) {
    it(`task ${name} only runs \`npm run ${name}\`, and that npm script exists`, () => {
      const cmds = taskfile.tasks[name].cmds;
      expect(cmds).toHaveLength(1);
      const m = /^npm run (?:--silent )?(\S+)(?: -- \{\{\.CLI_ARGS\}\})?$/.exec(String(cmds[0]));
      expect(m, String(cmds[0])).not.toBeNull();
      expect(m![1]).toBe(name);
      expect(scripts[name], `package.json has no "${name}" script`).toBeTypeOf('string');
    });
  }

  it('every node script an ops npm script names exists', () => {
    for (const [name, cmd] of Object.entries(scripts)) {
      const m = /^node (scripts\/\S+\.mjs)/.exec(cmd);
      if (m && /^(gcp|infra|local):/.test(name)) expect(fs.existsSync(path.join(ROOT, m[1])), `${name}: ${m[1]}`).toBe(true);
    }
  });

  const task = findTask();
  // Skipped only on a developer machine without go-task (a Go build of several minutes, so
  // `npm test` does not force it): `npm run setup:task` installs it. Under CI it never skips:
  // .ci/run installs go-task, and a missing binary there fails this test.
  const skipTask = !task && !process.env.CI;
  if (skipTask) console.warn('task --list check skipped: go-task is not installed (npm run setup:task installs it)');
  it.skipIf(skipTask)(`task --list parses it and lists every task${skipTask ? ' [skipped: go-task not installed; npm run setup:task]' : ''}`, () => {
    expect(task, 'go-task is not installed: .ci/run must run scripts/setup-task.sh').toBeTruthy();
    const list = spawnSync(task!, ['--list'], { cwd: ROOT, encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    const json = spawnSync(task!, ['--list-all', '--json'], { cwd: ROOT, encoding: 'utf8' });
    expect(json.status, json.stderr).toBe(0);
    const listed = (JSON.parse(json.stdout) as { tasks: Array<{ name: string }> }).tasks.map((t) => t.name).sort();
    expect(listed).toEqual(taskNames);
  });
});
