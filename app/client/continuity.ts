// Per-channel continuity: what to send as `since`, how to apply the server's `recovery` answer,
// and what to do with each data message (drop a duplicate, fill a seq jump, mark a replay).
import type { ChannelBook, ChannelState } from './channel-book.js';
import { covers, recoveryOf, type DataMessage, type RecoveryEntry } from './frames.js';
import { notAfter, parsePos } from './positions.js';
import type { ClientStats, GapEvent, OdinEvents } from './types.js';

export interface SubscribeResult {
  readonly channels: readonly string[];
  /** The server's per-channel recovery answer, when positions or `last` were sent. */
  readonly recovery?: Readonly<Record<string, RecoveryEntry>>;
}

export interface ContinuityDeps {
  readonly stats: ClientStats;
  emit<K extends keyof OdinEvents>(type: K, ev: OdinEvents[K]): void;
  isWanted(channel: string): boolean;
  /**
   * Sends a subscribe with `since` for one channel (to fill a seq jump); false when it cannot be
   * sent now. `onAck` runs in the frame handler; `onFail` when it was refused or timed out.
   */
  refill(channel: string, since: Record<string, string>, onAck: (rec: Record<string, unknown>) => void, onFail: () => void): boolean;
}

export class Continuity {
  constructor(
    private readonly book: ChannelBook,
    private readonly limits: { readonly maxSince: number; readonly maxHeld: number },
    private readonly deps: ContinuityDeps,
  ) {}

  /** Positions of the tracked channels these patterns cover, most recent first, up to maxSince. */
  sinceFor(channels: string[], reportUntracked = false): Record<string, string> {
    const since: Record<string, string> = {};
    let n = 0;
    for (const [ch, pos] of this.book.withPositions()) {
      if (!channels.some((p) => covers(p, ch))) continue;
      if (n < this.limits.maxSince) {
        since[ch] = pos;
        n++;
      } else if (reportUntracked) {
        this.gap({ channel: ch, reason: 'untracked', from: pos, to: undefined, missed: undefined });
      }
    }
    return since;
  }

  applyRecovery(rec: Record<string, unknown>, since: Record<string, string>): SubscribeResult {
    const channels = Array.isArray(rec.channels) ? rec.channels.filter((c): c is string => typeof c === 'string') : [];
    const recovery = recoveryOf(rec);
    for (const ch of Object.keys(since)) {
      const st = this.book.get(ch);
      if (!st) continue;
      const entry = recovery?.get(ch);
      if (!entry) this.unrecoverable(ch, st, 'unsupported');
      else this.onRecovery(ch, st, entry);
    }
    for (const [ch, entry] of recovery ?? []) {
      if (ch in since || !('last' in entry) || !entry.last) continue;
      const st = this.book.touch(ch);
      st.replayLeft = entry.last;
      st.lastValue = true;
    }
    return { channels, ...(recovery ? { recovery: Object.fromEntries(recovery) } : {}) };
  }

  private onRecovery(ch: string, st: ChannelState, entry: RecoveryEntry): void {
    if ('unrecoverable' in entry) return this.unrecoverable(ch, st, entry.unrecoverable);
    const n = 'replayed' in entry ? entry.replayed : entry.last;
    st.recovering = false;
    st.lastValue = !('replayed' in entry);
    st.replayLeft = st.replayTotal = n;
    if (n === 0) this.replayDone(ch, st);
  }

  private unrecoverable(ch: string, st: ChannelState, reason: string): void {
    st.recovering = false;
    st.epoch = st.seq = undefined;
    this.gap({ channel: ch, reason, from: st.pos, to: st.held[0]?.pos, missed: undefined });
    this.flushHeld(ch, st);
  }

  private replayDone(ch: string, st: ChannelState): void {
    if (!st.lastValue) {
      this.deps.stats.recoveries++;
      this.deps.emit('recovered', { channel: ch, replayed: st.replayTotal });
    }
    st.replayTotal = 0;
    st.lastValue = false;
    // The live numbering starts again from the next live message (replayed seqs may be another
    // server's).
    st.epoch = st.seq = undefined;
    this.flushHeld(ch, st);
  }

  private flushHeld(ch: string, st: ChannelState): void {
    const held = st.held;
    st.held = [];
    for (const m of held) this.data(m);
  }

  data(m: DataMessage): void {
    if (!this.deps.isWanted(m.channel)) return; // in flight when it was unsubscribed
    const st = this.book.touch(m.channel);
    if (st.recovering) {
      if (st.held.length >= this.limits.maxHeld) {
        st.held.shift();
        this.deps.stats.heldDropped++;
      }
      st.held.push(m);
      return;
    }
    const replayed = st.replayLeft > 0;
    const at = parsePos(m.pos);
    if (at && notAfter(at, st.at)) {
      this.deps.stats.duplicates++;
      if (replayed && --st.replayLeft === 0) this.replayDone(m.channel, st);
      return;
    }
    if (!replayed && m.epoch !== undefined && m.epoch === st.epoch && m.seq !== undefined && st.seq !== undefined && m.seq > st.seq + 1) {
      if (this.fillGap(m, st)) return;
      this.gap({ channel: m.channel, reason: 'seq', from: st.pos, to: m.pos, missed: m.seq - st.seq - 1 });
    }
    if (at) {
      st.pos = m.pos;
      st.at = at;
    }
    if (!replayed) {
      st.epoch = m.epoch;
      st.seq = m.seq;
    }
    this.deps.stats.messages++;
    if (replayed) this.deps.stats.replayed++;
    this.deps.emit('message', { channel: m.channel, pos: m.pos, seq: m.seq, epoch: m.epoch, ts: m.ts, data: m.data, replayed });
    if (replayed && --st.replayLeft === 0) this.replayDone(m.channel, st);
  }

  /** A seq jump on a channel with a position: ask the server for what is missing. */
  private fillGap(m: DataMessage, st: ChannelState): boolean {
    if (st.pos === undefined || m.pos === undefined) return false;
    const since = { [m.channel]: st.pos };
    const sent = this.deps.refill(
      m.channel,
      since,
      (rec) => void this.applyRecovery(rec, since),
      () => st.recovering && this.unrecoverable(m.channel, st, 'seq'),
    );
    if (!sent) return false;
    st.recovering = true;
    st.held = [m];
    return true;
  }


  private gap(ev: GapEvent): void {
    this.deps.stats.gaps++;
    this.deps.emit('gap', ev);
  }
}
