// Preflight of a deploy, before anything is created: every problem is one line naming its fix,
// and any problem stops the deploy (exit 1) with nothing created. Read-only gcloud calls only.
import { OpsError } from './gcp.mjs';

/** Roles the operator needs to reach the VMs (IAP SSH with sudo, tunnels) and to run them as their service accounts. */
export const OPERATOR_ROLES = Object.freeze({
  'roles/iap.tunnelResourceAccessor': 'IAP TCP forwarding (SSH, gcp:grafana, gcp:console)',
  'roles/compute.osAdminLogin': 'sudo over OS Login on the VMs',
  'roles/iam.serviceAccountUser': 'creating and logging in to VMs that run as the per-VM service accounts',
});
/** Creating the stacks: project owner, or editor plus the two IAM-policy roles editor lacks. */
export const CREATOR_ROLES = Object.freeze(['roles/resourcemanager.projectIamAdmin', 'roles/secretmanager.admin']);

export const APIS_NEEDED_BY_PREFLIGHT = Object.freeze(['compute.googleapis.com']);

const QUOTA_METRICS = ['CPUS', 'E2_CPUS'];

/**
 * vCPUs the configured VMs take from the regional quota: every WS node (the autoscaler's maximum
 * when it scales) and every load-test VM.
 */
export function plannedVcpus(config, machineTypes) {
  const copies = {
    ws: config.ws.autoscale?.max ?? config.ws.count ?? 1,
    backend: 1,
    loadtest: config.loadtest.enabled ? (config.loadtest.count ?? 1) : 0,
  };
  return Object.entries(copies).reduce((sum, [role, n]) => {
    const shape = machineTypes[config[role].machineType];
    const fromName = Number(/-(\d+)$/.exec(config[role].machineType)?.[1] ?? 2);
    return sum + n * (shape?.vcpus ?? fromName);
  }, 0);
}

/** Quota problems from `gcloud compute regions describe --format=json`. */
export function quotaProblems(regionJson, needed, region) {
  let quotas;
  try {
    quotas = JSON.parse(regionJson).quotas ?? [];
  } catch {
    return [`could not read the ${region} quotas (gcloud compute regions describe ${region})`];
  }
  const problems = [];
  for (const metric of QUOTA_METRICS) {
    const q = quotas.find((x) => x.metric === metric);
    if (!q) continue;
    const free = Number(q.limit) - Number(q.usage);
    if (free < needed) {
      problems.push(`regional quota ${metric} in ${region}: ${free} of ${q.limit} vCPUs free, the plan needs ${needed}: ` +
        `request more at https://console.cloud.google.com/iam-admin/quotas (or stop other VMs)`);
    }
  }
  return problems;
}

/** Role problems from the project's IAM policy (JSON) for `account`. */
export function roleProblems(policyJson, account) {
  let bindings;
  try {
    bindings = JSON.parse(policyJson).bindings ?? [];
  } catch {
    return [`could not read the project's IAM policy (gcloud projects get-iam-policy)`];
  }
  const kind = account.endsWith('.gserviceaccount.com') ? 'serviceAccount' : 'user';
  const member = `${kind}:${account}`;
  const has = new Set(bindings.filter((b) => (b.members ?? []).includes(member)).map((b) => b.role));
  const problems = [];
  const grant = (role) => `gcloud projects add-iam-policy-binding PROJECT --member=${member} --role=${role}`;
  if (!has.has('roles/owner')) {
    if (!has.has('roles/editor')) problems.push(`${member} can not create the stacks: needs roles/owner (or roles/editor with ${CREATOR_ROLES.join(' and ')}): ${grant('roles/owner')}`);
    else for (const role of CREATOR_ROLES) if (!has.has(role)) problems.push(`${member} lacks ${role} (editor cannot set IAM policies): ${grant(role)}`);
  }
  for (const [role, why] of Object.entries(OPERATOR_ROLES)) {
    if (!has.has(role)) problems.push(`${member} lacks ${role} (${why}): ${grant(role)}`);
  }
  return problems;
}

/**
 * Runs the checks; returns { account, missingApis, quotaDeferred } or throws one OpsError whose
 * message is one line per problem. skipRoles: for roles granted through a group (not visible in
 * the project policy).
 */
export async function preflight(gcp, deployment, { machineTypes, skipRoles = false, log = () => {} }) {
  const { project, region, config } = deployment;
  const problems = [];
  const q = { allowFail: true, quiet: true };

  const auth = await gcp.gcloud(['auth', 'list', '--filter=status:ACTIVE', '--format=value(account)'], q);
  const account = gcp.dryRun ? '<account>' : auth.stdout.trim().split('\n')[0] ?? '';
  if (!account) throw new OpsError('gcloud is not authenticated: run `gcloud auth login`');

  const adc = await gcp.gcloud(['auth', 'application-default', 'print-access-token'], { ...q, display: 'gcloud auth application-default print-access-token >/dev/null' });
  if (adc.exitCode !== 0) problems.push('no Application Default Credentials (terraform uses them): run `gcloud auth application-default login`');

  const described = await gcp.gcloud(['projects', 'describe', project, '--format=value(projectId)'], q);
  if (!gcp.dryRun && described.stdout.trim() !== project) {
    // Nothing else about a project we cannot see is worth asking.
    throw new OpsError([...problems, `project ${project} does not exist or ${account} cannot see it: create it (gcloud projects create ${project}) or fix GCP_PROJECT / "project" in stacks/config/${deployment.env}.json`].join('\nerror: '));
  }

  const billing = await gcp.gcloud(['billing', 'projects', 'describe', project, '--format=value(billingEnabled)'], q);
  if (!gcp.dryRun && billing.stdout.trim().toLowerCase() !== 'true') {
    problems.push(`billing is not enabled on ${project}: gcloud billing projects link ${project} --billing-account=ACCOUNT_ID (gcloud billing accounts list)`);
  }

  const services = await gcp.gcloud(['services', 'list', '--enabled', '--project', project, '--format=value(config.name)'], q);
  let missingApis = [];
  if (!gcp.dryRun && services.exitCode !== 0) {
    problems.push(`cannot list the enabled APIs of ${project}: gcloud services enable serviceusage.googleapis.com --project ${project}`);
  } else {
    const enabled = new Set(services.stdout.split('\n').map((s) => s.trim()).filter(Boolean));
    missingApis = deployment.requiredApis.filter((a) => !enabled.has(a));
    if (missingApis.length && !gcp.dryRun) log(`  APIs to be enabled by the bootstrap stack: ${missingApis.join(', ')}`);
  }

  // The quota needs the Compute API; on a fresh project it is checked right after bootstrap.
  const quotaDeferred = missingApis.some((a) => APIS_NEEDED_BY_PREFLIGHT.includes(a));
  if (!quotaDeferred) problems.push(...(await checkQuota(gcp, deployment, machineTypes)));

  if (!skipRoles) {
    const policy = await gcp.gcloud(['projects', 'get-iam-policy', project, '--format=json'], q);
    if (!gcp.dryRun) {
      const found = policy.exitCode === 0 ? roleProblems(policy.stdout, account) : ['cannot read the project IAM policy (needs resourcemanager.projects.getIamPolicy, e.g. roles/viewer)'];
      problems.push(...found.map((p) => p.replace('PROJECT', project)));
      if (found.length) problems.push('(roles granted through a group are not visible here: pass --skip-role-check if you have them that way)');
    }
  }
  if (problems.length) throw new OpsError(problems.join('\nerror: '));
  return { account, missingApis, quotaDeferred };
}

export async function checkQuota(gcp, { project, region, config }, machineTypes) {
  const r = await gcp.gcloud(['compute', 'regions', 'describe', region, '--project', project, '--format=json(quotas)'], { allowFail: true, quiet: true });
  if (gcp.dryRun) return [];
  if (r.exitCode !== 0) return [`cannot read the ${region} quotas: ${r.stderr.trim().split('\n').pop()}`];
  return quotaProblems(r.stdout, plannedVcpus(config, machineTypes), region);
}
