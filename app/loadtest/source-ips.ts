// Client source addresses. Each source IP has its own ~28K ephemeral ports, so spreading
// clients over several addresses keeps tens of thousands of connections from exhausting them.
// Locally every 127.0.0.0/8 address routes to loopback, so no setup is needed.
import net from 'node:net';

const MAX_IPS = 4096;
/** 16 addresses x ~28K ports: room for 100,000+ connections to one server port. */
const DEFAULT_LOOPBACK_COUNT = 16;

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (net.isIPv4(h) && h.startsWith('127.'));
}

/**
 * 127.A.B.1-16 with A.B drawn per run: a previous run's client sockets linger in TIME_WAIT on
 * their addresses for a minute, and binding new ports among tens of thousands of them slows the
 * kernel's port search (seen right after a 100,000-connection run: a worker at a full core
 * connecting ~400/s, against ~3,300/s on fresh addresses).
 */
export function defaultSourceIps(random: () => number = Math.random): string[] {
  const a = 1 + Math.floor(random() * 254);
  const b = Math.floor(random() * 256);
  return rangeV4(`127.${a}.${b}.1`, `127.${a}.${b}.${DEFAULT_LOOPBACK_COUNT}`);
}

/** `none` | comma list of `IP` and `IPv4-IPv4` ranges. */
export function parseSourceIps(text: string): { ok: true; ips: string[] } | { ok: false; problem: string } {
  const s = text.trim();
  if (s === 'none') return { ok: true, ips: [] };
  const ips: string[] = [];
  for (const item of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const dash = item.indexOf('-');
    if (dash > 0 && net.isIPv4(item.slice(0, dash)) && net.isIPv4(item.slice(dash + 1))) {
      const r = rangeV4(item.slice(0, dash), item.slice(dash + 1));
      if (!r.length) return { ok: false, problem: `range ${item} is empty (start after end)` };
      if (r.length > MAX_IPS) return { ok: false, problem: `range ${item} has more than ${MAX_IPS} addresses` };
      ips.push(...r);
    } else if (net.isIP(item)) ips.push(item);
    else return { ok: false, problem: `"${item}" is not an IP address or an IPv4 range a.b.c.d-e.f.g.h` };
  }
  if (!ips.length) return { ok: false, problem: 'no addresses; use an IP list, a range or none' };
  if (ips.length > MAX_IPS) return { ok: false, problem: `more than ${MAX_IPS} addresses` };
  const families = new Set(ips.map((ip) => net.isIP(ip)));
  if (families.size > 1) return { ok: false, problem: 'mixes IPv4 and IPv6 addresses' };
  return { ok: true, ips: [...new Set(ips)] };
}

function rangeV4(a: string, b: string): string[] {
  const from = toInt(a);
  const to = toInt(b);
  const out: string[] = [];
  for (let x = from; x <= to && out.length <= MAX_IPS; x++) out.push(fromInt(x));
  return out;
}

const toInt = (ip: string): number => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
const fromInt = (x: number): string => [24, 16, 8, 0].map((s) => Math.floor(x / 2 ** s) % 256).join('.');
