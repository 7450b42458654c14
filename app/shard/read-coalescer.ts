// The shard-writes stage of adaptive batching. Bus batches that arrive in one read from the pipe
// queued behind one another while the shard was busy: they go to the clients as ONE batch, one
// write per client instead of one per batch, so a shard that falls behind spends less per message
// and catches up. At light load a read holds one batch, which goes out at once and unchanged.
import type { BusMessage } from '../common/ipc.js';

/** Receives a merged batch and the bus flush stamp of every batch in it, oldest first. */
export type PublishMerged = (msgs: BusMessage[], flushedAt: readonly number[]) => void;

export class ReadCoalescer {
  private msgs: BusMessage[] = [];
  private stamps: number[] = [];

  /** `maxMessages` bounds one merged batch (and so one client frame). */
  constructor(
    private readonly maxMessages: number,
    private readonly publish: PublishMerged,
  ) {}

  /** A batch decoded from the current read. */
  add(batch: BusMessage[], flushedAt: number): void {
    if (this.msgs.length && this.msgs.length + batch.length > this.maxMessages) this.flush();
    if (!this.msgs.length) this.msgs = batch;
    else for (const m of batch) this.msgs.push(m);
    this.stamps.push(flushedAt);
  }

  /** The end of a read, or anything that must not be reordered with the batches before it. */
  flush(): void {
    if (!this.stamps.length) return;
    const msgs = this.msgs;
    const stamps = this.stamps;
    this.msgs = [];
    this.stamps = [];
    this.publish(msgs, stamps);
  }
}
