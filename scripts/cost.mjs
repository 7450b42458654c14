#!/usr/bin/env node
// Monthly cost estimate of a deployment, per VM and in total, plus the fan-out's internet
// egress, from the checked-in dated price table (stacks/prices-us-central1.json).
// `npm run cost [-- --json] [--connections N] [--bytes-per-second B]`; the deploy script imports
// estimateMonthlyCost and formatEstimate and prints the table before deploying; gcp:stop prints
// stoppedMonthlyCost (what a stopped deployment still costs).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PRICE_FILE = path.join(root, 'stacks', 'prices-us-central1.json');

/**
 * Which VM gets what besides compute and disk (mirrors the stacks: only the single ws VM has an
 * external IP; a fleet's nodes have none, egress through NAT, and the address is the balancer's).
 */
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
  const numbers = ['hoursPerMonth', 'e2VcpuHour', 'e2MemoryGbHour', 'pdBalancedGbMonth', 'staticIpHour', 'staticIpUnusedHour', 'cloudNatVmHour', 'internetEgressGb', 'forwardingRuleHour', 'lbDataProcessedGb'];
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
/** The seed system's capacity target, and an assumed per-client feed rate (set yours). */
export const EGRESS_DEFAULTS = Object.freeze({ connections: 12_000, bytesPerSecond: 1_000 });

/** Internet egress of the fan-out: every connected client receives its feed over the WS VM's external IP. */
export function estimateEgress({ connections = EGRESS_DEFAULTS.connections, bytesPerSecond = EGRESS_DEFAULTS.bytesPerSecond } = {}, prices = loadPrices()) {
  const gbPerHour = (connections * bytesPerSecond * 3600) / 1e9;
  return {
    connections,
    bytesPerSecond,
    gbPerHour: round3(gbPerHour),
    hourly: round3(gbPerHour * prices.internetEgressGb),
    monthly: round2(gbPerHour * prices.internetEgressGb * prices.hoursPerMonth),
    pricePerGb: prices.internetEgressGb,
  };
}

/** How many VMs of a role the config runs: ws.count (a fleet), loadtest.count; the autoscaler's min/max are shown apart. */
export function vmCount(config, role) {
  const n = role === 'backend' ? 1 : Number(config?.[role]?.count ?? 1);
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

const isFleet = (config) => vmCount(config, 'ws') >= 2;

/**
 * The fleet's balancer: the passthrough network load balancer's forwarding rule (and the
 * Application Load Balancer's for wss://), the fleet's static address on it, and the data it
 * processes, priced on the fan-out volume.
 */
export function estimateBalancer(config, egress, prices) {
  const hours = prices.hoursPerMonth;
  const forwardingRules = config?.ws?.domain ? 2 : 1;
  const dataGbPerMonth = egress.gbPerHour * hours;
  const items = {
    forwardingRules: forwardingRules * prices.forwardingRuleHour * hours,
    staticIp: forwardingRules * prices.staticIpHour * hours,
    dataProcessed: dataGbPerMonth * prices.lbDataProcessedGb,
  };
  const monthly = items.forwardingRules + items.staticIp + items.dataProcessed;
  return {
    forwardingRules,
    dataGbPerMonth: round2(dataGbPerMonth),
    pricePerGb: prices.lbDataProcessedGb,
    hourly: round3(monthly / hours),
    monthly: round2(monthly),
    items: Object.fromEntries(Object.entries(items).map(([k, v]) => [k, round2(v)])),
  };
}

export function estimateMonthlyCost(config, prices, egressInputs = {}) {
  if (config === undefined) return loadStackConfig().then((loaded) => estimateMonthlyCost(loaded, prices, egressInputs));
  prices ??= loadPrices();
  const hours = prices.hoursPerMonth;
  const fleet = isFleet(config);
  // The load-test VM only counts when it is part of the deployment (loadtest.enabled).
  const roles = Object.entries(VM_EXTRAS).filter(([role]) => role !== 'loadtest' || config?.loadtest?.enabled !== false);
  const vms = roles.map(([role, baseExtras]) => {
    const extras = fleet && role === 'ws' ? { staticIp: false, nat: true } : baseExtras;
    const count = vmCount(config, role);
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
    for (const k of Object.keys(items)) items[k] *= count;
    const monthly = items.compute + items.disk + items.staticIp + items.nat;
    return {
      role,
      count,
      machineType: vm.machineType,
      vcpus: shape.vcpus,
      memoryGb: shape.memoryGb,
      diskGb: vm.diskGb,
      hourly: round3(monthly / hours),
      monthly: round2(monthly),
      items: Object.fromEntries(Object.entries(items).map(([k, v]) => [k, round2(v)])),
    };
  });
  const egress = estimateEgress(egressInputs, prices);
  const balancer = fleet ? estimateBalancer(config, egress, prices) : undefined;
  const monthly = vms.reduce((sum, vm) => sum + vm.monthly, 0) + egress.monthly + (balancer?.monthly ?? 0);
  return {
    currency: prices.currency,
    priceDate: prices.date,
    region: prices.region,
    hoursPerMonth: hours,
    vms,
    egress,
    ...(balancer ? { balancer } : {}),
    ...(config?.ws?.autoscale ? { autoscale: { min: config.ws.autoscale.min, max: config.ws.autoscale.max } } : {}),
    hourly: round3(monthly / hours),
    monthly: round2(monthly),
  };
}

/**
 * What a stopped deployment (gcp:stop: VMs stopped, disks and the static address kept) still
 * costs per month: the disks, and the static address at the unused rate.
 */
export function stoppedMonthlyCost(config, prices = loadPrices()) {
  const roles = Object.keys(VM_EXTRAS).filter((role) => role !== 'loadtest' || config?.loadtest?.enabled !== false);
  // A stopped fleet is resized to 0: its nodes' disks go with them.
  const kept = (role) => (role === 'ws' && isFleet(config) ? 0 : vmCount(config, role));
  const disks = roles.reduce((sum, role) => sum + kept(role) * config[role].diskGb * prices.pdBalancedGbMonth, 0);
  // A stopped fleet's address stays on its forwarding rule: in use, and the rule is billed too.
  const rules = isFleet(config) ? (config.ws.domain ? 2 : 1) : 0;
  const staticIp = (rules ? rules * prices.staticIpHour : prices.staticIpUnusedHour) * prices.hoursPerMonth;
  const forwardingRules = rules * prices.forwardingRuleHour * prices.hoursPerMonth;
  return {
    currency: prices.currency,
    priceDate: prices.date,
    disks: round2(disks),
    staticIp: round2(staticIp),
    ...(rules ? { forwardingRules: round2(forwardingRules) } : {}),
    monthly: round2(disks + staticIp + forwardingRules),
  };
}

export function formatEstimate(estimate) {
  const money = (n) => n.toFixed(2).padStart(9);
  const label = (vm) => (vm.count > 1 ? `${vm.role} x${vm.count}` : vm.role);
  // The first column fits the longest row name (9 for the single-VM shape).
  const w = Math.max(9, ...estimate.vms.map((vm) => label(vm).length + 1));
  const lines = [
    `Estimated cost, ${estimate.region} list prices of ${estimate.priceDate} (${estimate.currency}, ${estimate.hoursPerMonth} h/month):`,
    `  ${'vm'.padEnd(w)}${'machine'.padEnd(15)}${'vCPU'.padStart(5)}${'GB'.padStart(5)}${'disk'.padStart(6)}${'compute'.padStart(9)}${'disk'.padStart(9)}${'ip+nat'.padStart(9)}${'month'.padStart(9)}${'hour'.padStart(8)}`,
  ];
  for (const vm of estimate.vms) {
    lines.push(
      `  ${label(vm).padEnd(w)}${vm.machineType.padEnd(15)}${String(vm.vcpus).padStart(5)}${String(vm.memoryGb).padStart(5)}${String(vm.diskGb).padStart(6)}` +
        `${money(vm.items.compute)}${money(vm.items.disk)}${money(vm.items.staticIp + vm.items.nat)}${money(vm.monthly)}${vm.hourly.toFixed(3).padStart(8)}`,
    );
  }
  const e = estimate.egress;
  if (e) {
    lines.push(
      `  ${'egress'.padEnd(w)}${`${e.connections} conns x ${e.bytesPerSecond} B/s = ${e.gbPerHour} GB/h at ${e.pricePerGb}/GB`.padEnd(66)}${money(e.monthly)}${e.hourly.toFixed(3).padStart(8)}`,
    );
  }
  const b = estimate.balancer;
  if (b) {
    const what = `${b.forwardingRules} forwarding rule(s)+address(es), ${b.dataGbPerMonth} GB x ${b.pricePerGb}/GB`;
    lines.push(`  ${'balancer'.padEnd(w)}${what.padEnd(66)}${money(b.monthly)}${b.hourly.toFixed(3).padStart(8)}`);
  }
  if (estimate.autoscale) {
    const per = estimate.vms.find((v) => v.role === 'ws');
    const one = per.monthly / per.count;
    lines.push(`  ws autoscales ${estimate.autoscale.min}..${estimate.autoscale.max} nodes: ${(one * estimate.autoscale.min).toFixed(2)} to ${(one * estimate.autoscale.max).toFixed(2)} a month for the nodes`);
  }
  lines.push(`  ${'total'.padEnd(w + 66)}${money(estimate.monthly)}${estimate.hourly.toFixed(3).padStart(8)}`);
  lines.push(`  All rows are list prices of ${estimate.priceDate}. Egress at the first Premium Tier tier; set --connections and --bytes-per-second for your feed.`);
  lines.push('  Excludes NAT data processing and log ingestion; gcp:stop keeps only disks and the address, gcp:delete stops all of it.');
  return lines.join('\n');
}

/**
 * Loads the same validated config the stacks use (ODIN_ENV and the env overrides apply). An
 * estimate needs no project, so a placeholder stands in when none is set (it never reaches a plan).
 */
export async function loadStackConfig(env = process.env) {
  const { tsImport } = await import('tsx/esm/api');
  const { loadConfig } = await tsImport('../stacks/config/load.ts', import.meta.url);
  return loadConfig({ env: { ...env, GCP_PROJECT: env.GCP_PROJECT?.trim() || 'cost-estimate-only' } });
}

const USAGE = 'usage: node scripts/cost.mjs [--json] [--connections N] [--bytes-per-second B]; ODIN_ENV picks the config';

async function main(argv) {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, options: { json: { type: 'boolean' }, connections: { type: 'string' }, 'bytes-per-second': { type: 'string' } } }));
  } catch (e) {
    console.error(`cost: ${e.message} (${USAGE})`);
    return 2;
  }
  const egress = {};
  for (const [flag, key] of [['connections', 'connections'], ['bytes-per-second', 'bytesPerSecond']]) {
    if (values[flag] === undefined) continue;
    const n = Number(values[flag]);
    if (!/^\d+$/.test(values[flag]) || n > 10_000_000) {
      console.error(`cost: --${flag}=${JSON.stringify(values[flag])}: must be a whole number 0..10000000`);
      return 2;
    }
    egress[key] = n;
  }
  let config;
  try {
    config = await loadStackConfig();
  } catch (err) {
    console.error(err.message);
    return 1;
  }
  const estimate = estimateMonthlyCost(config, undefined, egress);
  console.log(values.json ? JSON.stringify(estimate, null, 2) : formatEstimate(estimate));
  return 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
