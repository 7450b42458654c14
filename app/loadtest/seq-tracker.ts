// Per-channel sequence check for one client. The first seq seen on a channel is the client's
// starting point (it joined mid-stream); after that each message must be exactly last + 1 in the
// same epoch. A new epoch means the server forgot the channel (or restarted) and numbering starts
// again at 1: that is a restart, counted apart, never a reorder or a duplicate. A new epoch that
// starts above 1 still lost the messages before it, and counts as a gap.

export interface SeqCounters {
  gaps: number; // times a seq jumped forward
  missing: number; // messages skipped by those jumps
  duplicates: number; // seq equal to the last one
  reordered: number; // seq older than the last one
  epochChanges: number; // a channel's numbering restarted under a new epoch
}

/** Last position on one channel; `epoch` is null for servers that send none. */
export interface SeqPosition {
  epoch: string | null;
  seq: number;
}

export const emptySeqCounters = (): SeqCounters => ({ gaps: 0, missing: 0, duplicates: 0, reordered: 0, epochChanges: 0 });

/** Checks `seq` (under `epoch`) against `last` (channel -> last position) and updates the counters. */
export function checkSeq(last: Map<string, SeqPosition>, channel: string, seq: number, c: SeqCounters, epoch: string | null = null): void {
  const prev = last.get(channel);
  if (prev === undefined) {
    last.set(channel, { epoch, seq });
    return;
  }
  if (prev.epoch !== epoch) {
    c.epochChanges++;
    if (seq > 1) {
      c.gaps++;
      c.missing += seq - 1;
    }
    prev.epoch = epoch;
    prev.seq = seq;
    return;
  }
  if (seq === prev.seq + 1) prev.seq = seq;
  else if (seq > prev.seq) {
    c.gaps++;
    c.missing += seq - prev.seq - 1;
    prev.seq = seq;
  } else if (seq === prev.seq) c.duplicates++;
  else c.reordered++; // keep `last`: a late message does not move the stream back
}
