// Reading the server's /health during a run: the Kafka block and the shards' delivery counters.
export interface KafkaHealth {
  connected: boolean;
  group: string;
  lag: number;
  last_message_age_ms: number | null;
  records_total: number;
  rejected_total: number;
}

export interface Health {
  kafka?: KafkaHealth;
  bus?: { batches: number; messages: number };
  shards: Array<{ id: number; up?: boolean; connections: number; deliveries?: number; slow_consumers?: number; bus_messages?: number; saturated?: boolean }>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function getHealth(url: string): Promise<Health> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as Health;
  if (!body || !Array.isArray(body.shards)) throw new Error(`${url}: not a /health body: ${JSON.stringify(body).slice(0, 200)}`);
  return body;
}

/** Polls until `ok(health)` or the deadline; returns the last health. */
export async function waitHealth(url: string, ok: (h: Health) => boolean, what: string, timeoutMs: number, everyMs = 200): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  let last: Health | null = null;
  let err = '';
  while (Date.now() < deadline) {
    try {
      last = await getHealth(url);
      if (ok(last)) return last;
    } catch (e) {
      err = (e as Error).message;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last health ${JSON.stringify(last?.kafka ?? null)} ${err}`);
}

export interface CountSample {
  at: number;
  records: number;
  lastMessageAgeMs: number | null;
}

/**
 * Polls `kafka.records_total` every `everyMs` until it reaches `total` (or the deadline) and
 * returns the samples: the consume rate is read from them, not from the server's own clock.
 */
export async function pollRecords(url: string, total: number, timeoutMs: number, everyMs = 200): Promise<CountSample[]> {
  const samples: CountSample[] = [];
  const deadline = Date.now() + timeoutMs;
  let next = Date.now();
  while (Date.now() < deadline) {
    try {
      const h = await getHealth(url);
      const k = h.kafka;
      if (!k) throw new Error('/health has no kafka block: is KAFKA_BROKERS set for the server?');
      samples.push({ at: Date.now(), records: k.records_total, lastMessageAgeMs: k.last_message_age_ms });
      if (k.records_total >= total) return samples;
    } catch (e) {
      if ((e as Error).message.includes('no kafka block')) throw e;
    }
    next += everyMs;
    await sleep(Math.max(0, next - Date.now()));
  }
  const got = samples[samples.length - 1]?.records ?? 0;
  throw new Error(`server consumed ${got} of ${total} records within ${timeoutMs} ms`);
}
