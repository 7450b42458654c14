// What limited a step. Checked in order of certainty: hard failures the generator saw itself
// (fd limit, 503s, connect errors) first, then saturation of memory and CPU. On a loopback run
// server and generator share the cores, so a saturated box is charged to the bigger consumer
// and the detail names both; a box busy with neither is charged to other load.

export type LimitedBy =
  | 'none'
  | 'fd_limit'
  | 'guard_refusals'
  | 'idle_timeout'
  | `connect_errors:${string}`
  | 'memory'
  | 'server_cpu'
  | 'generator_cpu'
  | 'other_load'
  | 'unknown';

export interface VerdictInput {
  passed: boolean;
  target: number;
  refused: number;
  connectErrors: Record<string, number>;
  /** Closes the server initiated, by WebSocket close code. */
  closedByServer: Record<string, number>;
  rejectedByReason: Record<string, number>;
  maxConnections: number | null;
  /** Server cores in use (mean over the step), all processes; per shard; null without /health. */
  serverCpu: number | null;
  shardCpuMax: number | null;
  frontCpu: number | null;
  cpuLimit: number | null;
  serverMemoryMb: number | null;
  memoryLimitMb: number | null;
  /** Generator: cores per worker (mean), all generator processes summed, late reports. */
  workerCpuMax: number;
  generatorCpu: number;
  lateReports: number;
  /** Workers' event-loop delay p99 (ms) in the step, mean of the reports, and the SLO it eats into. */
  generatorLagMs: number;
  sloP99Ms: number;
  generatorFdSoft: number | null;
  /** Loopback run: the generator's machine is the server's machine. */
  local: boolean;
  cores: number;
  machineBusy: number | null;
  memAvailable: number | null;
}

const f = (x: number | null, d = 2) => (x === null ? 'n/a' : x.toFixed(d));

export function decideLimit(x: VerdictInput): { limited_by: LimitedBy; detail: string } {
  if (x.passed) return { limited_by: 'none', detail: `target ${x.target} reached within the SLO` };

  const fdErrors = (x.connectErrors.EMFILE ?? 0) + (x.connectErrors.ENFILE ?? 0);
  if (fdErrors > 0) {
    return { limited_by: 'fd_limit', detail: `${fdErrors} connects failed with EMFILE/ENFILE: a generator process may hold ${x.generatorFdSoft ?? 'an unknown number of'} fds` };
  }
  if (x.refused > 0) {
    const reasons = Object.entries(x.rejectedByReason).map(([k, v]) => `${k}=${v}`).join(', ') || 'not reported';
    const where =
      x.maxConnections === null
        ? 'server max_connections unknown'
        : x.target > x.maxConnections
          ? `target ${x.target} is above the guard's max_connections ${x.maxConnections} (the guard working as configured)`
          : `below the guard's max_connections ${x.maxConnections}, so the guard tripped on another limit`;
    return { limited_by: 'guard_refusals', detail: `${x.refused} upgrades refused with HTTP 503; ${where}; server rejections by reason: ${reasons}` };
  }

  // 4009: the server closed connections that held no channel for WS_IDLE_TIMEOUT_MS. That is the
  // server's configuration, not its capacity: name it rather than charge it to a resource.
  const idle = x.closedByServer['4009'] ?? 0;
  if (idle > 0) {
    return { limited_by: 'idle_timeout', detail: `${idle} connections closed by the server with 4009 (idle: no channel held for WS_IDLE_TIMEOUT_MS); for idle runs (--channels none) start the server with WS_IDLE_TIMEOUT_MS=0` };
  }

  const cap = x.local ? Math.min(x.cpuLimit ?? x.cores, x.cores) : (x.cpuLimit ?? x.cores);
  const serverSat = (x.serverCpu !== null && x.serverCpu >= 0.85 * cap) || (x.shardCpuMax ?? 0) >= 0.9 || (x.frontCpu ?? 0) >= 0.9;
  const genSat = x.workerCpuMax >= 0.9 || x.lateReports > 0 || x.generatorLagMs >= 0.3 * x.sloP99Ms;
  const boxSat = x.local && (x.machineBusy ?? 0) >= 0.9;
  const figures =
    `server ${f(x.serverCpu)} cores (busiest shard ${f(x.shardCpuMax)}, front ${f(x.frontCpu)}, cap ${f(cap, 1)}), ` +
    `generator ${f(x.generatorCpu)} cores (busiest worker ${f(x.workerCpuMax)}, event-loop lag p99 ${f(x.generatorLagMs, 0)} ms, late reports ${x.lateReports})` +
    (x.local ? `, machine ${x.machineBusy === null ? 'n/a' : `${Math.round(x.machineBusy * 100)}%`} busy of ${x.cores} cores` : '');
  // Timeouts and resets are often a symptom of a saturated side: the figures go with them.
  const errs = Object.entries(x.connectErrors).sort((a, b) => b[1] - a[1]);
  if (errs.length) {
    return { limited_by: `connect_errors:${errs[0][0]}`, detail: `connect errors by errno: ${errs.map(([k, v]) => `${k}=${v}`).join(', ')}; meanwhile ${figures}` };
  }
  if (x.serverMemoryMb !== null && x.memoryLimitMb !== null && x.serverMemoryMb >= 0.9 * x.memoryLimitMb) {
    return { limited_by: 'memory', detail: `server RSS ${x.serverMemoryMb} MB of limit ${x.memoryLimitMb} MB` };
  }
  if (x.local && x.memAvailable !== null && x.memAvailable < 0.05) {
    return { limited_by: 'memory', detail: `machine memory available ${(x.memAvailable * 100).toFixed(1)}%` };
  }

  // A busy box that neither the server nor the generator accounts for: other tenants' load.
  const ours = (x.serverCpu ?? 0) + x.generatorCpu;
  if (boxSat && !serverSat && !genSat && ours < 0.6 * (x.machineBusy ?? 0) * x.cores) {
    return { limited_by: 'other_load', detail: `machine CPU saturated by processes outside the test: ${figures}` };
  }
  if (serverSat && !genSat && !boxSat) return { limited_by: 'server_cpu', detail: figures };
  if (genSat && !serverSat && !boxSat) return { limited_by: 'generator_cpu', detail: figures };
  if (serverSat || genSat || boxSat) {
    const server = (x.serverCpu ?? 0) >= x.generatorCpu;
    return { limited_by: server ? 'server_cpu' : 'generator_cpu', detail: `shared machine saturated, charged to the larger consumer: ${figures}` };
  }
  return { limited_by: 'unknown', detail: `the SLO broke with no resource saturated: ${figures}` };
}
