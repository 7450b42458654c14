// The shard's side of channel interest: which channels the front must route to this shard.
// Changes are coalesced per event-loop turn into ONE `interest` message, and at most one such
// message is in flight: the next waits for the front's `interest-ack`. What waits meanwhile is
// one entry per channel whose wanted state differs from what the front was told, so a client
// churning subscriptions costs a bounded set, never a growing IPC queue.

/** What the link sends: one batch of interest changes (see `interest` in common/ipc.ts). */
export type InterestSend = (msg: { t: 'interest'; seq: number; add: string[]; remove: string[] }) => boolean;

interface Gate {
  promise: Promise<void>;
  resolve: () => void;
}

/** Upper bound on channels in one message, so one IPC frame stays small. */
const MAX_PER_BATCH = 4096;

export class InterestLink {
  private readonly wanted = new Set<string>();
  /** What the front has, or will have once the batch in flight is applied. */
  private readonly told = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly gates = new Map<string, Gate>();
  private inflight: { seq: number; adds: ReadonlySet<string> } | null = null;
  private seq = 0;
  private scheduled = false;
  private stopped = false;
  batches = 0;

  constructor(private readonly send: InterestSend) {}

  /** Local subscriber count 0 -> 1. */
  want(ch: string): void {
    this.wanted.add(ch);
    if (this.told.has(ch)) {
      // Dropped and wanted again before a removal went out: the front still has it, unless the
      // add itself is still in flight.
      if (this.inflight?.adds.has(ch)) this.gateFor(ch);
      return;
    }
    this.gateFor(ch);
    this.mark(ch);
  }

  /** Local subscriber count 1 -> 0. */
  drop(ch: string): void {
    this.wanted.delete(ch);
    this.release(ch); // its subscribers are gone: nobody waits for the ack any more
    if (this.told.has(ch)) this.mark(ch);
    else this.dirty.delete(ch);
  }

  /** Resolves once the front has registered the channel; null when it already has. */
  gate(ch: string): Promise<void> | null {
    return this.gates.get(ch)?.promise ?? null;
  }

  /** The front applied batch `seq`. */
  acked(seq: number): void {
    const f = this.inflight;
    if (!f || f.seq !== seq) return;
    this.inflight = null;
    for (const ch of f.adds) this.release(ch);
    this.flush();
  }

  /** Channels waiting to be told (bounded by the channels this shard's clients hold or held). */
  get pending(): number {
    return this.dirty.size;
  }

  /** Idempotent; releases every waiting subscribe (the shard is going away). */
  stop(): void {
    this.stopped = true;
    for (const ch of [...this.gates.keys()]) this.release(ch);
  }

  private gateFor(ch: string): void {
    if (this.gates.has(ch) || this.stopped) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.gates.set(ch, { promise, resolve });
  }

  private release(ch: string): void {
    const g = this.gates.get(ch);
    if (!g) return;
    this.gates.delete(ch);
    g.resolve();
  }

  private mark(ch: string): void {
    this.dirty.add(ch);
    if (this.scheduled || this.inflight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.inflight || this.stopped || !this.dirty.size) return;
    const add: string[] = [];
    const remove: string[] = [];
    for (const ch of this.dirty) {
      if (add.length + remove.length >= MAX_PER_BATCH) break;
      this.dirty.delete(ch);
      const w = this.wanted.has(ch);
      if (w && !this.told.has(ch)) {
        add.push(ch);
        this.told.add(ch);
      } else if (!w && this.told.has(ch)) {
        remove.push(ch);
        this.told.delete(ch);
      }
    }
    if (!add.length && !remove.length) return; // every change cancelled out
    const seq = ++this.seq;
    this.inflight = { seq, adds: new Set(add) };
    this.batches++;
    if (!this.send({ t: 'interest', seq, add, remove })) {
      // No IPC channel: the front is gone and the shard drains; nobody will ack.
      this.stop();
    }
  }
}
