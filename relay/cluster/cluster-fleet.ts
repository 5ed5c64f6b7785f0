/**
 * The fleet's view of a relay with worker processes (relay/fleet/relay-fleet.ts's FleetRelay), kept
 * by the primary, which holds the one fleet channel. The workers tell it what the fleet reads
 * (relay/cluster/worker.ts, messages `report`, `member-opened`, `member-ended`):
 *
 *   - every REPORT_INTERVAL_MS: bytes relayed and CPU time so far, and the byte counters of their
 *     live room-member allocations;
 *   - each room-member allocation's start, and its end with its final counters: the allocations
 *     per room are counted from these, so a heartbeat has them without waiting for a report. The
 *     heartbeat's total is the primary's own count of admissions, which a new allocation reaches
 *     first: a heartbeat built in the moment between has it in the total and not yet in its room.
 *
 * The usage ledger then meters stand-ins for those allocations exactly as it meters a one-process
 * relay's own: final figures on the end message, live ones as of the last report. A worker that
 * dies ends its stand-ins with the figures last reported (what it relayed after that is not
 * counted), and its totals carry on in a base, so the relay's counters never go down.
 *
 * Revocations are held here too (the count the fleet logs, and what a restarted worker is given
 * before it serves) and sent to every worker, which ends what they cover.
 */
import type { Revocation } from "../../shared/fleet/protocol.js";
import { FLEET_LIMITS } from "../../shared/fleet/protocol.js";
import { RevocationList } from "../allocation/revocations.js";
import type { FleetRelay } from "../fleet/relay-fleet.js";
import type { MeteredAllocation } from "../fleet/usage-ledger.js";
import type { AllocationMeter, RevokeOutcome } from "../server/relay-server.js";

/** How often a worker in a fleet reports (well under the heartbeat interval, so heartbeats carry recent figures). */
export const REPORT_INTERVAL_MS = 1_000;

/** A worker's periodic report. */
export interface WorkerReport {
  bytes: { toPeers: number; toClients: number };
  cpu: NodeJS.CpuUsage;
  /** Live room-member allocations: [id, bytesToPeers, bytesToClient]. */
  members: [id: number, bytesToPeers: number, bytesToClient: number][];
}

interface StandIn extends MeteredAllocation {
  readonly owner: { readonly room: string; readonly peerId: string };
  readonly traffic: { bytesToPeers: number; bytesToClient: number };
}

interface WorkerFigures {
  bytes: { toPeers: number; toClients: number };
  cpu: NodeJS.CpuUsage;
  members: Map<number, StandIn>;
}

function emptyFigures(): WorkerFigures {
  return { bytes: { toPeers: 0, toClients: 0 }, cpu: { user: 0, system: 0 }, members: new Map() };
}

export interface ClusterFleetOptions {
  /** Allocations held by all workers (the primary's admission ledger). */
  allocations(): number;
  /** Sends revocations to every worker; resolves with the allocations they ended in all. */
  revokeInWorkers(revocations: readonly Revocation[]): Promise<number>;
  /** Revocations are held until the credentials they cover expire: at most this long past now. */
  maxHoldSeconds: number;
}

export class ClusterFleet implements FleetRelay {
  private readonly workers = new Map<number, WorkerFigures>();
  /** What workers that died had relayed and used: the counters carry on from it. */
  private readonly base = { toPeers: 0, toClients: 0, user: 0, system: 0 };
  private meter: AllocationMeter | null = null;
  private readonly revocations: RevocationList;
  /** The revocations held, by target, for a restarted worker (the latest `until` per target). */
  private readonly held = new Map<string, Revocation>();

  constructor(private readonly options: ClusterFleetOptions) {
    this.revocations = new RevocationList(FLEET_LIMITS.maxRevocations, options.maxHoldSeconds);
  }

  private figures(slot: number): WorkerFigures {
    let figures = this.workers.get(slot);
    if (figures === undefined) {
      figures = emptyFigures();
      this.workers.set(slot, figures);
    }
    return figures;
  }

  /** A worker's periodic report. */
  report(slot: number, report: WorkerReport): void {
    const figures = this.figures(slot);
    figures.bytes = report.bytes;
    figures.cpu = report.cpu;
    for (const [id, bytesToPeers, bytesToClient] of report.members) {
      const standIn = figures.members.get(id);
      if (standIn === undefined) continue;
      standIn.traffic.bytesToPeers = bytesToPeers;
      standIn.traffic.bytesToClient = bytesToClient;
    }
  }

  memberOpened(slot: number, id: number, room: string, peerId: string, createdAt: number): void {
    const standIn: StandIn = { owner: { room, peerId }, traffic: { bytesToPeers: 0, bytesToClient: 0 }, createdAt };
    this.figures(slot).members.set(id, standIn);
    this.meter?.opened(standIn);
  }

  memberEnded(slot: number, id: number, bytesToPeers: number, bytesToClient: number, endedAt: number): void {
    const figures = this.figures(slot);
    const standIn = figures.members.get(id);
    if (standIn === undefined) return;
    figures.members.delete(id);
    standIn.traffic.bytesToPeers = bytesToPeers;
    standIn.traffic.bytesToClient = bytesToClient;
    this.meter?.ended(standIn, endedAt);
  }

  /** A worker died: its room members' allocations end with their last reported figures; its totals go to the base. */
  workerGone(slot: number, now = Date.now()): void {
    const figures = this.workers.get(slot);
    if (figures === undefined) return;
    this.workers.delete(slot);
    for (const standIn of figures.members.values()) this.meter?.ended(standIn, now);
    this.base.toPeers += figures.bytes.toPeers;
    this.base.toClients += figures.bytes.toClients;
    this.base.user += figures.cpu.user;
    this.base.system += figures.cpu.system;
  }

  /** The revocations a (re)starting worker must hold before it serves. */
  activeRevocations(nowSeconds = Math.floor(Date.now() / 1000)): Revocation[] {
    for (const [target, revocation] of this.held) if (revocation.until <= nowSeconds) this.held.delete(target);
    return [...this.held.values()];
  }

  // FleetRelay

  allocationCount(): number {
    return this.options.allocations();
  }

  bytesRelayed(): { toPeers: number; toClients: number } {
    let { toPeers, toClients } = this.base;
    for (const figures of this.workers.values()) {
      toPeers += figures.bytes.toPeers;
      toClients += figures.bytes.toClients;
    }
    return { toPeers, toClients };
  }

  cpuUsage(): NodeJS.CpuUsage {
    const own = process.cpuUsage();
    let user = this.base.user + own.user;
    let system = this.base.system + own.system;
    for (const figures of this.workers.values()) {
      user += figures.cpu.user;
      system += figures.cpu.system;
    }
    return { user, system };
  }

  roomCounts(): ReadonlyMap<string, number> {
    const counts = new Map<string, number>();
    for (const figures of this.workers.values()) {
      for (const { owner } of figures.members.values()) counts.set(owner.room, (counts.get(owner.room) ?? 0) + 1);
    }
    return counts;
  }

  setAllocationMeter(meter: AllocationMeter | null): void {
    this.meter = meter;
    if (meter === null) return;
    for (const figures of this.workers.values()) for (const standIn of figures.members.values()) meter.opened(standIn);
  }

  async revoke(revocations: readonly Revocation[]): Promise<RevokeOutcome> {
    const nowSeconds = Math.floor(Date.now() / 1000);
    const outcome: RevokeOutcome = { held: 0, past: 0, full: 0, ended: 0 };
    const taken: Revocation[] = [];
    for (const revocation of revocations) {
      const added = this.revocations.add(revocation, nowSeconds);
      if (added === "past") outcome.past++;
      else if (added === "full") outcome.full++;
      else {
        outcome.held++;
        taken.push(revocation);
      }
    }
    for (const revocation of taken) {
      const target = JSON.stringify([revocation.room, revocation.peerId, revocation.username]);
      if ((this.held.get(target)?.until ?? 0) < revocation.until) this.held.set(target, revocation);
    }
    if (taken.length > 0) outcome.ended = await this.options.revokeInWorkers(taken);
    return outcome;
  }

  revocationCount(): number {
    this.revocations.prune(Math.floor(Date.now() / 1000));
    return this.revocations.size;
  }
}
