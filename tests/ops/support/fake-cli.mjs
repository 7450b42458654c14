// A stand-in for gcloud and terraform (run as `node fake-cli.mjs TOOL ARGS...` by a shim on
// PATH). It appends its argv to calls.jsonl and answers from the first matching rule in
// rules.json: stdout, stderr, exit code, files to create.
import fs from 'node:fs';
import path from 'node:path';

const [tool, ...argv] = process.argv.slice(2);
const dir = process.env.FAKE_CLI_DIR;
if (!dir) {
  process.stderr.write('fake-cli: FAKE_CLI_DIR is not set\n');
  process.exit(99);
}
// Earlier calls, for rules that answer with a value an earlier call carried (e.g. the release
// version an scp uploaded, which the health probe must then report).
const earlier = fs.existsSync(path.join(dir, 'calls.jsonl'))
  ? fs.readFileSync(path.join(dir, 'calls.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l).argv.join(' '))
  : [];
const env = Object.fromEntries(['GCP_PROJECT', 'GOOGLE_CLOUD_PROJECT', 'CHECKPOINT_DISABLE'].map((k) => [k, process.env[k] ?? null]));
fs.appendFileSync(path.join(dir, 'calls.jsonl'), `${JSON.stringify({ tool, argv, env })}\n`);

const rules = JSON.parse(fs.readFileSync(path.join(dir, 'rules.json'), 'utf8'));
const joined = argv.join(' ');
// A rule with `times` answers only its first N matching calls (counted in used-<index>).
const used = (i) => Number(fs.existsSync(path.join(dir, `used-${i}`)) ? fs.readFileSync(path.join(dir, `used-${i}`), 'utf8') : 0);
const index = rules.findIndex((r, i) => r.tool === tool && (!r.match || new RegExp(r.match).test(joined)) && (r.times === undefined || used(i) < r.times));
const rule = rules[index];
if (rule?.times !== undefined) fs.writeFileSync(path.join(dir, `used-${index}`), String(used(index) + 1));
if (rule) {
  if (rule.files) {
    // Like scp: the last argument is the local destination.
    const base = argv[argv.length - 1];
    for (const [rel, content] of Object.entries(rule.files)) {
      fs.mkdirSync(path.dirname(path.join(base, rel)), { recursive: true });
      fs.writeFileSync(path.join(base, rel), content);
    }
  }
  let stdout = rule.stdout;
  if (stdout && rule.fromCall) {
    // {{1}}: group 1 of rule.fromCall in the latest earlier call it matches.
    const re = new RegExp(rule.fromCall);
    const m = earlier.map((c) => re.exec(c)).filter(Boolean).pop();
    stdout = stdout.replaceAll('{{1}}', m ? m[1] : '');
  }
  if (stdout) process.stdout.write(stdout);
  if (rule.stderr) process.stderr.write(rule.stderr);
  process.exitCode = rule.exit ?? 0;
}
