export interface SoakOptions {
  minutes: number;
  shards: number;
  witnesses: number;
  churn: number;
  slow: number;
  rssToleranceMb: number;
  settleS: number;
}
export interface ProcStats {
  rssMb: number;
  fds: number;
}
export declare function parseSoakArgs(argv: readonly string[]): { ok: true; opts: SoakOptions } | { ok: false; problems: string[] };
export declare function clientFrame(opcode: number, payload?: Buffer | string, opts?: { fin?: boolean; mask?: boolean; declaredLength?: number }): Buffer;
export declare const HOSTILE: Array<{ name: string; http?: () => Buffer | string; ws?: () => Buffer }>;
export declare function procStats(pid: number): ProcStats;
export declare function judge(
  baseline: Record<string, ProcStats | null>,
  final: Record<string, ProcStats | null>,
  opts: { rssToleranceMb: number },
): { ok: boolean; problems: string[]; rssGrowthMb: number };
export declare function main(argv: readonly string[]): Promise<number>;
