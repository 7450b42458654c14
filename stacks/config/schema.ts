// The one typed shape of a deployment's config. Defaults mirror the system we replace
// (us-central1-a, e2-highcpu-8 WS VM with 3 shards, 18,000 connections, 7 cores).
import { z } from 'zod';
import { cidrContains, cidrContainsIp, cidrHost, parseCidr, isPrivate, type Cidr } from './cidr.js';

/** Host numbers inside the subnet for each VM's reserved internal address. */
export const HOST_OFFSETS = { backend: 10, ws: 20, loadtest: 30 } as const;

function cidr(check?: (c: Cidr) => string | null) {
  return z.string().transform((text, ctx) => {
    const parsed = parseCidr(text);
    if (typeof parsed === 'string') {
      ctx.addIssue({ code: 'custom', message: parsed });
      return z.NEVER;
    }
    const problem = check?.(parsed);
    if (problem) {
      ctx.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return parsed.text;
  });
}

const machineType = z.string().regex(/^[a-z][a-z0-9]*-[a-z0-9-]+$/, 'must be a machine type such as e2-highcpu-8');
const diskGb = z.int().min(10, 'must be at least 10 (GB)').max(2000, 'must be at most 2000 (GB)');

const zone = z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, 'must be a GCP zone such as us-central1-a');

/** CPU-based autoscaling of the fleet; scale-in removes at most one node per window, and each drains first. */
const autoscale = z.strictObject({
  min: z.int('must be an integer').min(2, 'must be at least 2 (one node can always be draining)').max(100),
  max: z.int('must be an integer').min(2).max(100),
  /** Target CPU utilization of the group (0.1..0.9). */
  target: z.number('must be a number').min(0.1, 'must be at least 0.1').max(0.9, 'must be at most 0.9'),
});

const ws = z.strictObject({
  /** 1: one VM with the static address (the original shape); 2 or more: a managed group behind a network load balancer. */
  count: z.int('must be an integer').min(1, 'must be at least 1').max(100, 'must be at most 100').default(1),
  /** Zones the group spreads over (count >= 2); default: the config's zone. */
  zones: z.array(zone).min(1, 'needs at least one zone').max(4).optional(),
  autoscale: autoscale.optional(),
  /** A DNS name for wss:// (count >= 2): a Google-managed certificate on an external Application Load Balancer. */
  domain: z
    .string()
    .regex(/^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/, 'must be a lowercase DNS name such as feed.example.com')
    .optional(),
  machineType: machineType.default('e2-highcpu-8'),
  diskGb: diskGb.default(20),
  shards: z.int('must be an integer').min(1, 'must be at least 1').max(64, 'must be at most 64').default(3),
  maxConnections: z.int('must be an integer').min(1).max(1_000_000).default(18_000),
  cpuLimit: z.number('must be a number of cores').positive('must be above 0').max(416).default(7),
});

const backend = z.strictObject({
  machineType: machineType.default('e2-medium'),
  diskGb: diskGb.default(30),
  // Redpanda shares the 4 GB e2-medium with Prometheus, Grafana, the console and the publisher.
  redpandaMemory: z.string().regex(/^\d+[MG]$/, 'must look like 1536M or 2G').default('1536M'),
});

const loadtest = z.strictObject({
  /** Off by default: `gcp:load-test:capacity` brings the VM up when it runs and --teardown removes it. */
  enabled: z.boolean('must be true or false').default(false),
  /** Load-test VMs run together by gcp:load-test:capacity (addresses .30, .31, ...). */
  count: z.int('must be an integer').min(1, 'must be at least 1').max(8, 'must be at most 8').default(1),
  machineType: machineType.default('e2-standard-8'),
  diskGb: diskGb.default(20),
  /** Alias IP range on the load-test VM's NIC: extra source addresses for outgoing connections. */
  sourceCidr: cidr().optional(),
});

const kafka = z.strictObject({
  topics: z
    .array(z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/, 'must be a Kafka topic name'))
    .min(1, 'needs at least one topic')
    .default(['odin.trades', 'odin.prices']),
  partitions: z.int().min(1).max(256).default(6),
});

export const StackConfigSchema = z
  .strictObject({
    env: z.string().regex(/^[a-z](?:[a-z0-9-]{0,14}[a-z0-9])?$/, 'must be 1-16 lowercase letters, digits or hyphens'),
    project: z
      .string({
        error: (issue) =>
          issue.input === undefined
            ? 'is required: the GCP project id to deploy into (set GCP_PROJECT, or "project" in this file)'
            : 'must be a string',
      })
      .regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'must be a GCP project id (6-30 lowercase letters, digits, hyphens; starts with a letter)'),
    region: z.string().regex(/^[a-z]+-[a-z]+\d+$/, 'must be a GCP region such as us-central1').default('us-central1'),
    zone: zone.default('us-central1-a'),
    image: z.string().min(1).default('debian-cloud/debian-12'),
    subnetCidr: cidr((c) => {
      if (!isPrivate(c)) return `${c.text} is not a private (RFC 1918) range`;
      if (c.prefix < 16 || c.prefix > 26) return `${c.text}: prefix must be /16 to /26 so the fixed VM addresses fit`;
      return null;
    }).default('10.10.0.0/24'),
    stateBucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/, 'must be a GCS bucket name (no gs:// prefix)')
      .optional(),
    installOpsAgent: z.boolean().default(true),
    labels: z.record(z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/), z.string().regex(/^[a-z0-9_-]{0,63}$/)).default({}),
    ws: ws.prefault({}),
    backend: backend.prefault({}),
    loadtest: loadtest.prefault({}),
    kafka: kafka.prefault({}),
  })
  .superRefine((config, ctx) => {
    if (!config.zone.startsWith(`${config.region}-`)) {
      ctx.addIssue({ code: 'custom', path: ['zone'], message: `${config.zone} is not in region ${config.region}` });
    }
    fleetProblems(config).forEach(([path, message]) => ctx.addIssue({ code: 'custom', path, message }));
    const source = config.loadtest.sourceCidr;
    if (source) {
      const subnet = parseCidr(config.subnetCidr) as Cidr;
      const range = parseCidr(source) as Cidr;
      const fixed = fixedHostOffsets(config.loadtest.count).map((n) => cidrHost(subnet, n));
      if (!cidrContains(subnet, range)) {
        ctx.addIssue({ code: 'custom', path: ['loadtest', 'sourceCidr'], message: `${source} is not inside subnetCidr ${config.subnetCidr}` });
      } else if (fixed.some((ip) => cidrContainsIp(range, ip))) {
        ctx.addIssue({
          code: 'custom',
          path: ['loadtest', 'sourceCidr'],
          message: `${source} overlaps the fixed VM addresses ${fixed.join(', ')}`,
        });
      }
    }
  });

/** Host numbers of every fixed address: the backend, the single WS VM, and one per load-test VM. */
export function fixedHostOffsets(loadtestCount: number): number[] {
  return [HOST_OFFSETS.backend, HOST_OFFSETS.ws, ...Array.from({ length: loadtestCount }, (_, i) => HOST_OFFSETS.loadtest + i)];
}

type ParsedWs = z.output<typeof ws>;
function fleetProblems(config: { region: string; ws: ParsedWs }): Array<[string[], string]> {
  const { count, zones, autoscale: scale, domain } = config.ws;
  const out: Array<[string[], string]> = [];
  for (const [i, z] of (zones ?? []).entries()) {
    if (!z.startsWith(`${config.region}-`)) out.push([['ws', 'zones', String(i)], `${z} is not in region ${config.region}`]);
  }
  if (count === 1) {
    if (zones) out.push([['ws', 'zones'], 'applies only to a fleet: set ws.count to 2 or more']);
    if (scale) out.push([['ws', 'autoscale'], 'applies only to a fleet: set ws.count to 2 or more']);
    if (domain) out.push([['ws', 'domain'], 'wss:// is served by the fleet load balancer: set ws.count to 2 or more']);
  }
  if (scale) {
    if (scale.max < scale.min) out.push([['ws', 'autoscale', 'max'], `${scale.max} is below min ${scale.min}`]);
    else if (count < scale.min || count > scale.max) out.push([['ws', 'count'], `${count} is outside autoscale ${scale.min}..${scale.max}`]);
  }
  return out;
}

export type StackConfigInput = z.input<typeof StackConfigSchema>;
export type StackConfig = Readonly<z.output<typeof StackConfigSchema>>;
