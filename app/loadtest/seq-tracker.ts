// Per-channel sequence check for one client. The first seq seen on a channel is the client's
// starting point (it joined mid-stream); after that each message must be exactly last + 1.

export interface SeqCounters {
  gaps: number; // times a seq jumped forward
  missing: number; // messages skipped by those jumps
  duplicates: number; // seq equal to the last one
  reordered: number; // seq older than the last one
}

export const emptySeqCounters = (): SeqCounters => ({ gaps: 0, missing: 0, duplicates: 0, reordered: 0 });

/** Checks `seq` against `last` (the map of channel -> last seq) and updates the counters. */
export function checkSeq(last: Map<string, number>, channel: string, seq: number, c: SeqCounters): void {
  const prev = last.get(channel);
  if (prev === undefined || seq === prev + 1) {
    last.set(channel, seq);
    return;
  }
  if (seq > prev) {
    c.gaps++;
    c.missing += seq - prev - 1;
    last.set(channel, seq);
  } else if (seq === prev) c.duplicates++;
  else c.reordered++; // keep `last`: a late message does not move the stream back
}
