// Small interfaces shared between runtime roles. Each belongs to its consumer; they live
// here only because more than one role imports them.

/** One market-data message as a source (embedded feed, Kafka) hands it to the bus. */
export interface SourceMessage {
  /** Stream name, e.g. `trades` (a Kafka topic maps to its last dot-separated part). */
  readonly stream: string;
  /** Token, e.g. `ODIN42` (the Kafka record key). */
  readonly token: string;
  /** Source timestamp in ms since the epoch (end-to-end latency is measured from it). */
  readonly ts: number;
  /** The payload: the text of a JSON object, spliced into the envelope unchanged. */
  readonly data: string;
  /**
   * Where the record comes from (`p<partition>` for Kafka, `e<run>` for the embedded feed) and its
   * offset there: the same on every server process for the same record (the message's `pos`).
   */
  readonly origin: string;
  readonly offset: number;
}

/** What a source needs from the bus: accept a batch (returning means accepted). */
export interface Dispatch {
  dispatch(batch: readonly SourceMessage[]): void;
}

/** A long-lived source of messages (embedded feed or Kafka consumer pool). */
export interface MessageSource {
  readonly kind: 'embedded' | 'kafka';
  start(): Promise<void>;
  /** Idempotent. */
  stop(): Promise<void>;
  /**
   * The offset after which this process has every record of `origin` for `stream` (the recovery
   * window's coverage): 'pending' while it cannot tell yet, null for an origin it has not.
   */
  floor(stream: string, origin: string): number | 'pending' | null;
  /** Merged into /health under the source's key (e.g. `kafka`). */
  health(): Record<string, unknown>;
}

/** GET /health body (200 when serving, 503 while draining). */
export interface HealthBody {
  status: 'ok' | 'draining';
  /** The release serving (release.json next to the bundle), or `dev`. */
  version: string;
  mode: 'multi' | 'single';
  system: {
    total_connections: number;
    max_connections: number;
    rejected: number;
    rejected_by_reason: Record<string, number>;
    /** Connections a shard passed to another one for balance (SO_REUSEPORT spreads by hash). */
    relayed: number;
    /** The same by cause: `balance` (over the tolerance), `no_credit` (out of credits below the maximum), `fd_limit`. */
    relayed_by_cause: Record<string, number>;
    /** Relayed connections closed because their shard died (or the handle arrived without its socket). */
    relays_failed: number;
    cpu: number; // cores in use, all processes summed
    cpu_limit: number;
    memory_mb: number; // RSS of all processes summed
    memory_limit_mb: number;
    uptime_s: number;
    source: 'embedded' | 'kafka';
    /** WS_SATURATION_LAG_MS, and how many shards refuse upgrades for it now. */
    saturation_lag_ms: number;
    saturated_shards: number;
  };
  shards: Array<{
    id: number;
    pid: number | null;
    up: boolean;
    connections: number;
    channels: number;
    restarts: number;
    /** Restarts by cause: the process exited, or it was declared hung and killed. */
    crashes: number;
    hangs: number;
    /** Exited 3 times within a minute and not stable since (the backoff is then at its longest). */
    crash_looping: boolean;
    heartbeat_rtt_ms: number;
    loop_lag_ms: number;
    /** p99 age of bus batches when this shard delivered them, over its last second. */
    delivery_lag_ms: number;
    saturated: boolean;
    /** Worst quarter-second share of the last second the shard spent writing to its clients (0..1). */
    fanout_share: number;
    /** Clients past which the shard refuses upgrades after a probation cut; null while it has none. */
    ceiling: number | null;
    bus_batches: number;
    bus_messages: number;
    deliveries: number;
    slow_consumers: number;
    relayed: number;
    rss_mb: number;
    cpu: number;
  }>;
  bus: {
    batches: number;
    messages: number;
    batch_size: number;
    flush_ms: number;
    channels: number;
    max_channels: number;
    channel_idle_ms: number;
    channel_evictions: number;
    shard_buffer_bytes: number;
    /** Most shards are behind: the Kafka source is paused until they drain. */
    congested: boolean;
    shards: Array<{ id: number; pending_bytes: number; dropped_bytes: number; dropped_messages: number; over_cap_since_ms: number | null }>;
  };
  /** The recovery window (what is kept) and the recovery requests answered from it. */
  recovery: Record<string, unknown>;
  kafka?: Record<string, unknown>;
  feed?: Record<string, unknown>;
}
