// The shard's side of admission (see front/admission.ts): spends the credits the front grants,
// decides which new connections to relay for balance, and reports its load once per tick.
import type { FromShard, ToShard } from '../common/ipc.js';

type Grant = Extract<ToShard, { t: 'grant' }>;
/** Why a connection was passed on: over the balance tolerance, out of credits, out of descriptors. */
export type RelayCause = 'balance' | 'no_credit' | 'fd_limit';
const REPORT_MS = 5;

export class AdmissionGate {
  private issued = 0;
  private consumed = 0;
  private relayBudget = 0;
  private gen = 0;
  private canRelay = false;
  private full = false;
  private multi = false;
  private refuse: string | null = null;
  draining = false;
  private sat = false;
  private cap = Infinity;
  /** Admitted connections still open (handshaking or established). */
  held = 0;
  /** Credits set aside for accepted connections still sending their request (see reserve()). */
  private reserved = 0;
  private reportTimer: NodeJS.Timeout | null = null;
  private immediatePending = false;
  private lastReport = '';

  /** Connections this shard accepted that are not yet admitted or closed (the HTTP edge's). */
  private pending: () => number = () => 0;

  constructor(
    private readonly send: (m: FromShard) => void,
    /** Sockets this process may still open before it runs out of descriptors. */
    private readonly fdRoom: () => number,
  ) {}

  /** This shard's event loop is behind (see Shard.sample): refuse new upgrades rather than queue them. */
  get saturated(): boolean {
    return this.sat;
  }

  set saturated(on: boolean) {
    if (on === this.sat) return;
    this.sat = on;
    this.scheduleReport(true); // the front stops relaying connections here that it would refuse
  }

  /** Admitted connections at which upgrades are refused as `saturated` (see Probation.ceiling). */
  get ceiling(): number {
    return this.cap;
  }

  set ceiling(n: number) {
    if (n === this.cap) return;
    this.cap = n;
    this.scheduleReport(true);
  }

  /** Refusing new upgrades as `saturated`: the loop is behind, or the probation ceiling is reached. */
  private get refusesAsSaturated(): boolean {
    return this.sat || this.held >= this.cap;
  }

  /** Balance counts what a shard has accepted, not what it has finished upgrading. */
  countPending(fn: () => number): void {
    this.pending = fn;
  }

  /** A connection was accepted here (served or relayed in): its count goes into the next report. */
  touched(): void {
    this.scheduleReport();
  }

  onGrant(g: Grant): void {
    this.issued = g.issued; // may be lower: the front moved credits to another shard
    if (g.gen !== this.gen) {
      this.gen = g.gen;
      this.relayBudget = g.relay;
    }
    this.canRelay = g.canRelay;
    this.full = g.full;
    this.multi = g.multi;
    this.refuse = g.refuse;
    this.draining = this.draining || g.draining;
    this.scheduleReport(); // confirms the grant it now applies (see AdmissionLedger.committed)
  }

  /** Credits not spent and not set aside. */
  get credits(): number {
    return this.issued - this.consumed - this.reserved;
  }

  /**
   * Sets a credit aside for a connection this shard just accepted, so that its upgrade, when the
   * request arrives, cannot lose the last credits to connections accepted after it: a burst near
   * the shard's share relays the excess instead of refusing it at the upgrade.
   */
  reserve(): boolean {
    if (this.credits <= 0) return false;
    this.reserved++;
    this.scheduleReport();
    return true;
  }

  /** The connection closed, or was a plain HTTP request: its credit goes back. */
  unreserve(): void {
    this.reserved = Math.max(0, this.reserved - 1);
    this.scheduleReport();
  }

  /** Why a new, unread connection goes to another shard (spending the budget), or null to serve it here. */
  relayCause(): RelayCause | null {
    if (this.draining) return null;
    if (this.canRelay && this.relayBudget > 0) {
      this.relayBudget--;
      return 'balance';
    }
    // Out of credits while the server is below its maximum: another shard has them, or will once
    // the front tops up (it does before it picks a target), so pass the connection on rather
    // than refuse a client the server has room for. At the maximum, refuse here at once.
    if (this.credits <= 0) return this.canRelay || (this.multi && !this.full) ? 'no_credit' : null;
    return this.canRelay && this.fdRoom() <= 0 ? 'fd_limit' : null;
  }

  /** Why a new upgrade may not be admitted now, or null. Does not spend anything. */
  refusal(reserved = false): string | null {
    if (this.draining) return 'draining';
    if (this.refuse) return this.refuse;
    if (this.refusesAsSaturated) return 'saturated';
    // A reservation is only as good as the grant behind it: the front may have lowered the grant
    // since (moving credits to another shard), so even a reserved upgrade needs an unspent credit.
    if (reserved ? this.issued - this.consumed <= 0 : this.credits <= 0) return 'max_connections';
    if (this.fdRoom() <= 0) return 'fd_limit';
    return null;
  }

  /** Spends a credit for an upgrade about to be handed to `ws`; false when none is left. */
  admit(reserved = false): boolean {
    if (this.refusal(reserved)) return false;
    if (reserved) this.reserved = Math.max(0, this.reserved - 1);
    this.consumed++;
    this.held++;
    this.scheduleReport();
    return true;
  }

  release(): void {
    this.held = Math.max(0, this.held - 1);
    this.scheduleReport();
  }


  /**
   * At most one report per REPORT_MS: the counts behind the balance and the credits need to be
   * fresh to a few milliseconds, not to each connection, and each report is a pipe write that
   * wakes the front (measured as the largest single cost per connection when sent every turn).
   */
  private scheduleReport(urgent = false): void {
    // Out of credits (or about to be), the front must hear of a freed slot at once to grant it.
    if (urgent || this.credits <= 1) {
      if (this.reportTimer) clearTimeout(this.reportTimer);
      this.reportTimer = null;
      if (!this.immediatePending) {
        this.immediatePending = true;
        setImmediate(() => {
          this.immediatePending = false;
          this.report();
        });
      }
      return;
    }
    this.reportTimer ??= setTimeout(() => {
      this.reportTimer = null;
      this.report();
    }, REPORT_MS);
  }

  /**
   * Sends the pending report now. Before any stats answer: /health counts from the stats, and the
   * front grants a freed slot when it reads this report, so a /health showing room is never read
   * before the grant that makes the room usable has gone out (IPC keeps one shard's order).
   */
  flush(): void {
    this.report();
  }

  private report(): void {
    const open = this.held + this.pending();
    const saturated = this.refusesAsSaturated;
    const key = `${this.held}/${open}/${this.reserved}/${this.consumed}/${this.issued}/${this.gen}/${saturated}`;
    if (key === this.lastReport) return;
    this.lastReport = key;
    this.send({ t: 'load', held: this.held, open, reserved: this.reserved, consumed: this.consumed, issued: this.issued, gen: this.gen, saturated });
  }
}
