// Groups items into batches of at most `maxSize`. Adaptive: when nothing was flushed in the last
// `maxDelayMs` (arrivals are sparse) a pending item goes out at the end of the current turn, with
// whatever else arrives in that turn; while arrivals are dense it waits until `maxDelayMs` after the
// previous flush or until the batch is full, so the size and the delay stay upper bounds and
// batches still fill under load. Knows nothing of Kafka: the consumer pushes a fetched
// batch as one group and waits for the group to be handed on before it commits offsets, so another
// client library can drive it the same way.

export interface Batcher<T> {
  /** Opens a group: items whose fate is reported together (one fetched batch of one partition). */
  group(): BatchGroup<T>;
  /** Hands pending items to the sink now. */
  flush(): void;
  /** Items pushed but not yet flushed. */
  readonly pending: number;
  /** Flushes what is pending and stops the timer. Idempotent. */
  stop(): void;
}

export interface BatchGroup<T> {
  /** Adds one item; flushes synchronously when the batch becomes full. */
  push(item: T): void;
  /**
   * Resolves once every item of this group has been handed to the sink; rejects if the sink threw
   * for any of them (those items were not accepted: do not commit past them).
   */
  done(): Promise<void>;
}

interface GroupState {
  unflushed: number;
  error: unknown;
  failed: boolean;
  waiters: Array<{ resolve(): void; reject(e: unknown): void }>;
}

function settle(g: GroupState) {
  if (g.unflushed > 0) return;
  const waiters = g.waiters;
  g.waiters = [];
  for (const w of waiters) {
    if (g.failed) w.reject(g.error);
    else w.resolve();
  }
}

export function createMicroBatcher<T>(opts: { maxSize: number; maxDelayMs: number; sink: (batch: T[]) => void }): Batcher<T> {
  const { maxSize, maxDelayMs, sink } = opts;
  if (!(Number.isInteger(maxSize) && maxSize >= 1)) throw new RangeError(`maxSize must be an integer >= 1, got ${maxSize}`);
  if (!(maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${maxDelayMs}`);

  let items: T[] = [];
  let owners: GroupState[] = []; // owners[i] pushed items[i]
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;
  let lastFlushAt = -Infinity;

  const flush = () => {
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
    timer = immediate = null;
    if (items.length === 0) return;
    lastFlushAt = performance.now();
    const batch = items;
    const from = owners;
    items = [];
    owners = [];
    let failure: { error: unknown } | null = null;
    try {
      sink(batch);
    } catch (error) {
      failure = { error };
    }
    const touched = new Set<GroupState>();
    for (const g of from) {
      g.unflushed--;
      if (failure && !g.failed) {
        g.failed = true;
        g.error = failure.error;
      }
      touched.add(g);
    }
    for (const g of touched) settle(g);
  };

  const push = (g: GroupState, item: T) => {
    items.push(item);
    owners.push(g);
    g.unflushed++;
    if (items.length >= maxSize) flush();
    else if (!timer && !immediate) {
      const wait = lastFlushAt + maxDelayMs - performance.now();
      if (wait <= 0) immediate = setImmediate(flush);
      else timer = setTimeout(flush, Math.min(maxDelayMs, wait));
    }
  };

  return {
    group() {
      const g: GroupState = { unflushed: 0, error: undefined, failed: false, waiters: [] };
      return {
        push: (item: T) => push(g, item),
        done: () =>
          new Promise<void>((resolve, reject) => {
            g.waiters.push({ resolve, reject });
            settle(g);
          }),
      };
    },
    flush,
    get pending() {
      return items.length;
    },
    stop() {
      flush();
    },
  };
}
