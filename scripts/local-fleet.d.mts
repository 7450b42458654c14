// Types for scripts/local-fleet.mjs (imported by tests/fleet and the continuity benchmark).
export interface FleetNode {
  readonly name: string;
  readonly port: number;
  readonly group: string;
  pid: number | null;
  readonly log: string;
  restarts: number;
}
export interface Fleet {
  readonly id: string;
  readonly dir: string;
  readonly brokers: string;
  readonly topics: string[];
  /** ws://127.0.0.1:<balancer port>/ws */
  readonly url: string;
  readonly port: number;
  readonly nodes: FleetNode[];
  readonly publisher: { pid: number; log: string; statusUrl: string } | null;
  /** null when started with balancer: false. */
  readonly haproxy: { pid: number; socket: string; config: string } | null;
  /** HAProxy's view: node name -> UP | DOWN | "UP 1/2" | "DOWN 1/2" | MAINT... */
  status(): Promise<Map<string, string>>;
  nodeUrl(name: string, path?: string): string;
  running(name: string): boolean;
  /** Resolves with the exit code (or signal name) once the node has exited. */
  signal(name: string, sig?: NodeJS.Signals): Promise<number | string | null>;
  /** Starts the node again (same port and group); resolves once it is healthy on Kafka. */
  start(name: string): Promise<FleetNode>;
  stop(): Promise<void>;
}
export interface FleetOptions {
  dir?: string;
  port?: number;
  nodes?: number;
  shards?: number;
  noticeMs?: number;
  drainTimeoutMs?: number;
  rate?: number;
  tokens?: number;
  check?: { interMs: number; fall: number; rise: number };
  brokers?: string;
  topics?: string[];
  publisher?: boolean;
  /** false: no HAProxy; url is the first node's. */
  balancer?: boolean;
  nodeExtraEnv?: Record<string, string>;
  log?: (msg: string) => void;
  onExit?: (name: string, how: number | string | null) => void;
}
export const STATE_DIR: string;
export const DEFAULTS: { nodes: number; port: number; shards: number; noticeMs: number; drainTimeoutMs: number; rate: number; tokens: number; check: { interMs: number; fall: number; rise: number }; maxconn: number };
export function startFleet(opts?: FleetOptions): Promise<Fleet>;
/** The broker's records of `topic` per channel (`trades:<key>` -> positions in offset order), read directly. */
export function observeTopic(opts: { brokers: string; topic: string; clientId: string; groupId: string }): Promise<{ truth: Map<string, string[]>; stop(): Promise<void> }>;
export function haproxyConfig(opts: { bind: { host: string; port: number }; nodes: Array<{ name: string; port: number }>; socket: string; check?: { interMs: number; fall: number; rise: number }; maxconn?: number }): string;
export function nodeEnv(opts: { brokers: string; topics: string[]; group: string; noticeMs: number; drainTimeoutMs: number; shards: number }): Record<string, string>;
export function groupName(fleetId: string, node: string): string;
export function parseStat(csv: string): Array<{ proxy: string; server: string; status: string; sessions: number }>;
export function haproxyCommand(socket: string, command: string, timeoutMs?: number): Promise<string>;
export function parseCli(argv: string[]): Record<string, unknown>;
export function downPlan(dir: string): Array<{ name: string; file: string; marker: string }>;
export function down(dir?: string, log?: (msg: string) => void): Promise<number>;
export function status(dir: string, log: (msg: string) => void): Promise<number>;
export function main(argv: string[], opts?: { env?: NodeJS.ProcessEnv }): Promise<number>;
