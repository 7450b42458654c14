// What a shard's clients share at its edge: the request parser, the limits, the closure counters
// by reason, and the one sweep timer (output budget, pings, idle timeout). Kept out of shard.ts so
// the process wiring there stays small.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ServerConfig } from '../config/config.js';
import type { ShardStats } from '../common/ipc.js';
import type { Logger } from '../common/logger.js';
import { createRequestParser } from '../protocol/client-requests.js';
import type { Client, ClientContext, CloseReason } from './client.js';
import type { Hub } from './hub.js';
import { Sweeper } from './sweeper.js';

export interface EdgeDeps {
  readonly hub: Hub;
  readonly registry: Registry;
  readonly log: Logger;
  readonly clients: () => Iterable<Client>;
  /** Resolves once the front has registered the channel (the interest link). */
  gate(channel: string): Promise<void> | null;
  /** Asks the front for a replay (subscribe with since/last). */
  recover: ClientContext['recover'];
  /** A 4008 close (own cap or shard budget): the shard's slow-consumer count. */
  onSlow(): void;
  onError(code: string): void;
  /** Checks `refresh` tokens; null when auth is off. */
  readonly auth: ClientContext['auth'];
  /** Closes clients whose token expired (one shared sweep per shard). */
  readonly expiry: ClientContext['expiry'];
}

export class ClientEdge {
  readonly ctx: ClientContext;
  private readonly sweeper: Sweeper;
  private readonly closes: Record<string, number> = {};

  constructor(config: ServerConfig, deps: EdgeDeps) {
    const closes = new Counter({ name: 'odin_ws_client_closes_total', help: 'Connections the shard ended, by reason', labelNames: ['reason'], registers: [deps.registry] });
    const sweeper = new Sweeper(deps.clients, { pingMs: config.pingIntervalMs, idleMs: config.idleTimeoutMs, budgetBytes: config.shardBufferBytes });
    new Gauge({
      name: 'odin_ws_shard_buffered_bytes',
      help: 'Bytes queued for all clients of the shard (budget WS_SHARD_BUFFER_BYTES)',
      registers: [deps.registry],
      collect() {
        this.set(sweeper.buffered);
      },
    });
    this.sweeper = sweeper;
    this.ctx = {
      hub: deps.hub,
      parse: createRequestParser({ streams: new Set(config.streams), maxChannels: config.maxChannels }),
      maxChannels: config.maxChannels,
      opsPerSec: config.clientOpsPerSec,
      bufferLimit: config.clientBufferBytes,
      gate: deps.gate,
      recover: deps.recover,
      onClose: (reason: CloseReason) => {
        this.closes[reason] = (this.closes[reason] ?? 0) + 1;
        closes.inc({ reason });
        if (reason === 'slow' || reason === 'budget') deps.onSlow();
      },
      onError: deps.onError,
      backlogged: (c) => sweeper.watch(c),
      onFault: (err: unknown) => deps.log.error({ err }, 'client handler failed; client closed with 1011'),
      auth: deps.auth,
      expiry: deps.expiry,
    };
  }

  start(): void {
    this.sweeper.start();
  }

  /** Idempotent. */
  stop(): void {
    this.sweeper.stop();
  }

  stats(): Pick<ShardStats, 'closes' | 'bufferedBytes'> {
    return { closes: { ...this.closes }, bufferedBytes: this.sweeper.buffered };
  }
}
