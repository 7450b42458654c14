// --dry-run prints each command it would run and runs none: the fakes' argv log stays empty.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT, createFakes, runScript, type Fakes } from './support/fakes.js';

const CASES: Array<{ script: string; args: string[]; expect: RegExp[]; env?: Record<string, string> }> = [
  {
    script: 'scripts/ops/deploy.mjs',
    args: [],
    // Every step of a first deploy, in order: preflight, bootstrap, infra, converge, release, health.
    expect: [
      /^== preflight[^]*^\[dry-run\] gcloud auth list[^]*^\[dry-run\] gcloud projects get-iam-policy odin-test[^]*^== build\n\[dry-run\] node scripts\/build\.mjs$[^]*^== synth\n\[dry-run\] node --import tsx stacks\/main\.ts --output \S+$[^]*^== bootstrap[^]*^\[dry-run\] terraform -chdir=\S+\/stacks\/bootstrap init -input=false\n\[dry-run\] terraform -chdir=\S+\/stacks\/bootstrap apply -input=false -auto-approve$[^]*^== infrastructure[^]*\/stacks\/network apply -input=false -auto-approve$[^]*\/stacks\/backend apply -input=false -auto-approve$[^]*\/stacks\/ws apply -input=false -auto-approve$[^]*^== converge ws[^]*google_metadata_script_runner startup[^]*^== release ws[^]*'<ws_instance>:\/tmp\/'$[^]*systemctl restart odin-ws[^]*^== health[^]*127\.0\.0\.1:3004\/health[^]*^\[dry-run\] poll until healthy on [\w-]+ .*then GET <health_url>$/m,
    ],
  },
  { script: 'scripts/ops/health-all.mjs', args: [], expect: [/^\[dry-run\] terraform -chdir=\S+\/stacks\/ws output -json$/m, /^\[dry-run\] gcloud compute ssh '<backend_instance>'/m, /^\[dry-run\] GET <health_url>$/m] },
  { script: 'scripts/ops/logs.mjs', args: ['publisher'], expect: [/^\[dry-run\] gcloud compute ssh '<backend_instance>'.*journalctl.*-u odin-publisher/m] },
  { script: 'scripts/ops/load-test-capacity.mjs', args: ['--teardown'], expect: [/loadtest\.mjs --url .*ws:\/\/<ws_internal_ip>:3004\/ws.* --target 12000 --hold 60 --source-ips 10\.10\.0\.64-10\.10\.0\.79 --out /, /^\[dry-run\] gcloud compute scp --recurse/m, /^\[dry-run\] terraform -chdir=\S+\/stacks\/loadtest destroy -input=false -auto-approve$/m] },
  { script: 'scripts/ops/load-test-logs.mjs', args: [], expect: [/^\[dry-run\] gcloud compute ssh '<loadtest_instance>'/m] },
  { script: 'scripts/ops/delete.mjs', args: [], expect: [/^\[dry-run\] node --import tsx stacks\/main\.ts --output /m, /^\[dry-run\] gcloud compute instances update odin-dev-ws --no-deletion-protection[^]*\/stacks\/loadtest destroy -input=false -auto-approve$[^]*\/stacks\/ws destroy[^]*\/stacks\/backend destroy[^]*\/stacks\/network destroy -input=false -auto-approve$/m] },
  { script: 'scripts/ops/power.mjs', args: ['stop'], expect: [/^\[dry-run\] gcloud compute instances stop odin-dev-ws odin-dev-backend odin-dev-loadtest --zone us-central1-a --project odin-test$/m] },
  { script: 'scripts/ops/tunnel.mjs', args: ['grafana'], expect: [/^\[dry-run\] gcloud compute start-iap-tunnel odin-dev-backend 3010 --local-host-port=localhost:3010/m] },
  { script: 'scripts/ops/diff.mjs', args: [], expect: [/\/stacks\/bootstrap plan -input=false$[^]*\/stacks\/network plan[^]*\/stacks\/backend plan[^]*\/stacks\/ws plan[^]*\/stacks\/loadtest plan -input=false$/m] },
  // A fleet (stacks/config/fleet.json): the release through the bucket and the group, then node by node.
  {
    script: 'scripts/ops/deploy.mjs',
    args: [],
    env: { ODIN_ENV: 'fleet' },
    expect: [
      /\/stacks\/ws apply -input=false -auto-approve$[^]*^== converge backend[^]*^== release [\w-]+ -> gs:\/\/odin-test-odin-fleet-releases\/releases\/[\w-]+\.tar\.gz$[^]*^\[dry-run\] tar -czf [^]*^\[dry-run\] gcloud storage cp [^]*^\[dry-run\] gcloud compute instance-groups managed all-instances-config update odin-fleet-ws-group --region us-central1 --project odin-test '--metadata=odin-release=[^]*^\[dry-run\] gcloud compute instance-groups managed list-instances odin-fleet-ws-group[^]*systemctl stop --no-block odin-ws[^]*recreate-instances odin-fleet-ws-group[^]*127\.0\.0\.1:3004\/health[^]*^\[dry-run\] GET <health_url>$/m,
    ],
  },
  { script: 'scripts/ops/power.mjs', args: ['stop'], env: { ODIN_ENV: 'fleet' }, expect: [/^\[dry-run\] gcloud compute instance-groups managed resize odin-fleet-ws-group --size=0 --region us-central1 --project odin-test$[^]*^\[dry-run\] gcloud compute instances stop odin-fleet-backend odin-fleet-loadtest odin-fleet-loadtest-2 /m] },
  { script: 'scripts/local.mjs', args: ['up'], expect: [/^\[dry-run\] npm run --silent kafka:up$/m, /^\[dry-run\] .*node dist\/server\.mjs --lb-addr 127\.0\.0\.1:3004/m] },
];

describe('--dry-run', () => {
  let fakes: Fakes;
  afterEach(() => fakes?.cleanup());

  for (const c of CASES) {
    it(`${c.script} ${c.args.join(' ')}${c.env ? ` (${Object.entries(c.env).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''} prints its commands and runs none`, async () => {
      fakes = createFakes({ rules: [{ tool: 'gcloud', exit: 42, stderr: 'must not run\n' }, { tool: 'terraform', exit: 42 }] });
      const releases = path.join(ROOT, 'dist', 'releases');
      const releasesBefore = fs.existsSync(releases) ? fs.readdirSync(releases) : [];
      const localDir = path.join(fakes.dir, 'local');
      const r = await runScript(c.script, [...c.args, '--dry-run'], { ...fakes.env, ODIN_LOCAL_DIR: localDir, ...c.env });
      expect(r.code, r.stderr).toBe(0);
      for (const re of c.expect) expect(r.stdout).toMatch(re);
      expect(fakes.calls()).toEqual([]);
      // Nothing assembled or synthesized, nothing started, no command echoed as run.
      expect(fs.existsSync(localDir)).toBe(false);
      expect(fs.existsSync(fakes.env.CDKTF_OUTDIR!)).toBe(false);
      expect(fs.existsSync(releases) ? fs.readdirSync(releases) : []).toEqual(releasesBefore);
      expect(r.stdout).not.toMatch(/^\$ /m);
    });
  }
});
