// Small, strict IPv4 CIDR arithmetic: enough to validate config and place fixed addresses.

export interface Cidr {
  readonly base: number; // network address as an unsigned 32-bit integer
  readonly prefix: number;
  readonly text: string;
}

const OCTET = /^(0|[1-9]\d{0,2})$/;

export function parseIpv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!OCTET.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Parses `a.b.c.d/n`; returns an error text instead of throwing so zod can report it per field. */
export function parseCidr(text: string): Cidr | string {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text.trim());
  if (!match) return `"${text}" is not an IPv4 CIDR (expected a.b.c.d/n, e.g. 203.0.113.7/32)`;
  const ip = parseIpv4(match[1]);
  const prefix = Number(match[2]);
  if (ip === null) return `"${text}" has an invalid IPv4 address`;
  if (prefix > 32) return `"${text}" has a prefix length above 32`;
  const size = 2 ** (32 - prefix);
  const base = ip - (ip % size);
  // A CIDR with host bits set is almost always a typo for a different range: say which one.
  if (base !== ip) return `"${text}" has host bits set; did you mean ${formatIpv4(base)}/${prefix}?`;
  return { base, prefix, text: `${formatIpv4(base)}/${prefix}` };
}

export function cidrSize(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

/** The n-th address of the range (like Terraform's cidrhost). */
export function cidrHost(cidr: Cidr, n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= cidrSize(cidr)) {
    throw new RangeError(`host ${n} is outside ${cidr.text}`);
  }
  return formatIpv4(cidr.base + n);
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.prefix >= outer.prefix && inner.base >= outer.base && inner.base + cidrSize(inner) <= outer.base + cidrSize(outer);
}

export function cidrContainsIp(cidr: Cidr, ip: string): boolean {
  const value = parseIpv4(ip);
  return value !== null && value >= cidr.base && value < cidr.base + cidrSize(cidr);
}

const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map((t) => parseCidr(t) as Cidr);

export function isPrivate(cidr: Cidr): boolean {
  return PRIVATE.some((range) => cidrContains(range, cidr));
}
