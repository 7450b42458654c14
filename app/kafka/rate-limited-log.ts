// Logs the first occurrence of each key per interval and counts what it held back, so a flood of
// bad records or a broker outage cannot flood the log.
import type { Logger } from 'pino';
import { logLevel, type logCreator } from 'kafkajs';

export interface RateLimitedLog {
  /** Logs unless `key` was logged less than the interval ago; the next line reports how many were held back. */
  log(level: 'debug' | 'info' | 'warn' | 'error', key: string, fields: Record<string, unknown>, msg: string): void;
}

export function createRateLimitedLog(logger: Logger, intervalMs = 5_000, now: () => number = Date.now): RateLimitedLog {
  const seen = new Map<string, { at: number; suppressed: number }>();
  return {
    log(level, key, fields, msg) {
      const t = now();
      const s = seen.get(key);
      if (s && t - s.at < intervalMs) {
        s.suppressed++;
        return;
      }
      const suppressed = s?.suppressed ?? 0;
      seen.set(key, { at: t, suppressed: 0 });
      if (seen.size > 1_000) seen.clear(); // keys are bounded in practice; this bounds them for sure
      logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, msg);
    },
  };
}

/**
 * kafkajs -> pino. kafkajs reports every failed connection attempt at ERROR while it retries by
 * itself; the pool reports the broker state, so these go out as rate-limited warnings.
 */
export function kafkajsLogCreator(logger: Logger): logCreator {
  const limited = createRateLimitedLog(logger.child({ lib: 'kafkajs' }));
  return () =>
    ({ namespace, level, log }) => {
      const { message, timestamp: _ts, stack: _stack, ...extra } = log;
      const fields = { ns: namespace, ...extra };
      if (level === logLevel.ERROR || level === logLevel.WARN) limited.log('warn', `${namespace}:${message}`, fields, message);
      else if (level === logLevel.INFO) logger.debug(fields, message);
    };
}
