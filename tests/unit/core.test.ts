import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { parseChannel, streamOfTopic } from '../../app/common/channel.js';
import { BatchDecoder, encodeBatch, encodeSegment, type BusMessage } from '../../app/common/ipc.js';
import { parseConfig } from '../../app/config/config.js';
import { Hub, type Subscriber } from '../../app/shard/hub.js';
import { textFrame } from '../../app/shard/frame.js';

const streams = new Set(['trades', 'prices']);

describe('channels', () => {
  it('accepts <stream>:<token> and <stream>:* for known streams only', () => {
    expect(parseChannel('trades:ODIN42', streams)).toEqual({ stream: 'trades', token: 'ODIN42', wildcard: false });
    expect(parseChannel('prices:*', streams)?.wildcard).toBe(true);
    for (const bad of ['trades', 'trades:', ':X', 'quotes:X', 'trades:a b', 'trades:*x', 42, null]) expect(parseChannel(bad, streams)).toBeNull();
    expect(streamOfTopic('odin.trades')).toBe('trades');
  });
});

describe('config', () => {
  it('has defaults for everything and freezes the result', () => {
    const r = parseConfig({}, []);
    if (!r.ok) throw new Error(r.problems.join());
    expect(r.config).toMatchObject({ mode: 'multi', shards: 3, maxConnections: 18000, busBatchSize: 100, addr: { host: '0.0.0.0', port: 3004 } });
    expect(Object.isFrozen(r.config)).toBe(true);
    expect(Object.isFrozen(r.config.addr)).toBe(true);
    expect(r.config.kafka).toBeNull();
  });

  it('lets flags win over env and single mode force one shard', () => {
    const r = parseConfig({ WS_SHARDS: '4' }, ['--shards', '6']);
    expect(r.ok && r.config.shards).toBe(6);
    const s = parseConfig({ WS_MODE: 'single', WS_SHARDS: '4' }, []);
    expect(s.ok && s.config.shards).toBe(1);
  });

  it('collects every problem with the offending name and value', () => {
    const r = parseConfig({ WS_CPU_LIMIT: 'lots', FEED_TOKENS: 'A,b c', FEED_STREAMS: 'quotes', WS_AUTH_SECRET: 'short' }, ['--lb-addr', 'x']);
    expect(r.ok).toBe(false);
    const text = !r.ok ? r.problems.join('\n') : '';
    expect(text).toContain('WS_CPU_LIMIT="lots"');
    expect(text).toContain('FEED_TOKENS="A,b c"');
    expect(text).toContain('--lb-addr="x"');
    expect(text).toContain('WS_AUTH_SECRET');
    const streamsBad = parseConfig({ FEED_STREAMS: 'quotes' }, []);
    expect(!streamsBad.ok && streamsBad.problems.join()).toContain('FEED_STREAMS');
  });
});

describe('bus framing', () => {
  it('round-trips batches split at arbitrary chunk boundaries', () => {
    const segs = [encodeSegment('trades:A', Buffer.from('{"a":1}')), encodeSegment('prices:ÄB', Buffer.from('{"b":"ü"}'))];
    const wire = Buffer.concat([encodeBatch(segs), encodeBatch([segs[1]])]);
    const got: BusMessage[][] = [];
    const dec = new BatchDecoder();
    for (let i = 0; i < wire.length; i += 3) dec.push(wire.subarray(i, i + 3), (b) => got.push(b));
    expect(got.map((b) => b.map((m) => [m.channel, m.stream, m.payload.toString()]))).toEqual([
      [['trades:A', 'trades', '{"a":1}'], ['prices:ÄB', 'prices', '{"b":"ü"}']],
      [['prices:ÄB', 'prices', '{"b":"ü"}']],
    ]);
  });
});

function decodeFrames(buf: Buffer): string[] {
  const out: string[] = [];
  // ws exports its frame parser in CJS only (the typings omit it).
  const { Receiver } = createRequire(import.meta.url)('ws') as { Receiver: new (o: object) => NodeJS.WritableStream & { on(e: 'message', f: (d: Buffer) => void): void } };
  const r = new Receiver({ isServer: false });
  r.on('message', (d: Buffer) => out.push(d.toString()));
  r.write(buf);
  return out;
}

describe('text frames', () => {
  it('are valid unmasked frames for every length class', () => {
    for (const n of [0, 125, 126, 65535, 65536, 70000]) {
      const p = Buffer.alloc(n, 'a');
      expect(decodeFrames(textFrame(p))).toEqual([p.toString()]);
    }
  });
});

class Sink implements Subscriber {
  hubEpoch = 0;
  hubLast = -1;
  hubDue: number[] = [];
  frames: Buffer[] = [];
  readonly filtered = false;
  deliver(f: Buffer) {
    this.frames.push(f);
    return true;
  }
  deliverSome(): number {
    throw new Error('not filtered: the hub must use deliver()');
  }
  texts() {
    return this.frames.flatMap(decodeFrames);
  }
}

describe('hub fan-out', () => {
  const msg = (channel: string, body: string): BusMessage => ({ channel, stream: channel.split(':')[0], wildcard: `${channel.split(':')[0]}:*`, payload: Buffer.from(body) });

  it('writes one frame per client per batch, shares identical frames, and dedupes wildcard overlap', () => {
    const events: string[] = [];
    const hub = new Hub({ first: (c) => events.push(`+${c}`), last: (c) => events.push(`-${c}`) });
    const a = new Sink();
    const b = new Sink();
    const c = new Sink();
    hub.subscribe(a, 'trades:X');
    hub.subscribe(a, 'trades:*');
    hub.subscribe(b, 'trades:X');
    hub.subscribe(b, 'trades:*');
    hub.subscribe(c, 'prices:Y');
    hub.publish([msg('trades:X', '{"n":1}'), msg('trades:Z', '{"n":2}'), msg('quotes:Q', '{"n":3}')]);
    expect(a.texts()).toEqual(['[{"n":1},{"n":2}]']);
    expect(a.frames[0]).toBe(b.frames[0]); // the same bytes, built once
    expect(c.frames).toHaveLength(0);
    hub.publish([msg('prices:Y', '{"n":4}')]);
    expect(c.texts()).toEqual(['{"n":4}']);
    expect(hub.deliveries).toBe(5);
    // A one-message batch takes the fast path: still once per client, same bytes for all.
    hub.publish([msg('trades:X', '{"n":5}')]);
    expect(a.texts().slice(1)).toEqual(['{"n":5}']);
    expect(b.texts().slice(1)).toEqual(['{"n":5}']);
    expect(a.frames[1]).toBe(b.frames[1]);
    hub.publish([msg('trades:W', '{"n":6}')]); // wildcard only
    expect(a.texts().slice(2)).toEqual(['{"n":6}']);
    expect(hub.deliveries).toBe(9);
    hub.unsubscribe(a, 'trades:X');
    hub.unsubscribe(b, 'trades:X');
    expect(events).toEqual(['+trades:X', '+trades:*', '+prices:Y', '-trades:X']);
  });
});
