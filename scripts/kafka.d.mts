// Types for scripts/kafka.mjs (imported by the test support code).
export interface Broker {
  readonly brokers: string;
  readonly port: number;
  readonly dir: string;
  /** Milliseconds from the call to a broker that answers with its topics created. */
  readonly startMs: number;
  readonly pid: number | null;
  stop(): Promise<void>;
  /** Start again after stop(), same port and data dir; a no-op while running. */
  start(): Promise<void>;
  /** Stop then start on the same port and data dir. */
  restart(): Promise<void>;
  close(): Promise<void>;
}
export interface StartBrokerOptions {
  dir: string;
  port?: number;
  topics?: string[];
  partitions?: number;
  heapMb?: number;
  detached?: boolean;
  readyTimeoutMs?: number;
  log?: (msg: string) => void;
}
export const root: string;
export const defaultDir: string;
export const defaultTopics: string[];
export const defaultPartitions: number;
export function startBroker(opts: StartBrokerOptions): Promise<Broker>;
export function createTopics(opts: { brokers: string; topics: string[]; partitions?: number; timeoutMs?: number }): Promise<string[]>;
export function waitReady(opts: { brokers: string; alive?: () => boolean; timeoutMs?: number }): Promise<void>;
export function resolveClasspath(opts?: { cacheDir?: string; log?: (msg: string) => void }): Promise<string>;
export function renderTemplate(template: string, vars: Record<string, string | number>): string;
export function newClusterId(): string;
export function freePort(): Promise<number>;
export function parseCli(argv: string[]): {
  command: string;
  dir: string;
  port?: number;
  topics: string[];
  partitions: number;
  problems: string[];
};
