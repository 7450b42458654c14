// What the client knows of each concrete channel: the last position delivered (to resume from and
// to drop duplicates), the live seq baseline of this connection (to see a gap), and a recovery in
// progress. Bounded: the least recently seen channel is forgotten first.
import type { DataMessage } from './frames.js';
import { parsePos, type Position } from './positions.js';

export interface ChannelState {
  /** Last position delivered (as sent) and parsed; survive reconnects. */
  pos: string | undefined;
  at: Position | null;
  /** Live numbering seen on this connection; reset on each connection and after a replay. */
  epoch: string | undefined;
  seq: number | undefined;
  /** A gap-filling subscribe is in flight: the server sends nothing of the channel meanwhile. */
  recovering: boolean;
  /** Messages that arrived between the gap and the recovery's answer. */
  held: DataMessage[];
  /** Messages still to come from the server's window (replay or last value). */
  replayLeft: number;
  replayTotal: number;
  /** What is coming is the last value (not a recovery). */
  lastValue: boolean;
}

export class ChannelBook {
  private readonly map = new Map<string, ChannelState>();

  constructor(
    private readonly maxTracked: number,
    private readonly onEvict: () => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(channel: string): ChannelState | undefined {
    return this.map.get(channel);
  }

  /** The channel's state, created if new, moved to most recently seen. */
  touch(channel: string): ChannelState {
    let st = this.map.get(channel);
    if (st) {
      this.map.delete(channel);
    } else {
      st = { pos: undefined, at: null, epoch: undefined, seq: undefined, recovering: false, held: [], replayLeft: 0, replayTotal: 0, lastValue: false };
      this.evictFor();
    }
    this.map.set(channel, st);
    return st;
  }

  /** Seeds a position (from the application, e.g. saved before a page reload). */
  seed(channel: string, pos: string): boolean {
    const at = parsePos(pos);
    if (!at) return false;
    const st = this.touch(channel);
    st.pos = pos;
    st.at = at;
    return true;
  }

  /** A new connection: only the positions carry over. */
  newConnection(): void {
    for (const st of this.map.values()) {
      st.epoch = st.seq = undefined;
      st.recovering = false;
      st.held = [];
      st.replayLeft = st.replayTotal = 0;
      st.lastValue = false;
    }
  }

  forget(keep: (channel: string) => boolean): void {
    for (const ch of [...this.map.keys()]) if (!keep(ch)) this.map.delete(ch);
  }

  /** Channels with a position, most recently seen first. */
  *withPositions(): Generator<[string, string]> {
    const all = [...this.map];
    for (let i = all.length - 1; i >= 0; i--) if (all[i][1].pos !== undefined) yield [all[i][0], all[i][1].pos!];
  }

  private evictFor(): void {
    if (this.map.size < this.maxTracked) return;
    // Oldest first; one in recovery is kept (its answer is on the way) unless all are.
    for (const [ch, st] of this.map) {
      if (!st.recovering) {
        this.map.delete(ch);
        this.onEvict();
        return;
      }
    }
    const first = this.map.keys().next().value!;
    this.map.delete(first);
    this.onEvict();
  }
}
