// Pure parts of the load generator: argument validation, subscription mix, source addresses,
// the sequence check and the limited_by verdict.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { channelsFor, parseChannelSpec } from '../../app/loadtest/channels.js';
import { parseCli, planSteps } from '../../app/loadtest/cli.js';
import { checkSeq, emptySeqCounters, type SeqPosition } from '../../app/loadtest/seq-tracker.js';
import { clientControlFrame, ServerFrameReader } from '../../app/loadtest/lite-client.js';
import { parseSourceIps } from '../../app/loadtest/source-ips.js';
import { assertNoGaps } from '../support/client.js';
import { decideLimit, type VerdictInput } from '../../app/loadtest/verdict.js';
import { runLoadtestCli } from './run-loadtest.js';

describe('CLI validation', () => {
  it('exits 2 naming every bad argument, before connecting anywhere', async () => {
    const run = await runLoadtestCli(['--url', 'http://x/ws', '--target=-5', '--channels', 'Trades', '--hold', '0', '--source-ips', '10.0.0.9-10.0.0.1', '--ramp', 'fast']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--url="http:\/\/x\/ws": must be a ws:\/\/ or wss:\/\/ URL/);
    expect(run.stderr).toMatch(/--target="-5": must be an integer in 1\.\.1000000/);
    expect(run.stderr).toMatch(/--channels="Trades": not <stream>:<token\|\*>/);
    expect(run.stderr).toMatch(/--hold="0"/);
    expect(run.stderr).toMatch(/--source-ips=.*empty/);
    expect(run.stderr).toMatch(/--ramp="fast"/);
    expect(run.stdout).toBe('');
  });

  it('rejects unknown flags, a missing mode, and too few workers for the fd limit', async () => {
    expect((await runLoadtestCli(['--target', '5', '--bogus'])).stderr).toMatch(/Unknown option '--bogus'/);
    expect(parseCli([], {}, false)).toMatchObject({ ok: false, problems: ['give exactly one of --target N or --search'] });
    const r = parseCli(['--target', '100000', '--workers', '4'], {}, false);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems[0]).toMatch(/need at least 6 workers at 19000 sockets each/);
  });

  it('derives health from the URL, loopback source IPs, worker count, and a quiet non-TTY', () => {
    const r = parseCli(['--url', 'ws://127.0.0.1:4000/ws', '--target', '100000'], {}, true);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.healthUrl).toBe('http://127.0.0.1:4000/health');
    expect(r.config.sourceIps).toHaveLength(16);
    expect(r.config.sourceIps[0]).toMatch(/^127\.(\d+)\.(\d+)\.1$/);
    expect(r.config.sourceIps[15]).toBe(r.config.sourceIps[0].replace(/\.1$/, '.16'));
    expect(r.config.sourceIps[0]).not.toBe('127.0.0.1');
    expect(r.config.workers).toBe(6);
    expect(r.config.progress).toBe(true);
    expect(Object.isFrozen(r.config)).toBe(true);
    const ci = parseCli(['--target', '1'], { CI: 'true' }, true);
    expect(ci.ok && ci.config.progress).toBe(false);
    const remote = parseCli(['--url', 'wss://ws.example.com/ws', '--target', '1', '--health', 'off'], {}, false);
    expect(remote.ok && remote.config.sourceIps).toEqual([]);
    expect(remote.ok && remote.config.healthUrl).toBeNull();
  });

  it('plans search steps from start to max, ending exactly at max', () => {
    expect(planSteps({ mode: 'search', target: 0, search: { start: 1000, step: 1500, max: 5000 } })).toEqual([1000, 2500, 4000, 5000]);
    expect(planSteps({ mode: 'target', target: 12000, search: { start: 1, step: 1, max: 1 } })).toEqual([12000]);
  });
});

describe('subscription mix and source addresses', () => {
  it('parses list, random:K and none, and rejects malformed specs', () => {
    expect(parseChannelSpec('trades:*,prices:ODIN1')).toEqual({ ok: true, spec: { kind: 'list', channels: ['trades:*', 'prices:ODIN1'] } });
    expect(parseChannelSpec('random:3')).toEqual({ ok: true, spec: { kind: 'random', k: 3 } });
    expect(parseChannelSpec('none')).toEqual({ ok: true, spec: { kind: 'none' } });
    expect(parseChannelSpec('random:0').ok).toBe(false);
    expect(parseChannelSpec('trades:A,trades:A').ok).toBe(false);
    expect(parseChannelSpec('trades').ok).toBe(false);
  });

  it('gives each client K distinct channels, the same ones on every run', () => {
    const pool = Array.from({ length: 20 }, (_, i) => `trades:T${i}`);
    const plan = { kind: 'random' as const, k: 5, pool };
    const a = channelsFor(plan, 7);
    expect(new Set(a).size).toBe(5);
    expect(a.every((c) => pool.includes(c))).toBe(true);
    expect(channelsFor(plan, 7)).toEqual(a);
    const picks = new Set(Array.from({ length: 50 }, (_, i) => channelsFor(plan, i).join()));
    expect(picks.size).toBeGreaterThan(40);
  });

  it('expands IPv4 ranges and refuses mixtures and junk', () => {
    expect(parseSourceIps('127.0.0.2-127.0.0.4,10.1.1.1')).toEqual({ ok: true, ips: ['127.0.0.2', '127.0.0.3', '127.0.0.4', '10.1.1.1'] });
    expect(parseSourceIps('10.0.0.255-10.0.1.1')).toEqual({ ok: true, ips: ['10.0.0.255', '10.0.1.0', '10.0.1.1'] });
    expect(parseSourceIps('none')).toEqual({ ok: true, ips: [] });
    expect(parseSourceIps('127.0.0.1,::1').ok).toBe(false);
    expect(parseSourceIps('localhost').ok).toBe(false);
  });
});

describe('sequence check', () => {
  it('takes the first seq as the start, then counts gaps, missing, duplicates, reordering', () => {
    const last = new Map<string, SeqPosition>();
    const c = emptySeqCounters();
    for (const s of [100, 101, 104, 104, 102, 105]) checkSeq(last, 'trades:A', s, c);
    checkSeq(last, 'trades:B', 7, c);
    checkSeq(last, 'trades:B', 8, c);
    expect(c).toEqual({ gaps: 1, missing: 2, duplicates: 1, reordered: 1, epochChanges: 0 });
    expect(last.get('trades:A')).toEqual({ epoch: null, seq: 105 });
  });

  it('treats a new epoch as a restart at 1, not as reordering or duplicates', () => {
    const last = new Map<string, SeqPosition>();
    const c = emptySeqCounters();
    for (const s of [40, 41, 42]) checkSeq(last, 'trades:A', s, c, 'e1');
    for (const s of [1, 2, 3]) checkSeq(last, 'trades:A', s, c, 'e2'); // evicted, renumbered
    checkSeq(last, 'trades:A', 2, c, 'e2'); // a real step back inside the new epoch
    checkSeq(last, 'trades:A', 1, c, 'e3');
    expect(c).toEqual({ gaps: 0, missing: 0, duplicates: 0, reordered: 1, epochChanges: 2 });
    expect(last.get('trades:A')).toEqual({ epoch: 'e3', seq: 1 });
  });

  it('counts the messages before a new epoch\'s first seen seq as missing', () => {
    const last = new Map<string, SeqPosition>();
    const c = emptySeqCounters();
    checkSeq(last, 'trades:A', 9, c, 'e1'); // first seen: a mid-stream start, fine
    checkSeq(last, 'trades:A', 4, c, 'e2'); // seq 1..3 of e2 never arrived
    checkSeq(last, 'trades:A', 5, c, 'e2');
    expect(c).toEqual({ gaps: 1, missing: 3, duplicates: 0, reordered: 0, epochChanges: 1 });
  });
});

describe('limited_by verdict', () => {
  const base: VerdictInput = {
    passed: false, target: 10_000, refused: 0, connectErrors: {}, closedByServer: {}, rejectedByReason: {}, maxConnections: 18_000,
    serverCpu: 0.3, shardCpuMax: 0.1, frontCpu: 0.05, cpuLimit: 7, serverMemoryMb: 500, memoryLimitMb: 10_000,
    workerCpuMax: 0.2, generatorCpu: 0.5, lateReports: 0, generatorLagMs: 3, sloP99Ms: 100, generatorFdSoft: 20_000, local: false, cores: 8, machineBusy: 0.2, memAvailable: 0.8,
  };

  it('is none when the step passed', () => {
    expect(decideLimit({ ...base, passed: true }).limited_by).toBe('none');
  });

  it('orders hard evidence first: fd limit, then refusals, then connect errors by errno', () => {
    expect(decideLimit({ ...base, refused: 3, connectErrors: { EMFILE: 2 } }).limited_by).toBe('fd_limit');
    const refused = decideLimit({ ...base, refused: 3, connectErrors: { ECONNRESET: 1 }, rejectedByReason: { cpu: 3 } });
    expect(refused.limited_by).toBe('guard_refusals');
    expect(refused.detail).toMatch(/below the guard's max_connections 18000.*cpu=3/);
    expect(decideLimit({ ...base, connectErrors: { ECONNREFUSED: 1, EADDRNOTAVAIL: 9 } }).limited_by).toBe('connect_errors:EADDRNOTAVAIL');
  });

  it('names idle-timeout closes (4009) rather than charging them to a resource', () => {
    const v = decideLimit({ ...base, closedByServer: { '4009': 5, '1006': 1 }, serverCpu: 6.5 });
    expect(v.limited_by).toBe('idle_timeout');
    expect(v.detail).toMatch(/5 connections closed .*4009.*WS_IDLE_TIMEOUT_MS=0/);
    expect(decideLimit({ ...base, closedByServer: { '1006': 1 }, serverCpu: 6.5 }).limited_by).toBe('server_cpu');
  });

  it('tells server CPU from generator CPU, and charges a saturated shared box to the bigger user', () => {
    expect(decideLimit({ ...base, shardCpuMax: 0.97 }).limited_by).toBe('server_cpu');
    expect(decideLimit({ ...base, serverCpu: 6.5 }).limited_by).toBe('server_cpu');
    expect(decideLimit({ ...base, workerCpuMax: 0.98 }).limited_by).toBe('generator_cpu');
    // Mean CPU can look fine while bursts make a worker read late: its event-loop lag tells.
    expect(decideLimit({ ...base, generatorLagMs: 40 }).limited_by).toBe('generator_cpu');
    const shared = decideLimit({ ...base, local: true, cores: 2, machineBusy: 0.97, serverCpu: 0.7, generatorCpu: 1.2 });
    expect(shared.limited_by).toBe('generator_cpu');
    expect(shared.detail).toMatch(/shared machine saturated/);
    expect(decideLimit({ ...base, local: true, cores: 2, machineBusy: 0.95, serverCpu: 0.2, generatorCpu: 0.3 }).limited_by).toBe('other_load');
    expect(decideLimit({ ...base, serverMemoryMb: 9500 }).limited_by).toBe('memory');
    expect(decideLimit(base).limited_by).toBe('unknown');
  });
});

describe('the test client gap check (tests/support/client.ts)', () => {
  const m = (seq: number, epoch?: string) => ({ channel: 'trades:A', seq, ts: 0, data: {}, ...(epoch ? { epoch } : {}) });
  it('counts a new epoch restarting at 1 as neither a gap nor a duplicate', () => {
    expect(assertNoGaps([m(7, 'e1'), m(8, 'e1'), m(1, 'e2'), m(2, 'e2')])).toEqual({ gaps: 0, dups: 0 });
    expect(assertNoGaps([m(7, 'e1'), m(8, 'e1'), m(3, 'e2'), m(3, 'e2')])).toEqual({ gaps: 2, dups: 1 });
    expect(assertNoGaps([m(7), m(8), m(1)])).toEqual({ gaps: 0, dups: 1 }); // no epoch: a step back
  });
});

describe('lite client frames', () => {
  const serverFrame = (opcode: number, payload: Buffer) => {
    const n = payload.length;
    const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([0x80 | opcode, 127]), Buffer.from(new BigUint64Array([BigInt(n)]).buffer).reverse()]);
    return Buffer.concat([head, payload]);
  };

  it('hands every control frame over whole and skips data, however the stream is split', () => {
    const frame = fc.oneof(
      fc.record({ op: fc.constantFrom(0x9, 0xa, 0x8), len: fc.integer({ min: 0, max: 125 }) }),
      fc.record({ op: fc.constantFrom(0x1, 0x2), len: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(70_000)) }),
    );
    fc.assert(
      fc.property(fc.array(frame, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 4000 }), { maxLength: 20 }), (frames, cuts) => {
        const payloads = frames.map((f, i) => Buffer.alloc(f.len, i + 1));
        const stream = Buffer.concat(frames.map((f, i) => serverFrame(f.op, payloads[i])));
        const got: Array<[number, string]> = [];
        const reader = new ServerFrameReader((op, p) => got.push([op, p.toString('hex')]));
        let at = 0;
        for (const c of [...cuts, stream.length]) {
          const end = Math.min(stream.length, at + c);
          expect(reader.push(stream.subarray(at, end))).toBe(true);
          at = end;
        }
        expect(got).toEqual(frames.flatMap((f, i) => (f.op & 0x8 ? [[f.op, payloads[i].toString('hex')]] : [])));
      }),
      { numRuns: 200 },
    );
  });

  it('refuses frames no server may send', () => {
    expect(new ServerFrameReader(() => {}).push(Buffer.from([0x89, 0x81, 1, 2, 3, 4, 5]))).toBe(false); // masked
    expect(new ServerFrameReader(() => {}).push(serverFrame(0x9, Buffer.alloc(126)))).toBe(false); // control > 125
  });

  it('writes a pong as a masked client frame carrying the ping payload', () => {
    const payload = Buffer.from('odin-ping');
    const f = clientControlFrame(0xa, payload);
    expect(f[0]).toBe(0x8a);
    expect(f[1]).toBe(0x80 | payload.length);
    const mask = f.subarray(2, 6);
    expect(Buffer.from(f.subarray(6).map((b, i) => b ^ mask[i & 3]))).toEqual(payload);
  });
});
