// Types for scripts/cost.mjs (plain ESM run by node; imported by tests and the deploy script).
export interface VmCost {
  role: 'ws' | 'backend' | 'loadtest';
  machineType: string;
  vcpus: number;
  memoryGb: number;
  diskGb: number;
  hourly: number;
  monthly: number;
  items: { compute: number; disk: number; staticIp: number; nat: number };
}
export interface CostEstimate {
  currency: string;
  priceDate: string;
  region: string;
  hoursPerMonth: number;
  vms: VmCost[];
  hourly: number;
  monthly: number;
}
export interface VmShape {
  machineType: string;
  diskGb: number;
}
export type CostConfig = Record<'ws' | 'backend' | 'loadtest', VmShape>;
export type PriceTable = Record<string, any>;

export const PRICE_FILE: string;
export function loadPrices(file?: string): PriceTable;
export function estimateMonthlyCost(config: CostConfig, prices?: PriceTable): CostEstimate;
export function estimateMonthlyCost(): Promise<CostEstimate>;
export function formatEstimate(estimate: CostEstimate): string;
export function loadStackConfig(env?: Record<string, string | undefined>): Promise<CostConfig & Record<string, unknown>>;
