// The shard's side of recovery: a client's subscribe with `since` or `last` becomes one `recover`
// request to the front, answered by a replay frame on the bus pipe (in order with the batches).
// At most one request per client is in flight (its replies are sequential), so the map is bounded
// by the clients.
import type { BusMessage, RecoverItem, RecoverOutcome } from '../common/ipc.js';

export interface Replay {
  readonly outcomes: Record<string, RecoverOutcome>;
  readonly messages: readonly BusMessage[];
}

export type RecoverSend = (msg: { t: 'recover'; rid: number; items: RecoverItem[] }) => boolean;

export class RecoveryLink {
  private readonly waiting = new Map<number, { arrive: (r: Replay) => void; resolve: (r: Replay) => void }>();
  private rid = 0;
  private stopped = false;

  constructor(private readonly send: RecoverSend) {}

  /**
   * `arrive` runs synchronously when the replay frame is decoded, before the batches behind it in
   * the same chunk: from then on the client must hold (not drop) live messages of those channels.
   */
  request(items: RecoverItem[], arrive: (r: Replay) => void): Promise<Replay> {
    if (this.stopped) return Promise.resolve(notReady(items));
    const rid = ++this.rid;
    return new Promise<Replay>((resolve) => {
      this.waiting.set(rid, { arrive, resolve });
      if (!this.send({ t: 'recover', rid, items })) {
        this.waiting.delete(rid);
        resolve(notReady(items));
      }
    });
  }

  /** A replay frame arrived (see BatchDecoder.onReplay). */
  answered(rid: number, outcomes: Record<string, RecoverOutcome>, messages: BusMessage[]): void {
    const w = this.waiting.get(rid);
    if (!w) return;
    this.waiting.delete(rid);
    const r = { outcomes, messages };
    w.arrive(r);
    w.resolve(r);
  }

  get pending(): number {
    return this.waiting.size;
  }

  /** Idempotent: whoever waits gets not_ready (the shard is going away). */
  stop(): void {
    this.stopped = true;
    for (const w of this.waiting.values()) w.resolve({ outcomes: {}, messages: [] });
    this.waiting.clear();
  }
}

function notReady(items: RecoverItem[]): Replay {
  return { outcomes: Object.fromEntries(items.map((i) => [i.channel, { unrecoverable: 'not_ready' }])), messages: [] };
}
