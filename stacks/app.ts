// Builds every stack into an App from already-validated config and asset texts.
// The VM stacks attach to the subnet and the WS address by name, so they need the bootstrap and
// network stacks deployed first (declared as dependencies) but read nothing from their state.
import type { App } from 'cdktf';
import type { Assets } from './assets.js';
import type { StackConfig } from './config/schema.js';
import { BackendStack } from './backend-stack.js';
import { BootstrapStack } from './bootstrap-stack.js';
import { LoadtestStack } from './loadtest-stack.js';
import { NetworkStack } from './network-stack.js';
import { planDeployment, type DeploymentPlan } from './plan.js';
import { StateStack } from './state-stack.js';
import { WsStack } from './ws-stack.js';

export interface OdinStacks {
  readonly plan: DeploymentPlan;
  /** Only with a configured state bucket. */
  readonly state?: StateStack;
  readonly bootstrap: BootstrapStack;
  readonly network: NetworkStack;
  readonly backend: BackendStack;
  readonly ws: WsStack;
  /** Always synthesized; deployed only when loadtest.enabled or by gcp:load-test:capacity. */
  readonly loadtest: LoadtestStack;
}

export function buildStacks(app: App, config: StackConfig, assets: Assets): OdinStacks {
  const plan = planDeployment(config);
  const base = { config, plan };
  const state = config.stateBucket ? new StateStack(app, 'state', { ...base, bucket: config.stateBucket }) : undefined;
  const bootstrap = new BootstrapStack(app, 'bootstrap', base);
  if (state) bootstrap.addDependency(state);
  const network = new NetworkStack(app, 'network', base);
  network.addDependency(bootstrap);
  const backend = new BackendStack(app, 'backend', { ...base, assets });
  const ws = new WsStack(app, 'ws', { ...base, assets });
  const loadtest = new LoadtestStack(app, 'loadtest', { ...base, assets });
  for (const stack of [backend, ws, loadtest]) stack.addDependency(network);
  // Prometheus on the backend scrapes the WS VM and the server needs Kafka: bring the
  // backend up first so the first scrape and the first consume find a broker.
  ws.addDependency(backend);
  return { plan, state, bootstrap, network, backend, ws, loadtest };
}
