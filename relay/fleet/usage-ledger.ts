/**
 * Exact usage per room member, for the fleet's usage reports (shared/fleet/protocol.ts, `UsageReport`).
 *
 * For each member (`<room>/<peer-id>`, from a room-scoped TURN username) the ledger keeps the
 * totals of its ENDED allocations (added once, when each ends, in the same tick it leaves the
 * allocation table) and the set of its LIVE allocations, whose counters it reads only when a report
 * is built. Nothing here runs per relayed packet: the data path keeps bumping the counters each
 * allocation already had. Figures are cumulative since this process started (`boot`) and never go
 * down, so a lost, repeated or overtaken report changes nothing once a later one is stored.
 *
 * What goes in a report: the members whose figures now differ from what the fleet acknowledged for
 * them, never-acknowledged ones first, then those sent longest ago, at most
 * FLEET_LIMITS.maxUsageEntries (the rest go in the next reports). A `usage-ack {boot, seq}` marks
 * exactly what report `seq` carried as stored (an earlier report's figures are not assumed stored:
 * a report lost on a connection that died is simply sent again).
 *
 * A member whose allocations have all ended and whose final totals are acknowledged is SETTLED: it
 * is no longer reported. Its totals are kept (a few numbers) so that if the same peer allocates
 * again its figures carry on from them instead of starting again at 0, which the fleet would store
 * as a drop. Idle members (no live allocation) are bounded by `maxIdleMembers`: past it the
 * oldest settled ones are forgotten first (nothing is lost unless that peer returns), then the
 * oldest unacknowledged ones are dropped (their last figures never reach the fleet: counted in
 * `dropped`, and reported through `onDropped` at most once per `dropWarningIntervalMs`). A live
 * member is never dropped.
 *
 * Pure logic: the clock is injected; no I/O.
 */
import { FLEET_LIMITS, type UsageAckMessage, type UsageEntry, type UsageReport } from "../../shared/fleet/protocol.js";
import { RecencyMap } from "../collections/recency-map.js";

export const USAGE_LEDGER_LIMITS = {
  /**
   * Members with no live allocation the ledger keeps (settled and unacknowledged together): a relay
   * cut off from the fleet for hours under heavy churn holds at most this many (a few hundred bytes each, ~20 MB at the bound).
   */
  maxIdleMembers: 50_000,
  /** Reports whose acknowledgement is still awaited; an older one's ack is ignored (its figures are sent again). */
  maxReportsInFlight: 32,
  /** `onDropped` is called at most this often. */
  dropWarningIntervalMs: 60_000,
} as const;

/** What the ledger reads from an allocation: its member, its payload byte counters and when it started. */
export interface MeteredAllocation {
  readonly owner: { readonly room?: string | undefined; readonly peerId?: string | undefined };
  readonly traffic: { readonly bytesToPeers: number; readonly bytesToClient: number };
  /** Milliseconds on the ledger's clock (the relay uses Date.now for both). */
  readonly createdAt: number;
}

export interface UsageFigures {
  bytesToPeers: number;
  bytesToClient: number;
  allocationMs: number;
}

export interface UsageLedgerOptions {
  /** This process's boot id (BOOT_ID_PATTERN). */
  boot: string;
  /** Milliseconds; the same clock as MeteredAllocation.createdAt. */
  now?: () => number;
  maxIdleMembers?: number;
  maxReportsInFlight?: number;
  maxEntries?: number;
  dropWarningIntervalMs?: number;
  /** Unacknowledged members were dropped for the bound: `count` since the previous call, `total` since start. */
  onDropped?: (count: number, total: number) => void;
}

export interface UsageLedgerCounts {
  /** Members with at least one live allocation. */
  live: number;
  /** Idle members whose latest figures the fleet has not acknowledged yet. */
  unacked: number;
  /** Idle members whose final figures are acknowledged: no longer reported. */
  settled: number;
  /** Idle members dropped for the bound before their final figures were acknowledged (usage lost). */
  dropped: number;
  /** Settled members forgotten for the bound (a peer that returns after this counts from 0 again). */
  forgotten: number;
}

interface Member {
  readonly room: string;
  readonly peerId: string;
  /** Totals of the member's ended allocations. */
  readonly ended: UsageFigures;
  readonly live: Set<MeteredAllocation>;
  /** The figures the fleet acknowledged last, and in which report; null before any. */
  acked: UsageFigures | null;
  ackedSeq: number;
  /** The report that carried the member last (0: never sent), and the figures it carried. */
  sentSeq: number;
  sent: UsageFigures | null;
}

/** The ledger's key for a member: '/' is in neither alphabet, so the key is unambiguous. */
function memberKey(room: string, peerId: string): string {
  return `${room}/${peerId}`;
}

function sameFigures(a: UsageFigures | null, b: UsageFigures): boolean {
  return a !== null && a.bytesToPeers === b.bytesToPeers && a.bytesToClient === b.bytesToClient && a.allocationMs === b.allocationMs;
}

/** Random boot ids: base64url of 12 random bytes (16 characters), matching BOOT_ID_PATTERN. */
export function newBootId(randomBytes: (size: number) => Uint8Array): string {
  return Buffer.from(randomBytes(12)).toString("base64url");
}

export class UsageLedger {
  readonly boot: string;
  private readonly now: () => number;
  private readonly maxIdleMembers: number;
  private readonly maxReportsInFlight: number;
  private readonly maxEntries: number;
  private readonly dropWarningIntervalMs: number;
  private readonly onDropped: ((count: number, total: number) => void) | undefined;

  private readonly members = new Map<string, Member>();
  /** Members with a live allocation. */
  private readonly live = new Map<string, Member>();
  /**
   * Idle members by when they went idle (oldest first), split by whether their final figures are
   * acknowledged. RecencyMaps: the oldest goes out in constant time when the bound is met.
   */
  private readonly idleUnacked = new RecencyMap<string, Member>();
  private readonly idleSettled = new RecencyMap<string, Member>();
  /** Report seq → what it carried, for the acks to come. */
  private readonly inFlight = new Map<number, { key: string; figures: UsageFigures }[]>();
  private seq = 0;
  private dropped = 0;
  private forgotten = 0;
  private droppedUnwarned = 0;
  private lastWarnedAt = -Infinity;

  constructor(options: UsageLedgerOptions) {
    this.boot = options.boot;
    this.now = options.now ?? Date.now;
    this.maxIdleMembers = options.maxIdleMembers ?? USAGE_LEDGER_LIMITS.maxIdleMembers;
    this.maxReportsInFlight = options.maxReportsInFlight ?? USAGE_LEDGER_LIMITS.maxReportsInFlight;
    this.maxEntries = options.maxEntries ?? FLEET_LIMITS.maxUsageEntries;
    this.dropWarningIntervalMs = options.dropWarningIntervalMs ?? USAGE_LEDGER_LIMITS.dropWarningIntervalMs;
    this.onDropped = options.onDropped;
  }

  counts(): UsageLedgerCounts {
    return { live: this.live.size, unacked: this.idleUnacked.size, settled: this.idleSettled.size, dropped: this.dropped, forgotten: this.forgotten };
  }

  /** True while some member's figures are not acknowledged: a live member, or an idle one not settled. */
  hasUnacked(): boolean {
    return this.live.size > 0 || this.idleUnacked.size > 0;
  }

  /** An allocation was made; a plain user's (no room or peer id) is not counted. */
  opened(allocation: MeteredAllocation): void {
    const { room, peerId } = allocation.owner;
    if (room === undefined || peerId === undefined) return;
    const key = memberKey(room, peerId);
    let member = this.members.get(key);
    if (member === undefined) {
      member = { room, peerId, ended: { bytesToPeers: 0, bytesToClient: 0, allocationMs: 0 }, live: new Set(), acked: null, ackedSeq: 0, sentSeq: 0, sent: null };
      this.members.set(key, member);
    }
    if (member.live.has(allocation)) return;
    if (member.live.size === 0) {
      this.idleUnacked.delete(key);
      this.idleSettled.delete(key);
      this.live.set(key, member);
    }
    member.live.add(allocation);
  }

  /**
   * An allocation ended at `endedAt` (the same moment the relay logs): its final counters and
   * lifetime join its member's totals. Unknown allocations (a plain user's, or one ended twice) are ignored.
   */
  ended(allocation: MeteredAllocation, endedAt: number = this.now()): void {
    const { room, peerId } = allocation.owner;
    if (room === undefined || peerId === undefined) return;
    const key = memberKey(room, peerId);
    const member = this.members.get(key);
    if (member === undefined || !member.live.delete(allocation)) return;
    member.ended.bytesToPeers += allocation.traffic.bytesToPeers;
    member.ended.bytesToClient += allocation.traffic.bytesToClient;
    member.ended.allocationMs += Math.max(0, endedAt - allocation.createdAt);
    if (member.live.size > 0) return;
    this.live.delete(key);
    this.becameIdle(key, member);
  }

  /** The member's figures now: ended totals plus its live allocations up to now, never below what was sent. */
  private figures(member: Member, now: number): UsageFigures {
    const figures = { ...member.ended };
    for (const allocation of member.live) {
      figures.bytesToPeers += allocation.traffic.bytesToPeers;
      figures.bytesToClient += allocation.traffic.bytesToClient;
      figures.allocationMs += Math.max(0, now - allocation.createdAt);
    }
    // A wall clock stepped back must not make a live member's lifetime go down.
    if (member.sent !== null && figures.allocationMs < member.sent.allocationMs) figures.allocationMs = member.sent.allocationMs;
    return figures;
  }

  private becameIdle(key: string, member: Member): void {
    if (sameFigures(member.acked, this.figures(member, this.now()))) this.idleSettled.set(key, member);
    else this.idleUnacked.set(key, member);
    this.bound();
  }

  /** Keeps idle members within maxIdleMembers: the oldest settled go first, then the oldest unacknowledged. */
  private bound(): void {
    let droppedNow = 0;
    while (this.idleSettled.size + this.idleUnacked.size > this.maxIdleMembers) {
      const settled = this.idleSettled.shift();
      if (settled !== undefined) {
        this.members.delete(settled[0]);
        this.forgotten++;
        continue;
      }
      const unacked = this.idleUnacked.shift();
      if (unacked === undefined) break;
      this.members.delete(unacked[0]);
      this.dropped++;
      droppedNow++;
    }
    if (droppedNow === 0) return;
    this.droppedUnwarned += droppedNow;
    const now = this.now();
    if (this.onDropped !== undefined && now - this.lastWarnedAt >= this.dropWarningIntervalMs) {
      this.lastWarnedAt = now;
      const count = this.droppedUnwarned;
      this.droppedUnwarned = 0;
      this.onDropped(count, this.dropped);
    }
  }

  /**
   * The next report: seq one more than the last, with the members whose figures differ from their
   * acknowledged ones (never acknowledged first, then sent longest ago), at most maxEntries.
   * Candidates are the live members and the idle unacknowledged ones (a settled member's figures
   * are its acknowledged ones); the choice is linear in their number (no sort of them all), so a
   * ledger at its bound costs a few milliseconds a heartbeat.
   */
  report(): UsageReport {
    const now = this.now();
    const seq = ++this.seq;
    const entries: UsageEntry[] = [];
    const carried: { key: string; figures: UsageFigures }[] = [];
    for (const [key, member] of this.pick()) {
      const figures = this.figures(member, now);
      if (sameFigures(member.acked, figures)) continue;
      member.sentSeq = seq;
      member.sent = figures;
      entries.push({ room: member.room, peerId: member.peerId, ...figures });
      carried.push({ key, figures });
    }
    if (carried.length > 0) {
      this.inFlight.set(seq, carried);
      for (const old of this.inFlight.keys()) {
        if (this.inFlight.size <= this.maxReportsInFlight) break;
        this.inFlight.delete(old);
      }
    }
    return { boot: this.boot, seq, entries };
  }

  /**
   * The candidates that go first, at most maxEntries: never acknowledged ones before the others,
   * each group by the report that carried it last (lower first). Linear: a count per report
   * number finds where the cut falls, then one pass takes what falls before it.
   */
  private pick(): [string, Member][] {
    const neverAcked: [string, Member][] = [];
    const acked: [string, Member][] = [];
    for (const group of [this.live, this.idleUnacked]) {
      for (const entry of group) (entry[1].acked === null ? neverAcked : acked).push(entry);
    }
    if (neverAcked.length >= this.maxEntries) return oldestSent(neverAcked, this.maxEntries);
    return neverAcked.concat(oldestSent(acked, this.maxEntries - neverAcked.length));
  }

  /**
   * The fleet stored report `ack.seq`: what it carried becomes each member's acknowledged figures
   * (unless a later report's already are). Idle members whose final figures are now acknowledged
   * settle. Returns false for another boot's ack or a report not awaited (unknown, or too old).
   */
  acknowledge(ack: Pick<UsageAckMessage, "boot" | "seq">): boolean {
    if (ack.boot !== this.boot) return false;
    const carried = this.inFlight.get(ack.seq);
    if (carried === undefined) return false;
    // Earlier reports stay awaited: the fleet may store (and acknowledge) reports out of order.
    this.inFlight.delete(ack.seq);
    const now = this.now();
    for (const { key, figures } of carried) {
      const member = this.members.get(key);
      if (member === undefined || member.ackedSeq >= ack.seq) continue;
      member.acked = figures;
      member.ackedSeq = ack.seq;
      if (member.live.size > 0) continue;
      // Idle: settled exactly when its final figures are the acknowledged ones (keeping its place in the order otherwise).
      const settled = sameFigures(figures, this.figures(member, now));
      if (settled && this.idleUnacked.delete(key)) this.idleSettled.set(key, member);
      else if (!settled && this.idleSettled.delete(key)) this.idleUnacked.set(key, member);
    }
    return true;
  }
}

/** The `max` members carried longest ago (sentSeq lowest; 0: never sent), in their given order otherwise. */
function oldestSent(members: [string, Member][], max: number): [string, Member][] {
  if (members.length <= max) return members;
  const perSeq = new Map<number, number>();
  for (const [, member] of members) perSeq.set(member.sentSeq, (perSeq.get(member.sentSeq) ?? 0) + 1);
  // The newest report number taken, and how many carried last by it still fit.
  let cut = 0;
  let roomAtCut = 0;
  let taken = 0;
  for (const seq of [...perSeq.keys()].sort((a, b) => a - b)) {
    cut = seq;
    roomAtCut = max - taken;
    taken += perSeq.get(seq)!;
    if (taken >= max) break;
  }
  const picked: [string, Member][] = [];
  for (const entry of members) {
    const seq = entry[1].sentSeq;
    if (seq < cut) picked.push(entry);
    else if (seq === cut && roomAtCut > 0) {
      picked.push(entry);
      roomAtCut--;
    }
  }
  return picked;
}
