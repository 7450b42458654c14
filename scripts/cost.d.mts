// Types for scripts/cost.mjs (plain ESM run by node; imported by tests and the deploy script).
export interface VmCost {
  role: 'ws' | 'backend' | 'loadtest';
  /** VMs of this role (ws.count, loadtest.count); the amounts are for all of them. */
  count: number;
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
  egress: EgressCost;
  /** Only for a fleet (ws.count >= 2). */
  balancer?: BalancerCost;
  autoscale?: { min: number; max: number };
  hourly: number;
  monthly: number;
}
export interface BalancerCost {
  forwardingRules: number;
  dataGbPerMonth: number;
  pricePerGb: number;
  hourly: number;
  monthly: number;
  items: { forwardingRules: number; staticIp: number; dataProcessed: number };
}
export interface EgressInputs {
  connections?: number;
  bytesPerSecond?: number;
}
export interface EgressCost {
  connections: number;
  bytesPerSecond: number;
  gbPerHour: number;
  hourly: number;
  monthly: number;
  pricePerGb: number;
}
export interface StoppedCost {
  currency: string;
  priceDate: string;
  disks: number;
  staticIp: number;
  /** A stopped fleet keeps its forwarding rules (the group is resized to 0). */
  forwardingRules?: number;
  monthly: number;
}
export interface VmShape {
  machineType: string;
  diskGb: number;
}
export type CostConfig = Record<'ws' | 'backend', VmShape> & { loadtest: VmShape & { enabled?: boolean } };
export type PriceTable = Record<string, any>;

export const PRICE_FILE: string;
export function loadPrices(file?: string): PriceTable;
export const EGRESS_DEFAULTS: Readonly<Required<EgressInputs>>;
export function estimateEgress(inputs?: EgressInputs, prices?: PriceTable): EgressCost;
export function estimateMonthlyCost(config: CostConfig, prices?: PriceTable, egress?: EgressInputs): CostEstimate;
export function estimateMonthlyCost(): Promise<CostEstimate>;
export function stoppedMonthlyCost(config: CostConfig, prices?: PriceTable): StoppedCost;
export function formatEstimate(estimate: CostEstimate): string;
export function loadStackConfig(env?: Record<string, string | undefined>): Promise<CostConfig & Record<string, unknown>>;
