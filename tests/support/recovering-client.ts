// A lean client that keeps its channels across reconnects the way the protocol says (README
// "Continuity"): it remembers the last `pos` per channel and re-subscribes with `since`. It drops
// nothing itself: a duplicate or a seq gap the server sends is counted, for the test to assert on.
import WebSocket from 'ws';

export interface Got {
  pos: string;
  seq: number;
  epoch: string;
  data: Record<string, unknown>;
}

const offsetOf = (pos: string) => Number(pos.slice(pos.lastIndexOf(':') + 1));
const originOf = (pos: string) => pos.slice(0, pos.lastIndexOf(':'));

export class RecoveringClient {
  readonly got = new Map<string, Got[]>();
  readonly outcomes: Array<Record<string, unknown>> = [];
  readonly closes: number[] = [];
  /** Messages at or before a position already received (the server must never send one). */
  duplicates = 0;
  /** seq jumps within an epoch on one connection (the server must never make one here). */
  seqGaps = 0;
  connects = 0;
  readonly gapLog: string[] = [];
  private sinceReply = 0;
  private ws: WebSocket | null = null;
  private stopped = false;
  private readonly last = new Map<string, { epoch: string; seq: number }>();

  constructor(
    private readonly url: () => string,
    private readonly channels: string[],
    private readonly opts: { last?: boolean } = {},
  ) {}

  /** Resolves once the first subscription is acknowledged. */
  start(): Promise<void> {
    return new Promise((resolve) => this.connect(resolve));
  }

  /** Closes the connection; the client reconnects (to url()) as after a drop. */
  bounce(): void {
    this.ws?.close();
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }

  lastPos(channel: string): string | undefined {
    const l = this.got.get(channel);
    return l?.[l.length - 1]?.pos;
  }

  private connect(onSubscribed?: () => void): void {
    if (this.stopped) return;
    const ws = (this.ws = new WebSocket(this.url()));
    this.last.clear(); // seq and epoch are per connection's server
    ws.on('open', () => {
      this.connects++;
      const since: Record<string, string> = {};
      for (const ch of this.channels) {
        const p = this.lastPos(ch);
        if (p) since[ch] = p;
      }
      const req: Record<string, unknown> = { op: 'subscribe', channels: this.channels, id: this.connects };
      if (Object.keys(since).length) req.since = since;
      if (this.opts.last) req.last = true;
      ws.send(JSON.stringify(req));
    });
    ws.on('message', (raw) => {
      const v = JSON.parse(raw.toString());
      for (const m of Array.isArray(v) ? v : [v]) {
        if (m.op) {
          this.outcomes.push(m);
          if (m.op === 'subscribed') {
            this.sinceReply = 0;
            onSubscribed?.();
          }
          continue;
        }
        this.take(m);
      }
    });
    ws.on('error', () => {});
    ws.on('close', (code) => {
      this.closes.push(code);
      if (!this.stopped) setTimeout(() => this.connect(onSubscribed), 50 + Math.random() * 150);
    });
  }

  private take(m: { channel: string; pos: string; seq: number; epoch: string; data: Record<string, unknown> }): void {
    const prev = this.lastPos(m.channel);
    if (prev && originOf(prev) === originOf(m.pos) && offsetOf(m.pos) <= offsetOf(prev)) {
      this.duplicates++;
      return;
    }
    const s = this.last.get(m.channel);
    if (s && s.epoch === m.epoch && m.seq !== s.seq + 1) {
      this.seqGaps++;
      if (this.gapLog.length < 10) this.gapLog.push(`${m.channel} conn ${this.connects} seq ${s.seq}->${m.seq} pos ${prev}->${m.pos} replayedSoFar ${this.sinceReply} msgs`);
    }
    this.sinceReply++;
    this.last.set(m.channel, { epoch: m.epoch, seq: m.seq });
    let l = this.got.get(m.channel);
    if (!l) this.got.set(m.channel, (l = []));
    l.push({ pos: m.pos, seq: m.seq, epoch: m.epoch, data: m.data });
  }
}
