// Publisher configuration from env vars and flags (a flag wins), parsed once into a frozen object.
// Every problem is reported together; main exits 2 on any.
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { TOKEN_RE } from '../common/channel.js';

export interface PublisherConfig {
  readonly brokers: readonly string[];
  /** Records per second, all topics and tokens together. */
  readonly rate: number;
  readonly tokens: readonly string[];
  /** Topics ending in .trades or .prices; the suffix picks the record shape. */
  readonly topics: readonly string[];
  readonly host: string;
  readonly port: number;
  /** Stop after this many records (0: run until SIGTERM). */
  readonly maxRecords: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export type PublisherConfigResult = { ok: true; config: PublisherConfig } | { ok: false; problems: string[] };

const TOPIC = /^[A-Za-z0-9._-]{0,240}\.(trades|prices)$/;
const HOST_PORT = /^[A-Za-z0-9.-]+:\d{1,5}$/;

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

/** `N` means ODIN1..ODINN; otherwise a comma-separated list of tokens. */
const tokens = z.string().transform((s, ctx) => {
  if (/^\d+$/.test(s.trim())) {
    const n = Number(s);
    if (n < 1 || n > 100_000) ctx.addIssue({ code: 'custom', message: 'a token count must be 1..100000' });
    return Array.from({ length: n }, (_, i) => `ODIN${i + 1}`);
  }
  const t = list(s);
  if (t.length === 0) ctx.addIssue({ code: 'custom', message: 'needs at least one token' });
  for (const x of t) if (!TOKEN_RE.test(x)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(x)} is not a token [A-Za-z0-9_.-]{1,64}` });
  if (new Set(t).size !== t.length) ctx.addIssue({ code: 'custom', message: 'a token is listed twice' });
  return t;
});

export const SETTINGS = {
  brokers: {
    env: 'KAFKA_BROKERS',
    flag: 'brokers',
    def: '',
    schema: z
      .string()
      .transform(list)
      .pipe(z.array(z.string().regex(HOST_PORT, 'each broker must be host:port')).min(1, 'is required (comma-separated host:port)')),
  },
  rate: { env: 'PUBLISHER_RATE', flag: 'rate', def: '100', schema: z.coerce.number().gt(0).max(1_000_000) },
  tokens: { env: 'PUBLISHER_TOKENS', flag: 'tokens', def: '20', schema: tokens },
  topics: {
    env: 'PUBLISHER_TOPICS',
    flag: 'topics',
    def: 'odin.trades,odin.prices',
    schema: z
      .string()
      .transform(list)
      .pipe(z.array(z.string().regex(TOPIC, 'each topic must be a valid name ending in .trades or .prices')).min(1, 'needs at least one topic')),
  },
  host: { env: 'PUBLISHER_HOST', flag: 'host', def: '0.0.0.0', schema: z.string().regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or address') },
  port: { env: 'PUBLISHER_PORT', flag: 'port', def: '3003', schema: z.coerce.number().int().min(0).max(65_535) },
  maxRecords: { env: 'PUBLISHER_MAX_RECORDS', flag: 'max-records', def: '0', schema: z.coerce.number().int().min(0) },
  logLevel: { env: 'LOG_LEVEL', flag: 'log-level', def: 'info', schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) },
} as const;

export function usage(): string {
  const rows = Object.values(SETTINGS).map((s) => `  --${s.flag.padEnd(12)} ${s.env.padEnd(22)} default ${JSON.stringify(s.def)}`);
  return `usage: node dist/publisher.mjs [flags]\n${rows.join('\n')}`;
}

export function parsePublisherConfig(env: Record<string, string | undefined>, argv: string[]): PublisherConfigResult {
  let flags: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(Object.values(SETTINGS).map((s) => [s.flag, { type: 'string' as const }]));
    flags = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true, allowPositionals: false }).values;
  } catch (e) {
    return { ok: false, problems: [(e as Error).message] };
  }
  if (flags.help) return { ok: false, problems: ['help requested'] };
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(SETTINGS)) {
    const raw = (flags[s.flag] as string | undefined) ?? env[s.env] ?? s.def;
    const r = (s.schema as z.ZodType).safeParse(raw);
    if (r.success) out[key] = r.data;
    else for (const i of r.error.issues) problems.push(`${s.env} (--${s.flag}) ${i.message}, got ${JSON.stringify(raw)}`);
  }
  if (problems.length) return { ok: false, problems };
  return { ok: true, config: Object.freeze(out as unknown as PublisherConfig) };
}
