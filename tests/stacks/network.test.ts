import { Testing } from 'cdktf';
import { describe, expect, it } from 'vitest';
import { resources, synthAll, only } from './helpers.js';

// Literal values on purpose: a test that imported them would follow a wrong constant.
const PORTS = { ssh: 22, ws: 3004, publisher: 3003, kafka: 9092, prometheus: 9090, grafana: 3010, console: 8080 };
const IAP_RANGE = '35.235.240.0/20';

const { stacks, raw } = synthAll({ subnetCidr: '10.20.0.0/24' });
const net = stacks.network;
const firewalls = resources(net, 'google_compute_firewall');

const portsOf = (rule: Record<string, any>): string[] => rule.allow.flatMap((a: { ports?: string[] }) => a.ports ?? []);
const opens = (port: number) => firewalls.filter((r) => portsOf(r).includes(String(port)));

describe('network stack', () => {
  it('has a custom-mode VPC, the configured subnet with private Google access, and Cloud NAT for it', () => {
    expect(only(net, 'google_compute_network')).toMatchObject({ name: 'odin-test-vpc', auto_create_subnetworks: false });
    expect(only(net, 'google_compute_subnetwork')).toMatchObject({
      name: 'odin-test-subnet',
      ip_cidr_range: '10.20.0.0/24',
      region: 'us-central1',
      private_ip_google_access: true,
    });
    expect(Testing.toHaveResourceWithProperties(raw.network, 'google_compute_router', { name: 'odin-test-router' })).toBe(true);
    const nat = only(net, 'google_compute_router_nat');
    expect(nat.source_subnetwork_ip_ranges_to_nat).toBe('LIST_OF_SUBNETWORKS');
    expect(nat.subnetwork[0].name).toMatch(/^\$\{google_compute_subnetwork\.\w+\.id\}$/);
    expect(nat.router).toMatch(/^\$\{google_compute_router\.\w+\.name\}$/);
  });

  it('opens nothing to 0.0.0.0/0 except tcp:3004, and that only to the WS VM tag', () => {
    const world = firewalls.filter((r) => r.source_ranges.some((s: string) => Number(s.split('/')[1]) < 8));
    expect(world).toHaveLength(1);
    expect(world[0].source_ranges).toEqual(['0.0.0.0/0']);
    expect(world[0].allow).toEqual([{ protocol: 'tcp', ports: ['3004'] }]);
    expect(world[0].target_tags).toEqual(['odin-ws']);
  });

  it('every rule is ingress and targets tagged VMs only', () => {
    for (const rule of firewalls) {
      expect(rule.direction).toBe('INGRESS');
      expect(rule.target_tags.length).toBeGreaterThan(0);
      expect(rule.source_ranges.length).toBeGreaterThan(0);
      expect(rule.network).toMatch(/^\$\{google_compute_network\.\w+\.id\}$/);
    }
  });

  it('allows SSH only from the IAP range', () => {
    const ssh = opens(PORTS.ssh);
    expect(ssh).toHaveLength(1);
    expect(ssh[0].source_ranges).toEqual([IAP_RANGE]);
    expect(ssh[0].target_tags.sort()).toEqual(['odin-backend', 'odin-loadtest', 'odin-ws']);
  });

  it('allows Grafana and the console only from the IAP range, on exactly those two ports, to the backend', () => {
    for (const port of [PORTS.grafana, PORTS.console]) {
      const rules = opens(port);
      expect(rules).toHaveLength(1);
      expect(rules[0].source_ranges).toEqual([IAP_RANGE]);
      expect(rules[0].target_tags).toEqual(['odin-backend']);
      expect(rules[0].allow).toEqual([{ protocol: 'tcp', ports: ['3010', '8080'] }]);
    }
    // The IAP range reaches nothing else but SSH.
    const iap = firewalls.filter((r) => r.source_ranges.includes(IAP_RANGE));
    expect(iap.flatMap(portsOf).sort()).toEqual(['22', '3010', '8080']);
  });

  it('allows Kafka, Prometheus, the publisher and in-VPC 3004 only from the subnet', () => {
    for (const port of [PORTS.kafka, PORTS.prometheus, PORTS.publisher]) {
      const rules = opens(port);
      expect(rules).toHaveLength(1);
      expect(rules[0].source_ranges).toEqual(['10.20.0.0/24']);
      expect(rules[0].target_tags).toEqual(['odin-backend']);
    }
    const wsRules = opens(PORTS.ws).filter((r) => !r.source_ranges.includes('0.0.0.0/0'));
    expect(wsRules.map((r) => r.source_ranges)).toEqual([['10.20.0.0/24']]);
  });

  it('opens no port that is not in the list above', () => {
    const known = new Set(Object.values(PORTS).map(String));
    for (const rule of firewalls) {
      for (const allow of rule.allow) {
        if (allow.protocol === 'icmp') {
          expect(rule.source_ranges).toEqual(['10.20.0.0/24']);
          continue;
        }
        expect(allow.protocol).toBe('tcp');
        expect(allow.ports.every((p: string) => known.has(p))).toBe(true);
      }
    }
  });
});
