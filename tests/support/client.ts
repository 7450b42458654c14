// A protocol-v1 test client on a real `ws` WebSocket: records every data message per channel
// and checks replies by id.
import WebSocket from 'ws';

export interface DataMessage {
  channel: string;
  /** Absent from servers before epochs; a new value means the numbering restarted at 1. */
  epoch?: string;
  seq: number;
  ts: number;
  data: Record<string, unknown>;
}

export class TestClient {
  readonly ws: WebSocket;
  readonly messages: DataMessage[] = [];
  readonly replies: Array<Record<string, unknown>> = [];
  /** How many data messages had arrived when each reply did (its place in the stream). */
  private readonly replyAt = new WeakMap<Record<string, unknown>, number>();
  frames = 0;
  closeCode: number | null = null;
  closed: Promise<number>;
  private nextId = 1;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((r) => ws.once('close', (code) => r((this.closeCode = code))));
    ws.on('message', (raw, isBinary) => {
      if (isBinary) return;
      const v = JSON.parse(raw.toString());
      this.frames++;
      if (Array.isArray(v)) this.messages.push(...v);
      else if (v.op) {
        this.replyAt.set(v, this.messages.length);
        this.replies.push(v);
      } else this.messages.push(v);
    });
    ws.on('error', () => {});
  }

  static connect(url: string, opts: WebSocket.ClientOptions = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, opts);
      ws.once('open', () => resolve(new TestClient(ws)));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers })));
      ws.once('error', reject);
    });
  }

  request(body: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ ...body, id }));
    return this.waitReply((r) => r.id === id, timeoutMs);
  }

  /** The data messages that arrived before `reply` (one this client received). */
  messagesBefore(reply: Record<string, unknown>): number {
    const n = this.replyAt.get(reply);
    if (n === undefined) throw new Error('not a reply this client received');
    return n;
  }

  subscribe(channels: string[]) {
    return this.request({ op: 'subscribe', channels });
  }

  waitReply(pred: (r: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    return new Promise((resolve, reject) => {
      const tick = () => {
        const r = this.replies.find(pred);
        if (r) return resolve(r);
        if (Date.now() > end) return reject(new Error(`no matching reply; got ${JSON.stringify(this.replies)}`));
        setTimeout(tick, 10);
      };
      tick();
    });
  }

  byChannel(): Map<string, DataMessage[]> {
    const m = new Map<string, DataMessage[]>();
    for (const msg of this.messages) {
      let l = m.get(msg.channel);
      if (!l) m.set(msg.channel, (l = []));
      l.push(msg);
    }
    return m;
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
  }
}

/**
 * Every channel's seq rises by exactly 1 from the first one seen, within an epoch. A new epoch is
 * a restart of the numbering at 1 (README "Channel state and epochs"), not a step back; if it
 * starts above 1, the messages before it are counted as gaps.
 */
export function assertNoGaps(msgs: DataMessage[]): { gaps: number; dups: number } {
  let gaps = 0;
  let dups = 0;
  const last = new Map<string, { epoch: string | undefined; seq: number }>();
  for (const m of msgs) {
    const prev = last.get(m.channel);
    if (prev !== undefined && prev.epoch !== m.epoch) {
      gaps += m.seq - 1;
      last.set(m.channel, { epoch: m.epoch, seq: m.seq });
      continue;
    }
    if (prev !== undefined) {
      if (m.seq <= prev.seq) dups++;
      else if (m.seq !== prev.seq + 1) gaps += m.seq - prev.seq - 1;
    }
    last.set(m.channel, { epoch: m.epoch, seq: Math.max(prev?.seq ?? 0, m.seq) });
  }
  return { gaps, dups };
}
