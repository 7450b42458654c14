// Builds all four stacks into an App from already-validated config and asset texts.
// The VM stacks attach to the subnet by its resource path, so they need the network stack
// deployed first (declared as a dependency) but read nothing from its state.
import type { App } from 'cdktf';
import type { Assets } from './assets.js';
import type { StackConfig } from './config/schema.js';
import { BackendStack } from './backend-stack.js';
import { LoadtestStack } from './loadtest-stack.js';
import { NetworkStack } from './network-stack.js';
import { planDeployment, type DeploymentPlan } from './plan.js';
import { WsStack } from './ws-stack.js';

export interface OdinStacks {
  readonly plan: DeploymentPlan;
  readonly network: NetworkStack;
  readonly backend: BackendStack;
  readonly ws: WsStack;
  readonly loadtest: LoadtestStack;
}

export function buildStacks(app: App, config: StackConfig, assets: Assets, localStateDir: string): OdinStacks {
  const plan = planDeployment(config);
  const base = { config, plan, localStateDir };
  const network = new NetworkStack(app, 'network', base);
  const backend = new BackendStack(app, 'backend', { ...base, assets });
  const ws = new WsStack(app, 'ws', { ...base, assets });
  const loadtest = new LoadtestStack(app, 'loadtest', { ...base, assets });
  for (const stack of [backend, ws, loadtest]) stack.addDependency(network);
  // Prometheus on the backend scrapes the WS VM and the server needs Kafka: bring the
  // backend up first so the first scrape and the first consume find a broker.
  ws.addDependency(backend);
  return { plan, network, backend, ws, loadtest };
}
