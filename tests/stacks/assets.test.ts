import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ASSET_DIR, ASSET_FILES, loadAssets } from '../../stacks/assets.js';
import { fillTemplate, fromTerraformLiteral, renderEnvFile, renderStartupScript, terraformLiteral } from '../../stacks/render.js';
import { bashSyntaxErrors, runBash } from './helpers.js';

const assets = loadAssets();
const files = readdirSync(ASSET_DIR);
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Parses a unit file into section -> key -> values (repeated keys collect). */
function unit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      section = header[1];
      out[section] = {};
      continue;
    }
    const eq = line.indexOf('=');
    expect(eq, `malformed unit line: ${line}`).toBeGreaterThan(0);
    (out[section][line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

function sysctl(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => {
        const m = /^([a-z0-9_.-]+) = (.+)$/.exec(l);
        expect(m, `malformed sysctl line: ${l}`).not.toBeNull();
        return [m![1], m![2]];
      }),
  );
}

describe('asset files', () => {
  it('every file in stacks/assets is used, and every used file exists', () => {
    expect(files.sort()).toEqual(Object.values(ASSET_FILES).sort());
  });

  it.each(files.filter((f) => f.endsWith('.sh')))('%s passes bash -n', (file) => {
    expect(bashSyntaxErrors(readFileSync(path.join(ASSET_DIR, file), 'utf8'))).toBe('');
  });

  it.each(files.filter((f) => /\.ya?ml$/.test(f)))('%s parses as YAML to a mapping', (file) => {
    const doc = parseYaml(fillTemplate(file, readFileSync(path.join(ASSET_DIR, file), 'utf8'), { BACKEND_INTERNAL_IP: '10.0.0.10', WS_INTERNAL_IP: '10.0.0.20', REDPANDA_MEMORY: '1G', ODIN_ENV: 'x', WS_GCE_SD_CONFIGS: '      - project: p\n        zone: z' }));
    expect(doc).toBeTypeOf('object');
    expect(Array.isArray(doc)).toBe(false);
  });

  it('the dashboard has the panels operators need, on the server metric names', () => {
    const dashboard = JSON.parse(assets.dashboardJson);
    const panels: Array<{ title: string; targets: Array<{ expr: string }>; datasource: { uid: string } }> = dashboard.panels;
    const exprOf = (title: RegExp) => {
      const panel = panels.find((p) => title.test(p.title));
      expect(panel, `no panel matching ${title}`).toBeDefined();
      return panel!.targets.map((t) => t.expr).join('\n');
    };
    expect(exprOf(/connections per shard/i)).toMatch(/sum by \(shard\) \(odin_ws_connections\)/);
    expect(exprOf(/deliveries/i)).toMatch(/rate\(odin_ws_deliveries_total\[/);
    expect(exprOf(/refusals/i)).toMatch(/by \(reason\) \(rate\(odin_ws_rejected_total\[/);
    expect(exprOf(/kafka.*lag/i)).toContain('odin_ws_kafka_consumer_lag');
    expect(exprOf(/latency/i)).toMatch(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(odin_ws_bus_latency_seconds_bucket\[/);
    expect(exprOf(/slow consumers/i)).toContain('odin_ws_slow_consumers_total');
    const datasource = parseYaml(assets.grafanaDatasource).datasources[0];
    for (const panel of panels) expect(panel.datasource.uid).toBe(datasource.uid);
    expect(new Set(panels.map((p: any) => p.id)).size).toBe(panels.length);
  });

  it('odin-ws.service runs the bundle with the env file, drains on SIGTERM and has many fds', () => {
    const u = unit(assets.wsUnit);
    expect(u.Service.ExecStart).toEqual(['/usr/bin/node /opt/odin/current/server.mjs']);
    // The auth env file is optional ("-"): it exists only when Secret Manager holds a secret.
    expect(u.Service.EnvironmentFile).toEqual(['/etc/odin/ws.env', '-/etc/odin/ws-auth.env']);
    expect(u.Service.KillSignal).toEqual(['SIGTERM']);
    expect(u.Service.KillMode).toEqual(['mixed']);
    expect(Number(u.Service.TimeoutStopSec[0])).toBeGreaterThan(10); // drain deadline is 10 s
    expect(Number(u.Service.LimitNOFILE[0])).toBeGreaterThanOrEqual(100_000);
    expect(u.Unit.ConditionPathExists).toEqual(['/opt/odin/current/server.mjs']);
    expect(u.Install.WantedBy).toEqual(['multi-user.target']);
  });

  it('odin-publisher.service runs the publisher bundle with its env file', () => {
    const u = unit(assets.publisherUnit);
    expect(u.Service.ExecStart).toEqual(['/usr/bin/node /opt/odin/current/publisher.mjs']);
    expect(u.Service.EnvironmentFile).toEqual(['/etc/odin/publisher.env']);
    expect(u.Service.KillSignal).toEqual(['SIGTERM']);
  });

  it('grafana drop-in sets port 3010 and the admin password through $__file{} (what the Debian package honours)', () => {
    const u = unit(assets.grafanaOverride);
    expect(u.Service.Environment).toContain('GF_SERVER_HTTP_PORT=3010');
    expect(u.Service.Environment).toContain('GF_SECURITY_ADMIN_PASSWORD=$__file{/etc/odin/grafana-admin-password}');
    // GF_*__FILE is implemented only by Grafana's container entrypoint: the Debian unit ignores it.
    expect(u.Service.Environment.some((e) => /__FILE=/.test(e))).toBe(false);
    // And an existing admin (admin_password applies only to a new database) gets it from the CLI.
    expect(assets.backendStartupSh).toMatch(/grafana-cli .*\\\n\s*admin reset-admin-password --password-from-stdin <"\$pw"/);
  });

  it('sysctl files tune for many connections', () => {
    const ws = sysctl(assets.wsSysctl);
    expect(Number(ws['net.core.somaxconn'])).toBeGreaterThanOrEqual(65535);
    // systemd sets fs.nr_open to 2^30 and fs.file-max to LONG_MAX: any value here would lower them.
    for (const text of [assets.wsSysctl, assets.loadtestSysctl, assets.backendSysctl]) {
      expect(Object.keys(sysctl(text)).filter((k) => k === 'fs.file-max' || k === 'fs.nr_open')).toEqual([]);
    }
    expect(ws['net.ipv4.tcp_mem'].split(' ')).toHaveLength(3);
    const lt = sysctl(assets.loadtestSysctl);
    expect(lt['net.ipv4.ip_local_port_range']).toBe('1024 65535');
    expect(lt['net.ipv4.tcp_tw_reuse']).toBe('1');
    expect(sysctl(assets.backendSysctl)['fs.aio-max-nr']).toBeDefined();
  });
});

describe('common.sh place(), run by bash', () => {
  it('installs a staged file, reports a change once, then reports no change', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'odin-place-'));
    dirs.push(dir);
    const stage = path.join(dir, 'stage');
    const dest = path.join(dir, 'etc', 'odin', 'x.env');
    mkdirSync(path.join(stage, path.dirname(dest)), { recursive: true });
    writeFileSync(path.join(stage, dest), 'A=1\n', { mode: 0o640 });
    const owner = `${process.getuid!()}:${process.getgid!()}`;
    const script = path.join(dir, 'run.sh');
    writeFileSync(
      script,
      `source ${JSON.stringify(path.join(ASSET_DIR, 'common.sh'))}\nODIN_ROLE=test\nODIN_STAGE=${JSON.stringify(stage)}\n` +
        `for i in 1 2; do if place ${JSON.stringify(dest)} ${owner}; then echo changed; else echo same; fi; done\n`,
    );
    const r = runBash([script], { HOME: dir });
    expect(r.stderr.trim()).toBe(`odin-startup[test]: updated ${dest}`);
    expect(r.stdout.split('\n')).toEqual(['changed', 'same', '']);
    expect(readFileSync(dest, 'utf8')).toBe('A=1\n');
    expect(statSync(dest).mode & 0o777).toBe(0o640);
  });
});

describe('rendering', () => {
  it('fills placeholders and refuses to leave one empty', () => {
    expect(fillTemplate('t', 'a @@X@@ b @@X@@', { X: '1' })).toBe('a 1 b 1');
    expect(() => fillTemplate('t.yml', '@@X@@ @@Y@@', { X: '1' })).toThrow('t.yml: no value for @@Y@@');
  });

  it('env files refuse values that would need quoting', () => {
    expect(renderEnvFile({ A: 1, B: 'x,y:9' })).toBe('A=1\nB=x,y:9\n');
    expect(() => renderEnvFile({ A: 'two words' })).toThrow('needs quoting');
    expect(() => renderEnvFile({ A: 'x\nB=evil' })).toThrow('needs quoting');
    expect(() => renderEnvFile({ 'a-b': '1' })).toThrow('bad variable name');
  });

  it('startup scripts quote variables and refuse a file that would end the heredoc', () => {
    const script = renderStartupScript({ role: 'r', vars: { ODIN_X: "it's" }, files: [], scripts: [] });
    expect(script).toContain(`ODIN_X='it'\\''s'`);
    expect(() => renderStartupScript({ role: 'r', vars: {}, files: [{ path: '/a', content: 'x\nODIN_FILE_EOF\n' }], scripts: [] })).toThrow('contains the line');
    expect(() => renderStartupScript({ role: 'r', vars: { X: '1' }, files: [], scripts: [] })).toThrow('ODIN_*');
  });

  it('Terraform escaping round-trips', () => {
    const text = 'echo "${A:-b}" %{x} $$ ${#a[@]}';
    expect(terraformLiteral(text)).toBe('echo "$${A:-b}" %%{x} $$ $${#a[@]}');
    expect(fromTerraformLiteral(terraformLiteral(text))).toBe(text);
  });
});
