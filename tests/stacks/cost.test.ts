import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { estimateMonthlyCost, formatEstimate, loadPrices, PRICE_FILE, stoppedMonthlyCost } from '../../scripts/cost.mjs';
import { makeConfig } from './helpers.js';

const root = path.resolve(import.meta.dirname, '../..');
const prices = JSON.parse(readFileSync(path.join(root, 'stacks', 'prices-us-central1.json'), 'utf8'));
const exec = promisify(execFile);

describe('price table', () => {
  it('is dated, for us-central1, with the four unit prices', () => {
    expect(prices.date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(prices.region).toBe('us-central1');
    for (const key of ['e2VcpuHour', 'e2MemoryGbHour', 'pdBalancedGbMonth', 'staticIpHour']) expect(prices[key]).toBeGreaterThan(0);
    expect(loadPrices(PRICE_FILE)).toEqual(prices);
  });

  it('covers the machine types of the default config', () => {
    const config = makeConfig();
    for (const role of ['ws', 'backend', 'loadtest'] as const) expect(prices.machineTypes[config[role].machineType]).toBeDefined();
  });
});

describe('estimateMonthlyCost', () => {
  const config = makeConfig({ ws: { diskGb: 40 }, loadtest: { enabled: true } });
  const estimate = estimateMonthlyCost(config, prices);
  const vm = (role: string) => {
    const found = estimate.vms.find((v) => v.role === role);
    if (!found) throw new Error(`no estimate for ${role}`);
    return found;
  };

  it('prices each VM from the table: compute, disk, static IP only on ws, NAT on the others', () => {
    const h = prices.hoursPerMonth;
    const ws = vm('ws');
    expect(ws.items.compute).toBeCloseTo((8 * prices.e2VcpuHour + 8 * prices.e2MemoryGbHour) * h, 2);
    expect(ws.items.disk).toBeCloseTo(40 * prices.pdBalancedGbMonth, 2);
    expect(ws.items.staticIp).toBeCloseTo(prices.staticIpHour * h, 2);
    expect(ws.items.nat).toBe(0);
    const backend = vm('backend');
    // e2-medium is billed as one vCPU (50% of two shared cores) and 4 GB.
    expect(backend.items.compute).toBeCloseTo((1 * prices.e2VcpuHour + 4 * prices.e2MemoryGbHour) * h, 2);
    expect(backend.items.staticIp).toBe(0);
    expect(backend.items.nat).toBeCloseTo(prices.cloudNatVmHour * h, 2);
    expect(vm('loadtest').items.compute).toBeCloseTo((8 * prices.e2VcpuHour + 32 * prices.e2MemoryGbHour) * h, 2);
  });

  it('totals the VMs and the egress, and dates the result', () => {
    const sum = estimate.vms.reduce((s: number, v: { monthly: number }) => s + v.monthly, 0);
    expect(estimate.monthly).toBeCloseTo(sum + estimate.egress.monthly, 2);
    expect(estimate.priceDate).toBe(prices.date);
    expect(estimate.vms.map((v: { role: string }) => v.role)).toEqual(['ws', 'backend', 'loadtest']);
  });

  it('prices the fan-out egress from connections and bytes per second (defaults: the 12,000 target, 1,000 B/s)', () => {
    expect(estimate.egress).toMatchObject({ connections: 12_000, bytesPerSecond: 1_000, gbPerHour: 43.2 });
    expect(estimate.egress.monthly).toBeCloseTo(43.2 * prices.internetEgressGb * prices.hoursPerMonth, 2);
    const custom = estimateMonthlyCost(config, prices, { connections: 1000, bytesPerSecond: 500 }).egress;
    expect(custom.gbPerHour).toBeCloseTo(1.8, 3);
    expect(formatEstimate(estimate)).toMatch(new RegExp(`^  egress\\s+12000 conns x 1000 B/s = 43\\.2 GB/h at ${prices.internetEgressGb}/GB`, 'm'));
    expect(formatEstimate(estimate)).toContain(`All rows are list prices of ${prices.date}`);
  });

  it('leaves the load-test VM out unless it is enabled', () => {
    expect(estimateMonthlyCost(makeConfig(), prices).vms.map((v: { role: string }) => v.role)).toEqual(['ws', 'backend']);
  });

  it('a stopped deployment still pays for disks and the unused static address', () => {
    const stopped = stoppedMonthlyCost(makeConfig({ ws: { diskGb: 40 } }), prices);
    expect(stopped.disks).toBeCloseTo((40 + 30) * prices.pdBalancedGbMonth, 2);
    expect(stopped.staticIp).toBeCloseTo(prices.staticIpUnusedHour * prices.hoursPerMonth, 2);
    expect(stopped.monthly).toBeCloseTo(stopped.disks + stopped.staticIp, 2);
  });

  it('names a machine type the table does not know', () => {
    expect(() => estimateMonthlyCost(makeConfig({ ws: { machineType: 'n2-standard-8' } }), prices)).toThrow(/n2-standard-8 \(ws\)/);
  });

  it('without a config, estimates the config the stacks would use', async () => {
    const fromEnv = await estimateMonthlyCost();
    expect(fromEnv.vms.map((v: { machineType: string }) => v.machineType)).toEqual(['e2-highcpu-8', 'e2-medium']);
  });

  it('formats a table with every VM and the total', () => {
    const text = formatEstimate(estimate);
    expect(text).toContain(prices.date);
    for (const role of ['ws', 'backend', 'loadtest']) expect(text).toMatch(new RegExp(`^  ${role}\\s+e2-`, 'm'));
    expect(text).toMatch(new RegExp(`^  total\\s+${estimate.monthly.toFixed(2)}`, 'm'));
  });
});

describe('a fleet: N WS VMs, the balancer, M load-test VMs', () => {
  const h = prices.hoursPerMonth;
  const single = estimateMonthlyCost(makeConfig({ loadtest: { enabled: true } }), prices);
  const fleet = estimateMonthlyCost(makeConfig({ ws: { count: 3 }, loadtest: { enabled: true, count: 2 } }), prices);
  const row = (e: typeof fleet, role: string) => e.vms.find((v: { role: string }) => v.role === role)!;

  it('prices every WS node and every load-test VM; the nodes have no address of their own but NAT', () => {
    expect(row(fleet, 'ws').count).toBe(3);
    expect(row(fleet, 'ws').items.compute).toBeCloseTo(3 * row(single, 'ws').items.compute, 1);
    expect(row(fleet, 'ws').items.staticIp).toBe(0);
    expect(row(fleet, 'ws').items.nat).toBeCloseTo(3 * prices.cloudNatVmHour * h, 2);
    expect(row(fleet, 'loadtest').items.compute).toBeCloseTo(2 * row(single, 'loadtest').items.compute, 1);
  });

  it('adds the balancer: its forwarding rule and address, and the data it processes; the single VM has none', () => {
    expect(single.balancer).toBeUndefined();
    const b = fleet.balancer!;
    expect(b.forwardingRules).toBe(1);
    expect(b.items.forwardingRules).toBeCloseTo(prices.forwardingRuleHour * h, 2);
    expect(b.items.staticIp).toBeCloseTo(prices.staticIpHour * h, 2);
    expect(b.items.dataProcessed).toBeCloseTo(fleet.egress.gbPerHour * h * prices.lbDataProcessedGb, 1);
    const sum = fleet.vms.reduce((s: number, v: { monthly: number }) => s + v.monthly, 0);
    expect(fleet.monthly).toBeCloseTo(sum + fleet.egress.monthly + b.monthly, 1);
    expect(formatEstimate(fleet)).toMatch(/^  ws x3\s+e2-highcpu-8/m);
    expect(formatEstimate(fleet)).toMatch(/^  balancer\s+1 forwarding rule/m);
    // wss:// adds the Application Load Balancer's forwarding rule.
    expect(estimateMonthlyCost(makeConfig({ ws: { count: 2, domain: 'feed.example.com' } }), prices).balancer!.forwardingRules).toBe(2);
  });
});

describe('npm run cost', () => {
  it('prints the estimate for the dev config, and JSON with --json', async () => {
    const env = { ...process.env, ODIN_ENV: '', GCP_PROJECT: '', WS_SHARDS: '' };
    const table = await exec(process.execPath, ['scripts/cost.mjs'], { cwd: root, env, timeout: 60_000 });
    expect(table.stdout).toMatch(/^  total\s+\d+\.\d\d/m);
    const json = JSON.parse((await exec(process.execPath, ['scripts/cost.mjs', '--json'], { cwd: root, env, timeout: 60_000 })).stdout);
    expect(json.vms).toHaveLength(2); // loadtest.enabled is false in dev.json
    const custom = JSON.parse((await exec(process.execPath, ['scripts/cost.mjs', '--json', '--connections', '100', '--bytes-per-second', '10'], { cwd: root, env, timeout: 60_000 })).stdout);
    expect(custom.egress).toMatchObject({ connections: 100, bytesPerSecond: 10 });
    expect(json.monthly).toBeGreaterThan(0);
  });

  it('rejects unknown arguments and invalid config', async () => {
    await expect(exec(process.execPath, ['scripts/cost.mjs', '--yearly'], { cwd: root, timeout: 60_000 })).rejects.toMatchObject({ code: 2 });
    const bad = exec(process.execPath, ['scripts/cost.mjs'], { cwd: root, env: { ...process.env, WS_SHARDS: 'nope' }, timeout: 60_000 });
    await expect(bad).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('ws.shards') });
    await expect(exec(process.execPath, ['scripts/cost.mjs', '--connections', 'many'], { cwd: root, timeout: 60_000 })).rejects.toMatchObject({ code: 2 });
  });
});
