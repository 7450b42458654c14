// A typed listener registry that works the same in browsers and Node (no EventEmitter, no DOM).
// A throwing listener must not break the client's own bookkeeping: its error is reported once as
// an `error` event and never escapes into the socket handlers.

export class Emitter<E> {
  private readonly map = new Map<keyof E, Set<(ev: never) => void>>();

  on<K extends keyof E>(type: K, fn: (ev: E[K]) => void): () => void {
    let set = this.map.get(type);
    if (!set) this.map.set(type, (set = new Set()));
    set.add(fn as (ev: never) => void);
    return () => this.off(type, fn);
  }

  off<K extends keyof E>(type: K, fn: (ev: E[K]) => void): void {
    this.map.get(type)?.delete(fn as (ev: never) => void);
  }

  /** Calls every listener; returns the first error a listener threw (the caller reports it). */
  emit<K extends keyof E>(type: K, ev: E[K]): unknown {
    const set = this.map.get(type);
    if (!set) return undefined;
    let failed: unknown;
    for (const fn of [...set]) {
      try {
        (fn as (ev: E[K]) => void)(ev);
      } catch (err) {
        failed ??= err ?? new Error('listener threw');
      }
    }
    return failed;
  }
}
