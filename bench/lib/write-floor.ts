// The per-delivery floor on this machine: CPU of one socket.write() of a ~200-byte WebSocket
// frame to each of N loopback sockets, with the readers in another process. Any server that
// writes once per client per message pays at least this; on loopback it includes the kernel's
// receive-side TCP work, which runs in the sender's context.
import { fork } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface WriteFloor {
  sockets: number;
  writes: number;
  us_per_write: number;
  user_us_per_write: number;
  sys_us_per_write: number;
}

const SELF = fileURLToPath(import.meta.url);

/** Runs in a forked process so the figure is not mixed with the caller's own CPU. */
export function measureWriteFloor(sockets = 1000, rounds = 100, timeoutMs = 60_000): Promise<WriteFloor> {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, ['--measure', String(sockets), String(rounds)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('message', (m) => resolve(m as WriteFloor));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`write-floor probe exited (${code}) without a result`));
    });
  });
}

function readers(port: number, n: number): void {
  let connected = 0;
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('connect', () => ++connected === n && process.send!('ready'));
  }
}

function writer(n: number, rounds: number): void {
  const socks: net.Socket[] = [];
  const srv = net.createServer((s) => socks.push(s)).listen(0, '127.0.0.1', () => {
    const child = fork(SELF, ['--readers', String((srv.address() as net.AddressInfo).port), String(n)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('message', () => {
      const frame = Buffer.alloc(212, 0x78);
      frame[0] = 0x81;
      frame[1] = 126;
      frame.writeUInt16BE(208, 2);
      const c0 = process.cpuUsage();
      let r = 0;
      const tick = () => {
        for (const s of socks) s.write(frame);
        if (++r < rounds) return void setTimeout(tick, 5);
        setTimeout(() => {
          const c = process.cpuUsage(c0);
          const w = n * rounds;
          const r2 = (x: number) => Math.round(x * 100) / 100;
          process.send!({ sockets: n, writes: w, us_per_write: r2((c.user + c.system) / w), user_us_per_write: r2(c.user / w), sys_us_per_write: r2(c.system / w) } satisfies WriteFloor);
          child.kill();
          process.exit(0);
        }, 200);
      };
      tick();
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) {
  if (process.argv[2] === '--measure') writer(Number(process.argv[3]), Number(process.argv[4]));
  else if (process.argv[2] === '--readers') readers(Number(process.argv[3]), Number(process.argv[4]));
}
