// random:K needs the server's concrete channels. Protocol v1 has no listing op, so one probe
// client subscribes to `<stream>:*` and collects the channel names it sees for a few seconds.
import WebSocket from 'ws';

export async function discoverChannels(url: string, streams: readonly string[], seconds: number): Promise<string[]> {
  const seen = new Set<string>();
  const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`discovery connection refused: HTTP ${res.statusCode}`)));
    });
    ws.on('message', (data: Buffer) => {
      let v: unknown;
      try {
        v = JSON.parse(data.toString('utf8'));
      } catch {
        return;
      }
      for (const m of Array.isArray(v) ? v : [v]) {
        const ch = (m as { channel?: unknown } | null)?.channel;
        if (typeof ch === 'string' && seen.size < 100_000) seen.add(ch);
      }
    });
    ws.send(JSON.stringify({ op: 'subscribe', channels: streams.map((s) => `${s}:*`), id: 1 }));
    await new Promise((r) => setTimeout(r, seconds * 1000));
  } finally {
    ws.terminate();
  }
  return [...seen].sort();
}
