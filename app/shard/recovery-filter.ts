// What a client holds back while a recovery is in progress (subscribe with since/last): created
// for the first such request and dropped once nothing is held, so the many clients that never
// recover pay for none of it.
import type { BusMessage } from '../common/ipc.js';
import type { Position } from '../bus/recovery-window.js';

export class RecoveryFilter {
  /** Channels with a recovery in flight (count of requests): nothing of them goes out meanwhile. */
  readonly deaf = new Map<string, number>();
  /** Channels whose replay has arrived but is not yet written: live messages wait in `held`. */
  readonly holding = new Set<string>();
  held: BusMessage[] = [];
  heldBytes = 0;
  /** Per recovered channel, the position at or before which live messages are dropped (once). */
  readonly after = new Map<string, Position>();

  /** Some live message must still go through the filter. */
  get active(): boolean {
    return this.deaf.size > 0 || this.holding.size > 0 || this.after.size > 0;
  }

  /** Nothing filtered and nothing held: the client may drop it. */
  get empty(): boolean {
    return !this.active && this.held.length === 0;
  }
}
