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

const ws = z.strictObject({
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
    zone: z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, 'must be a GCP zone such as us-central1-a').default('us-central1-a'),
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
    const source = config.loadtest.sourceCidr;
    if (source) {
      const subnet = parseCidr(config.subnetCidr) as Cidr;
      const range = parseCidr(source) as Cidr;
      const fixed = Object.values(HOST_OFFSETS).map((n) => cidrHost(subnet, n));
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

export type StackConfigInput = z.input<typeof StackConfigSchema>;
export type StackConfig = Readonly<z.output<typeof StackConfigSchema>>;
