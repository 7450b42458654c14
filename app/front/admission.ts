// Admission across shards that accept connections themselves (SO_REUSEPORT). Two jobs, one ledger:
// - capacity: connection credits. A shard admits a client only by spending a credit the front
//   issued; credits are issued only out of (max - held - outstanding), so the server never holds
//   more than WS_MAX_CONNECTIONS whatever shard the kernel picked.
// - balance: the kernel spreads connections by a hash, so per-shard counts drift apart like a
//   random walk. A shard the reports show above the mean by more than a tolerance gets a relay
//   budget (its excess): that many of its next new connections go, unread, to the least-loaded
//   shard. A new budget is computed only once the shard has reported on the previous one, so a
//   stale count never makes it relay twice for the same excess, and only while every shard's
//   count is fresh or the excess has lasted SETTLE_MS: a shard that was descheduled for a few
//   milliseconds has its connections waiting in its kernel queue, uncounted, and relaying to it
//   then only sends them back once it catches up (measured: a third of a ramp's relays).
// Reports (at most one per shard per 5 ms) and grants are small pipelined IPC messages, coalesced,
// never one per connection and never a round trip on the connection's path.

/** What a shard reports each tick (cumulative counters, so a lost or late report loses nothing). */
export interface ShardLoad {
  readonly held: number; // admitted connections still open (handshaking or established)
  readonly open: number; // held plus accepted connections not yet upgraded (what balance counts)
  readonly consumed: number; // credits spent since the shard started (monotonic)
  readonly issued: number; // the grant the shard applies now (it may have been lowered since)
  readonly gen: number; // the last grant generation the shard applied
  readonly reserved: number; // credits set aside for accepted connections still sending their request
  readonly saturated: boolean; // refuses new upgrades now (its loop is behind, or at its probation ceiling)
}

/** What the front tells one shard each tick. */
export interface Grant {
  /** Credits this shard may have spent in total: it may admit while consumed < issued. */
  readonly issued: number;
  /** New connections to pass on (this shard is above the mean by more than the tolerance). */
  readonly relay: number;
  /** Grant generation: a relay budget is computed again only once the shard reported on the last. */
  readonly gen: number;
  readonly canRelay: boolean; // some other live shard has credits
  /** The server holds its maximum: a shard out of credits refuses at once instead of relaying. */
  readonly full: boolean;
  /** More than one shard is live (a relay can go somewhere). */
  readonly multi: boolean;
}

interface Slot {
  live: boolean;
  held: number;
  open: number;
  reserved: number;
  consumed: number;
  /** The current grant. Lowering it (revoking credits) is safe at once; raising it spends `free`. */
  issued: number;
  /** The grant the shard last said it applies. */
  applied: number;
  /** Grants sent that the shard has not confirmed yet (generation, issued): it may apply any of them. */
  unconfirmed: Array<{ gen: number; issued: number }>;
  /** Relays sent to this shard that it has not reported yet: counted as held meanwhile. */
  inbound: number;
  gen: number;
  appliedGen: number;
  relay: number;
  /** When the front last read this shard's report (the ledger's clock). */
  reportedAt: number;
  /** Since when this shard has been over the tolerance without a break, or null. */
  overSince: number | null;
  /** It refuses new upgrades as saturated: no relay goes there, and balance leaves it out. */
  saturated: boolean;
}

const MAX_INBOUND = 32;
/** A report older than this may miss a burst the shard has not accepted yet (reports go every 5 ms). */
const FRESH_MS = 12;
/** An excess that lasted this long is the kernel's hash, not a shard's scheduling: correct it anyway. */
const SETTLE_MS = 50;
/** The mean per shard from which balance waits for trusted counts (the spread bound's range). */
const GATE_FROM = 1000;

const empty = (live: boolean): Slot => ({ live, held: 0, open: 0, reserved: 0, consumed: 0, issued: 0, applied: 0, unconfirmed: [], inbound: 0, gen: 0, appliedGen: 0, relay: 0, reportedAt: 0, overSince: null, saturated: false });

/** The balance tolerance: how far above the mean a shard may drift before it relays. */
export function tolerance(mean: number): number {
  return Math.max(2, Math.floor(mean * 0.01));
}

export class AdmissionLedger {
  private readonly slots: Slot[];

  constructor(
    shards: number,
    private readonly maxConnections: number,
    /** Milliseconds, monotonic; injectable for tests. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.slots = Array.from({ length: shards }, () => empty(false));
  }

  /** A shard (re)started: its old credits and connections are void. */
  up(id: number): void {
    this.slots[id] = empty(true);
  }

  down(id: number): void {
    this.slots[id] = empty(false);
  }

  report(id: number, load: ShardLoad): void {
    const s = this.slots[id];
    if (!s.live) return;
    s.held = load.held;
    s.open = load.open;
    s.reserved = load.reserved;
    s.consumed = Math.max(s.consumed, load.consumed);
    s.applied = load.issued;
    s.appliedGen = load.gen;
    // Grants up to the one it applies can no longer be applied: forget them.
    while (s.unconfirmed.length && s.unconfirmed[0].gen <= load.gen) s.unconfirmed.shift();
    s.inbound = 0;
    s.reportedAt = this.now();
    s.saturated = load.saturated;
  }

  get held(): number {
    let n = 0;
    for (const s of this.slots) n += s.held + s.inbound;
    return n;
  }

  /** Credits a shard may still spend: any grant in flight may be the one it applies. */
  private committed(s: Slot): number {
    let most = Math.max(s.issued, s.applied);
    for (const u of s.unconfirmed) most = Math.max(most, u.issued);
    return Math.max(0, most - s.consumed);
  }

  private setIssued(s: Slot, issued: number): void {
    if (issued === s.issued) return;
    s.issued = issued;
    s.gen++;
    s.unconfirmed.push({ gen: s.gen, issued });
    // Bounded: a shard that stops confirming is declared hung long before this matters; keep the
    // highest of what is dropped so the bound stays safe.
    if (s.unconfirmed.length > 64) {
      const [a, b] = s.unconfirmed.splice(0, 2);
      s.unconfirmed.unshift({ gen: b.gen, issued: Math.max(a.issued, b.issued) });
    }
  }

  private outstanding(s: Slot): number {
    return Math.max(0, s.issued - s.consumed);
  }

  /**
   * Moves every live shard's grant toward an even share of the capacity not held: lowers first
   * (safe at once), then raises out of what is provably free, emptiest shards first.
   */
  grants(): Grant[] {
    const live = this.slots.filter((s) => s.live);
    if (live.length) {
      let heldAll = 0;
      for (const s of this.slots) heldAll += s.held + s.inbound;
      const budget = Math.max(0, this.maxConnections - heldAll);
      const order = [...live].sort((a, b) => a.held + a.inbound - (b.held + b.inbound));
      // An even share each, the remainder to the emptiest, so every free slot is grantable.
      const share = (rank: number) => Math.floor(budget / live.length) + (rank < budget % live.length ? 1 : 0);
      const slack = Math.max(1, Math.ceil((budget / live.length) * 0.05));
      order.forEach((s, rank) => {
        // Never below what the shard has set aside for connections already accepted, nor take
        // back the credits that relays on their way to it will spend (they are not in `budget`).
        const target = s.consumed + s.inbound + Math.max(share(rank), s.reserved);
        if (s.issued > target + slack || (share(rank) === 0 && s.issued > target)) this.setIssued(s, target);
      });
      let free = this.maxConnections;
      for (const s of this.slots) free -= s.held + s.inbound + (s.live ? this.committed(s) : 0);
      order.forEach((s, rank) => {
        const want = s.consumed + s.inbound + share(rank) - s.issued;
        if (want <= 0 || (want < slack && this.outstanding(s) > 0)) return;
        const n = Math.min(want, Math.max(0, free));
        this.setIssued(s, s.issued + n);
        free -= n;
      });
    }
    const full = this.held >= this.maxConnections;
    // Balance is among the shards that admit: one that refuses as saturated holds fewer, and
    // relaying to it would only turn a client the others can serve into a refusal.
    const admitting = live.some((s) => !s.saturated) ? live.filter((s) => !s.saturated) : live;
    const mean = admitting.length ? admitting.reduce((a, s) => a + s.open + s.inbound, 0) / admitting.length : 0;
    const tol = tolerance(mean);
    const now = this.now();
    const fresh = live.every((o) => now - o.reportedAt <= FRESH_MS);
    return this.slots.map((s) => {
      const over = s.open + s.inbound - mean;
      if (!s.live || live.length < 2 || over <= tol) s.overSince = null;
      else s.overSince ??= now;
      // Within the tolerance a budget goes back to 0 at once; an excess waits for trusted counts.
      // Below GATE_FROM per shard reports are sparse (rarely all fresh) and an excess is a few
      // connections: correct it at once, as the relays there cost little.
      const trusted = s.overSince === null || fresh || mean < GATE_FROM || now - s.overSince >= SETTLE_MS;
      if (s.live && live.length > 1 && s.appliedGen === s.gen && trusted) {
        // Half the excess per round: a starved shard's count lags (its kernel backlog is not
        // counted), so correcting all of it at once overshoots into it.
        const relay = over > tol ? Math.ceil((over - tol / 2) / 2) : 0;
        if (relay !== s.relay) {
          s.relay = relay;
          s.gen++;
          s.unconfirmed.push({ gen: s.gen, issued: s.issued });
        }
      }
      const others = live.some((o) => o !== s && this.outstanding(o) - o.reserved > o.inbound);
      return { issued: s.issued, relay: s.relay, gen: s.gen, canRelay: others, full, multi: live.length > 1 };
    });
  }
  /** Where a relayed connection goes: the live shard with the fewest, other than `from`, with a credit. */
  relayTarget(from: number): number | null {
    // At most a few relays in flight per shard until it reports again (a starved shard is slow to
    // report, so it is not flooded with connections it cannot yet take); when every shard with a
    // credit is at that cap, the credit decides: sending the client back to a shard with none
    // would refuse it (max_connections) while the server has room (seen in 100k ramps).
    const best = this.pick(from, MAX_INBOUND) ?? this.pick(from, Infinity);
    if (best === null) return null;
    this.slots[best].inbound++;
    return best;
  }

  private pick(from: number, maxInbound: number): number | null {
    let best = -1;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (i === from || !s.live || s.saturated || this.outstanding(s) - s.reserved <= s.inbound || s.inbound >= maxInbound) continue;
      if (best < 0 || s.open + s.inbound < this.slots[best].open + this.slots[best].inbound) best = i;
    }
    return best < 0 ? null : best;
  }
}
