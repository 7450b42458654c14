// Server configuration: env vars and flags, parsed ONCE at the edge into a typed, frozen object.
// Every field has a default or is optional by design, so nothing required can be forgotten;
// every invalid value is reported together (exit 2) before anything listens.
import net from 'node:net';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { STREAM_RE, TOKEN_RE } from '../common/channel.js';
import { parseKafkaConfig, type KafkaConfig } from '../kafka/config.js';
import type { AuthConfig } from '../auth/auth.js';
import { readSecretFile, secretProblem } from '../auth/secret-file.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const num = (min: number, max: number) => z.coerce.number().min(min).max(max);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const list = (re: RegExp, what: string) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
    .pipe(z.array(z.string().regex(re, `each entry must be ${what}`)).min(1, 'needs at least one entry'));

const addr = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'must be HOST:PORT or :PORT (e.g. :3004, 127.0.0.1:0)')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    const host = s.slice(0, i).replace(/^\[|\]$/g, '');
    return { host: host || '0.0.0.0', port: Number(s.slice(i + 1)) };
  })
  .refine((a) => a.port <= 65535, 'port must be 0..65535');

const PRIVATE_CIDRS = ['127.0.0.0/8', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '::1/128', 'fc00::/7', 'fe80::/10'];
const cidrList = z
  .string()
  .transform((s) => (s === 'private' ? PRIVATE_CIDRS : s === 'any' ? ['0.0.0.0/0', '::/0'] : s.split(',').map((x) => x.trim()).filter(Boolean)))
  .refine((list) => list.length > 0 && list.every(validCidr), 'must be private, any, or a comma list of CIDRs such as 10.0.0.0/8,203.0.113.7/32');

function validCidr(c: string): boolean {
  const [ip, bits, extra] = c.split('/');
  const family = net.isIP(ip ?? '');
  if (!family || extra !== undefined || !/^\d{1,3}$/.test(bits ?? '')) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

const secret = z.string().refine((v) => secretProblem(v) === null, secretProblem('')!);
const claimValue = z.string().regex(/^[\x21-\x7e]{1,256}$/, 'must be 1..256 printable ASCII characters without spaces (the exact aud/iss value tokens carry)');

const totalMemMb = Math.floor(os.totalmem() / 1024 / 1024);

/** One row per setting: env name, flag name, schema, default (as the env text), doc. */
export const SETTINGS = {
  mode: { env: 'WS_MODE', flag: 'mode', schema: z.enum(['multi', 'single']), def: 'multi', doc: 'multi: N shard processes; single: one shard' },
  addr: { env: 'WS_ADDR', flag: 'lb-addr', schema: addr, def: ':3004', doc: 'front listener address (/ws, /health, /metrics)' },
  shards: { env: 'WS_SHARDS', flag: 'shards', schema: int(1, 64), def: '3', doc: 'number of shard processes (multi mode)' },
  maxConnections: { env: 'WS_MAX_CONNECTIONS', flag: 'max-connections', schema: int(1, 10_000_000), def: '18000', doc: 'guard: total client connections before upgrades get 503' },
  cpuLimit: { env: 'WS_CPU_LIMIT', flag: 'cpu-limit', schema: num(0.1, 1024), def: String(os.availableParallelism()), doc: 'guard: cores in use (all processes) above which upgrades get 503' },
  memoryLimitMb: { env: 'WS_MEMORY_LIMIT_MB', flag: 'memory-limit-mb', schema: int(64, 10_000_000), def: String(Math.floor(totalMemMb * 0.8)), doc: 'guard: total RSS (MiB) above which upgrades get 503' },
  retryAfterS: { env: 'WS_RETRY_AFTER_S', flag: 'retry-after', schema: int(1, 3600), def: '5', doc: 'Retry-After seconds sent with 503' },
  maxPayload: { env: 'WS_MAX_PAYLOAD', flag: 'max-payload', schema: int(128, 1 << 20), def: '16384', doc: 'largest client frame in bytes; larger closes with 1009' },
  maxChannels: { env: 'WS_MAX_CHANNELS', flag: 'max-channels', schema: int(1, 10_000), def: '100', doc: 'channels one client may hold' },
  clientBufferBytes: { env: 'WS_CLIENT_BUFFER_BYTES', flag: 'client-buffer-bytes', schema: int(1024, 1 << 30), def: String(1 << 20), doc: 'bytes buffered for one client before it is closed with 4008' },
  clientOpsPerSec: { env: 'WS_CLIENT_OPS_PER_SEC', flag: 'client-ops-per-sec', schema: int(1, 100_000), def: '50', doc: 'client operations per second (a request is 1, a subscribe/unsubscribe 1 per channel; burst 2x) before RATE_LIMITED' },
  shardBufferBytes: { env: 'WS_SHARD_BUFFER_BYTES', flag: 'shard-buffer-bytes', schema: int(1 << 20, 2 ** 40), def: String(256 << 20), doc: 'budget for all client output buffers of one shard; over it the largest holders are closed with 4008' },
  pingIntervalMs: { env: 'WS_PING_INTERVAL_MS', flag: 'ping-interval-ms', schema: int(0, 3_600_000), def: '30000', doc: 'server WebSocket ping period; a client that has not answered the previous ping is cut off (0 = off)' },
  idleTimeoutMs: { env: 'WS_IDLE_TIMEOUT_MS', flag: 'idle-timeout-ms', schema: int(0, 86_400_000), def: '60000', doc: 'a connection holding no channel this long is closed with 4009 (0 = off)' },
  busBatchSize: { env: 'WS_BUS_BATCH_SIZE', flag: 'bus-batch-size', schema: int(1, 10_000), def: '100', doc: 'broadcast bus: messages per batch' },
  busFlushMs: { env: 'WS_BUS_FLUSH_MS', flag: 'bus-flush-ms', schema: int(0, 10_000), def: '5', doc: 'broadcast bus: longest wait before a partial batch is sent' },
  busShardBufferBytes: { env: 'WS_BUS_SHARD_BUFFER_BYTES', flag: 'bus-shard-buffer-bytes', schema: int(65_536, 1 << 30), def: String(4 << 20), doc: 'broadcast bus: bytes buffered for one shard before its batches are dropped (counted)' },
  busChannelIdleMs: { env: 'WS_BUS_CHANNEL_IDLE_MS', flag: 'bus-channel-idle-ms', schema: int(100, 86_400_000), def: '300000', doc: 'broadcast bus: a channel with no message for this long and no concrete subscriber is forgotten (new epoch)' },
  busMaxChannels: { env: 'WS_BUS_MAX_CHANNELS', flag: 'bus-max-channels', schema: int(100, 100_000_000), def: '200000', doc: 'broadcast bus: channels kept before the least recently used unsubscribed one is forgotten early' },
  headersTimeoutMs: { env: 'WS_HEADERS_TIMEOUT_MS', flag: 'headers-timeout-ms', schema: int(500, 120_000), def: '10000', doc: 'a client must send its whole request head within this (slowloris bound; 408 after)' },
  saturationLagMs: { env: 'WS_SATURATION_LAG_MS', flag: 'saturation-lag-ms', schema: num(0, 60_000), def: '500', doc: 'judged every 250 ms: a shard whose event-loop delay (p99 over the quarter, or the lateness of that sample) or delivery lag (p99 age of the bus batches it delivered in the quarter) passes this refuses new upgrades with 503 saturated until both stay under half of it for a second; its first second is not judged (0 = off)' },
  saturationProbationMs: { env: 'WS_SATURATION_PROBATION_MS', flag: 'saturation-probation-ms', schema: int(0, 600_000), def: '0', doc: 'clients admitted within this long are on probation: while a shard is over WS_SATURATION_LAG_MS because of its fan-out it cuts its ceiling to the share of its clients the fan-out can carry (measured: its time spent writing and its pace through the bus; at most once a second) and closes the newest on probation down to it (1013, up to 500 per 250 ms), so the clients it has served longer keep their latency; the ceiling rises ~1%/s while calm at it; 0 = off' },
  shardLivenessMs: { env: 'WS_SHARD_LIVENESS_MS', flag: 'shard-liveness-ms', schema: int(500, 600_000), def: '3000', doc: 'a shard that answers no heartbeat this long while not running (4x this long while it keeps using CPU), or whose bus output stays over its cap this long, is declared hung, SIGKILLed and restarted' },
  drainTimeoutMs: { env: 'WS_DRAIN_TIMEOUT_MS', flag: 'drain-timeout-ms', schema: int(100, 600_000), def: '10000', doc: 'shutdown deadline' },
  drainNoticeMs: { env: 'WS_DRAIN_NOTICE_MS', flag: 'drain-notice-ms', schema: int(0, 600_000), def: '0', doc: 'on shutdown, /health and new upgrades answer 503 this long while clients are still served (a balancer stops routing) before the drain starts; added to WS_DRAIN_TIMEOUT_MS' },
  recoveryWindowMs: { env: 'WS_RECOVERY_WINDOW_MS', flag: 'recovery-window-ms', schema: int(0, 86_400_000), def: '60000', doc: 'recovery window: how long messages are kept for clients that reconnect with `since` (0 = off); with Kafka also how far back a starting server reads' },
  recoveryMaxMessages: { env: 'WS_RECOVERY_MAX_MESSAGES', flag: 'recovery-max-messages', schema: int(1, 10_000_000), def: '10000', doc: 'recovery window: messages kept per channel' },
  recoveryMaxBytes: { env: 'WS_RECOVERY_MAX_BYTES', flag: 'recovery-max-bytes', schema: int(1 << 20, 2 ** 40), def: String(128 << 20), doc: 'recovery window: bytes kept for all channels together (the oldest message of the whole window goes first)' },
  recoveryMaxReplayBytes: { env: 'WS_RECOVERY_MAX_REPLAY_BYTES', flag: 'recovery-max-replay-bytes', schema: int(1024, 1 << 30), def: '', doc: 'largest replay one subscribe may get (at most WS_CLIENT_BUFFER_BYTES; default the smaller of 512 KiB and half of it); larger is refused as too_large' },
  recoveryWaitMs: { env: 'WS_RECOVERY_WAIT_MS', flag: 'recovery-wait-ms', schema: int(0, 600_000), def: '10000', doc: 'how long a recovery may wait for a starting server to know its Kafka positions before it is refused as not_ready' },
  reconnectWindowMs: { env: 'WS_RECONNECT_WINDOW_MS', flag: 'reconnect-window-ms', schema: int(0, 600_000), def: '5000', doc: 'on shutdown, clients are told (1001 reason) to spread their reconnects over this long' },
  streams: { env: 'WS_STREAMS', flag: 'streams', schema: list(STREAM_RE, 'a lowercase stream name'), def: 'trades,prices', doc: 'known streams (channel prefixes)' },
  feedTokens: { env: 'FEED_TOKENS', flag: 'feed-tokens', schema: list(TOKEN_RE, 'a token [A-Za-z0-9_.-]{1,64}'), def: 'ODIN1,ODIN2,ODIN3,ODIN4,ODIN5', doc: 'embedded feed: tokens' },
  feedStreams: { env: 'FEED_STREAMS', flag: 'feed-streams', schema: list(STREAM_RE, 'a lowercase stream name'), def: '', doc: 'embedded feed: streams (default: WS_STREAMS)' },
  feedRate: { env: 'FEED_RATE', flag: 'feed-rate', schema: num(0.01, 10_000), def: '1', doc: 'embedded feed: messages per second PER channel' },
  feedPayloadBytes: { env: 'FEED_PAYLOAD_BYTES', flag: 'feed-payload-bytes', schema: int(0, 65536), def: '0', doc: 'embedded feed: pad each message data to about this many bytes' },
  authSecretFile: { env: 'WS_AUTH_SECRET_FILE', flag: 'auth-secret-file', schema: z.string().min(1), def: '', doc: 'file with the HS256 secret, or two (current, previous) one per line during a rotation; when set, clients need a token' },
  authSecret: { env: 'WS_AUTH_SECRET', flag: 'auth-secret', schema: secret, def: '', secret: true, doc: 'discouraged (the environment and argv are readable by other processes): the HS256 secret itself; use WS_AUTH_SECRET_FILE' },
  authRequireExp: { env: 'WS_AUTH_REQUIRE_EXP', flag: 'auth-require-exp', schema: bool, def: 'true', doc: 'refuse tokens without an exp claim (TOKEN_NO_EXP)' },
  authAudience: { env: 'WS_AUTH_AUDIENCE', flag: 'auth-audience', schema: claimValue, def: '', doc: 'when set, a token\'s aud must include it (TOKEN_AUDIENCE)' },
  authIssuer: { env: 'WS_AUTH_ISSUER', flag: 'auth-issuer', schema: claimValue, def: '', doc: 'when set, a token\'s iss must equal it (TOKEN_ISSUER)' },
  authClockToleranceS: { env: 'WS_AUTH_CLOCK_TOLERANCE_S', flag: 'auth-clock-tolerance-s', schema: int(0, 300), def: '5', doc: 'seconds of clock skew allowed on exp/nbf, also for the close at exp' },
  metricsAllow: { env: 'WS_METRICS_ALLOW', flag: 'metrics-allow', schema: cidrList, def: 'private', doc: 'who may GET /metrics: private (loopback + private ranges), any, or a comma list of CIDRs' },
  allowedOrigins: {
    env: 'WS_ALLOWED_ORIGINS',
    flag: 'allowed-origins',
    schema: z
      .string()
      .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/, 'each entry must be an origin such as https://app.example.com or http://localhost:8080'))),
    def: '',
    doc: 'origins allowed to open a WebSocket (comma list); empty: any. Clients that send no Origin (non-browsers) are not affected',
  },
  maxConnectionsPerIp: { env: 'WS_MAX_CONNECTIONS_PER_IP', flag: 'max-connections-per-ip', schema: int(0, 10_000_000), def: '0', doc: 'connections one source IP may hold (enforced per shard as ceil(limit / shards)); 0: no limit (behind a balancer that hides client IPs)' },
  maxHttpConnections: { env: 'WS_MAX_HTTP_CONNECTIONS', flag: 'max-http-connections', schema: int(16, 1_000_000), def: '1024', doc: 'plain HTTP connections (not yet upgraded) one shard holds; more are closed at once' },
  logLevel: { env: 'LOG_LEVEL', flag: 'log-level', schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), def: 'info', doc: 'pino log level' },
} as const;

type Settings = typeof SETTINGS;
type Out<K extends keyof Settings> = z.output<Settings[K]['schema']>;

export interface ServerConfig {
  readonly mode: Out<'mode'>;
  readonly addr: Readonly<Out<'addr'>>;
  readonly shards: number;
  readonly maxConnections: number;
  readonly cpuLimit: number;
  readonly memoryLimitMb: number;
  readonly retryAfterS: number;
  readonly maxPayload: number;
  readonly maxChannels: number;
  readonly clientBufferBytes: number;
  readonly clientOpsPerSec: number;
  readonly shardBufferBytes: number;
  readonly pingIntervalMs: number;
  readonly idleTimeoutMs: number;
  readonly busBatchSize: number;
  readonly busFlushMs: number;
  readonly busShardBufferBytes: number;
  readonly busChannelIdleMs: number;
  readonly busMaxChannels: number;
  readonly headersTimeoutMs: number;
  readonly drainTimeoutMs: number;
  /** Draining is announced this long before clients are closed; the drain deadline starts after it. */
  readonly drainNoticeMs: number;
  readonly shardLivenessMs: number;
  readonly saturationLagMs: number;
  readonly saturationProbationMs: number;
  readonly recoveryWindowMs: number;
  readonly recoveryMaxMessages: number;
  readonly recoveryMaxBytes: number;
  readonly recoveryMaxReplayBytes: number;
  readonly recoveryWaitMs: number;
  readonly reconnectWindowMs: number;
  readonly streams: readonly string[];
  readonly feedTokens: readonly string[];
  readonly feedStreams: readonly string[];
  readonly feedRate: number;
  readonly feedPayloadBytes: number;
  /** Client auth; null when neither WS_AUTH_SECRET_FILE nor WS_AUTH_SECRET is set. */
  readonly auth: AuthConfig | null;
  readonly metricsAllow: readonly string[];
  /** Empty: any origin. */
  readonly allowedOrigins: readonly string[];
  readonly maxConnectionsPerIp: number;
  readonly maxHttpConnections: number;
  readonly logLevel: Out<'logLevel'>;
  /** The Kafka source's settings; null when KAFKA_BROKERS is unset (embedded feed). */
  readonly kafka: KafkaConfig | null;
}

/** `warnings`: accepted but discouraged settings, for the caller to log once it has a logger. */
export type ConfigResult = { ok: true; config: ServerConfig; warnings: string[] } | { ok: false; problems: string[] };

export function parseConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): ConfigResult {
  const problems: string[] = [];
  const options = Object.fromEntries(
    Object.values(SETTINGS).map((s) => [s.flag, { type: 'string' as const }]),
  );
  let flags: Record<string, string | undefined> = {};
  try {
    flags = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<string, string>;
  } catch (err) {
    const known = Object.values(SETTINGS).map((s) => `--${s.flag}`).join(', ');
    // A stray positional could be a secret typed in the wrong place: never echo it.
    const e = err as NodeJS.ErrnoException;
    const what = e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' ? 'an argument without a flag (value not shown)' : e.message;
    problems.push(`flags: ${what}; accepted flags: ${known}`);
  }

  const out: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const [key, s] of Object.entries(SETTINGS)) {
    const fromFlag = flags[s.flag];
    const raw = fromFlag ?? env[s.env] ?? s.def;
    const source = (sources[key] = fromFlag !== undefined ? `--${s.flag}` : s.env);
    if (raw === '' && s.def === '') {
      out[key] = null;
      continue;
    }
    const r = (s.schema as z.ZodType).safeParse(raw);
    const shown = 'secret' in s ? ' (value not shown)' : `=${JSON.stringify(raw)}`;
    if (r.success) out[key] = r.data;
    else problems.push(`${source}${shown}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length) return { ok: false, problems };
  const warnings: string[] = [];
  out.auth = authConfig(out, sources, problems, warnings);
  for (const k of AUTH_KEYS) delete out[k];

  if (out.mode === 'single') out.shards = 1;
  if (out.feedStreams === null) out.feedStreams = out.streams;
  if (out.allowedOrigins === null) out.allowedOrigins = [];
  const streams = new Set(out.streams as string[]);
  for (const s of out.feedStreams as string[]) {
    if (!streams.has(s)) problems.push(`FEED_STREAMS: "${s}" is not one of WS_STREAMS (${[...streams].join(',')})`);
  }
  // Derived by default, so a small client buffer never makes the default invalid.
  if (out.recoveryMaxReplayBytes === null) out.recoveryMaxReplayBytes = Math.max(1024, Math.min(512 << 10, Math.floor((out.clientBufferBytes as number) / 2)));
  if ((out.recoveryMaxReplayBytes as number) > (out.clientBufferBytes as number)) {
    problems.push(`${sources.recoveryMaxReplayBytes}=${out.recoveryMaxReplayBytes}: must be at most WS_CLIENT_BUFFER_BYTES (${out.clientBufferBytes}): a replay is written to the client at once`);
  }
  const kafka = parseKafkaConfig(env, out.streams as string[]);
  if (!kafka.ok) problems.push(...kafka.problems);
  if (problems.length || !kafka.ok) return { ok: false, problems };
  const config = { ...out, kafka: kafka.value } as unknown as ServerConfig;
  return { ok: true, config: deepFreeze(config), warnings };
}

const AUTH_KEYS = ['authSecretFile', 'authSecret', 'authRequireExp', 'authAudience', 'authIssuer', 'authClockToleranceS'] as const;

/** The auth settings as one object; the file is preferred, the plain secret warned about. */
function authConfig(out: Record<string, unknown>, src: Record<string, string>, problems: string[], warnings: string[]): AuthConfig | null {
  const file = out.authSecretFile as string | null;
  const plain = out.authSecret as string | null;
  const audience = out.authAudience as string | null;
  const issuer = out.authIssuer as string | null;
  if (file !== null && plain !== null) {
    problems.push(`${src.authSecretFile} and ${src.authSecret} are both set: set only ${src.authSecretFile}`);
    return null;
  }
  if (file === null && plain === null) {
    for (const k of ['authAudience', 'authIssuer'] as const) {
      if (out[k] !== null) problems.push(`${src[k]} is set but auth is off: set WS_AUTH_SECRET_FILE to turn auth on, or unset ${src[k]}`);
    }
    return null;
  }
  let secrets: string[];
  if (file !== null) {
    const r = readSecretFile(file, src.authSecretFile);
    if (!r.ok) {
      problems.push(r.problem);
      return null;
    }
    secrets = r.secrets;
    warnings.push(...r.warnings);
  } else {
    secrets = [plain!];
    warnings.push(`${src.authSecret} is discouraged (other processes can read the environment and argv): put the secret in a file only the server can read and set WS_AUTH_SECRET_FILE`);
  }
  return {
    secrets,
    requireExp: out.authRequireExp as boolean,
    audience,
    issuer,
    clockToleranceS: out.authClockToleranceS as number,
  };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
