#!/usr/bin/env node
// Monthly cost estimate of a deployment, per VM and in total, from the checked-in dated price
// table (stacks/prices-us-central1.json). `npm run cost [-- --json]`; the deploy script
// imports estimateMonthlyCost and formatEstimate and prints the table before deploying.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PRICE_FILE = path.join(root, 'stacks', 'prices-us-central1.json');

/** Which VM gets what besides compute and disk (mirrors the stacks: only ws has an external IP). */
const VM_EXTRAS = {
  ws: { staticIp: true, nat: false },
  backend: { staticIp: false, nat: true },
  loadtest: { staticIp: false, nat: true },
};

const round2 = (n) => Math.round(n * 100) / 100;
const round3 = (n) => Math.round(n * 1000) / 1000;

/** Reads and checks the price table; every missing or non-positive price is named. */
export function loadPrices(file = PRICE_FILE) {
  const prices = JSON.parse(readFileSync(file, 'utf8'));
  const numbers = ['hoursPerMonth', 'e2VcpuHour', 'e2MemoryGbHour', 'pdBalancedGbMonth', 'staticIpHour', 'cloudNatVmHour'];
  const problems = numbers.filter((k) => !(typeof prices[k] === 'number' && prices[k] > 0)).map((k) => `${k} must be a positive number`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(String(prices.date))) problems.push('date must be YYYY-MM-DD');
  if (!prices.machineTypes || typeof prices.machineTypes !== 'object') problems.push('machineTypes is missing');
  if (problems.length) throw new Error(`${file}: ${problems.join('; ')}`);
  return prices;
}

/**
 * estimateMonthlyCost(config, prices?) -> { currency, priceDate, region, hoursPerMonth, vms, hourly, monthly }
 * config: the stack config (or any object with ws/backend/loadtest: { machineType, diskGb }).
 * Pure and synchronous; called without a config it returns a Promise of the estimate for the
 * config the stacks would use (ODIN_ENV and env overrides), for callers that have none.
 * vms: [{ role, machineType, vcpus, memoryGb, diskGb, hourly, monthly, items: { compute, disk, staticIp, nat } }]
 * All amounts in the table's currency; monthly = hoursPerMonth of uptime.
 */
export function estimateMonthlyCost(config, prices) {
  if (config === undefined) return loadStackConfig().then((loaded) => estimateMonthlyCost(loaded, prices));
  prices ??= loadPrices();
  const hours = prices.hoursPerMonth;
  const vms = Object.entries(VM_EXTRAS).map(([role, extras]) => {
    const vm = config?.[role];
    if (!vm || typeof vm.machineType !== 'string' || !(Number(vm.diskGb) > 0)) {
      throw new Error(`cost: config.${role} needs machineType and diskGb`);
    }
    const shape = prices.machineTypes[vm.machineType];
    if (!shape) {
      throw new Error(`cost: no price for machine type ${vm.machineType} (${role}); add it to the price table`);
    }
    const computeHour = shape.billedVcpus * prices.e2VcpuHour + shape.memoryGb * prices.e2MemoryGbHour;
    const items = {
      compute: computeHour * hours,
      disk: vm.diskGb * prices.pdBalancedGbMonth,
      staticIp: extras.staticIp ? prices.staticIpHour * hours : 0,
      nat: extras.nat ? prices.cloudNatVmHour * hours : 0,
    };
    const monthly = items.compute + items.disk + items.staticIp + items.nat;
    return {
      role,
      machineType: vm.machineType,
      vcpus: shape.vcpus,
      memoryGb: shape.memoryGb,
      diskGb: vm.diskGb,
      hourly: round3(monthly / hours),
      monthly: round2(monthly),
      items: Object.fromEntries(Object.entries(items).map(([k, v]) => [k, round2(v)])),
    };
  });
  const monthly = vms.reduce((sum, vm) => sum + vm.monthly, 0);
  return {
    currency: prices.currency,
    priceDate: prices.date,
    region: prices.region,
    hoursPerMonth: hours,
    vms,
    hourly: round3(monthly / hours),
    monthly: round2(monthly),
  };
}

export function formatEstimate(estimate) {
  const money = (n) => n.toFixed(2).padStart(9);
  const lines = [
    `Estimated cost, ${estimate.region} list prices of ${estimate.priceDate} (${estimate.currency}, ${estimate.hoursPerMonth} h/month):`,
    `  ${'vm'.padEnd(9)}${'machine'.padEnd(15)}${'vCPU'.padStart(5)}${'GB'.padStart(5)}${'disk'.padStart(6)}${'compute'.padStart(9)}${'disk'.padStart(9)}${'ip+nat'.padStart(9)}${'month'.padStart(9)}${'hour'.padStart(8)}`,
  ];
  for (const vm of estimate.vms) {
    lines.push(
      `  ${vm.role.padEnd(9)}${vm.machineType.padEnd(15)}${String(vm.vcpus).padStart(5)}${String(vm.memoryGb).padStart(5)}${String(vm.diskGb).padStart(6)}` +
        `${money(vm.items.compute)}${money(vm.items.disk)}${money(vm.items.staticIp + vm.items.nat)}${money(vm.monthly)}${vm.hourly.toFixed(3).padStart(8)}`,
    );
  }
  lines.push(`  ${'total'.padEnd(75)}${money(estimate.monthly)}${estimate.hourly.toFixed(3).padStart(8)}`);
  lines.push('  Excludes egress, NAT data processing and log ingestion; the teardown task (gcp:delete) stops all of it.');
  return lines.join('\n');
}

/** Loads the same validated config the stacks use (ODIN_ENV and the env overrides apply). */
export async function loadStackConfig(env = process.env) {
  const { tsImport } = await import('tsx/esm/api');
  const { loadConfig } = await tsImport('../stacks/config/load.ts', import.meta.url);
  return loadConfig({ env });
}

async function main(argv) {
  const unknown = argv.filter((a) => a !== '--json');
  if (unknown.length) {
    console.error(`cost: unknown argument ${unknown[0]} (usage: node scripts/cost.mjs [--json]; ODIN_ENV picks the config)`);
    return 2;
  }
  let config;
  try {
    config = await loadStackConfig();
  } catch (err) {
    console.error(err.message);
    return 1;
  }
  const estimate = estimateMonthlyCost(config);
  console.log(argv.includes('--json') ? JSON.stringify(estimate, null, 2) : formatEstimate(estimate));
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
