/**
 * What the method handlers see of the server: settings, the allocation table, the peer policy and
 * the clock, plus the two operations that touch sockets. Handlers stay small and testable.
 */
import type { Allocation, AllocationOwner, ClientLink } from "../allocation/allocation.js";
import type { AllocationTable } from "../allocation/allocation-table.js";
import type { ReservationTable, ReservedPort } from "../allocation/reservations.js";
import type { AuthSuccess } from "../auth/long-term.js";
import type { CoarseClock } from "../clock.js";
import type { RelayConfig } from "../config.js";
import type { StunMessage } from "../stun/message.js";
import type { Answer } from "./responses.js";

export interface PeerPolicy {
  isAllowed(address: string): boolean;
}

export interface RelayRequest {
  readonly message: StunMessage;
  readonly link: ClientLink;
  readonly auth: AuthSuccess;
  /** Milliseconds since the epoch. */
  readonly now: number;
  /** The transaction id in hex, and what stands for the request's bytes (requestDigest): a copy of it has the same. */
  readonly transactionId: string;
  readonly digest: string;
}

export interface AllocationRequest {
  family: 4 | 6;
  evenPort: boolean;
  /** EVEN-PORT's R bit: an even port P, with P+1 held for a later Allocate under a RESERVATION-TOKEN. */
  reserveNextPort: boolean;
  /** A RESERVATION-TOKEN to honour: the port it holds becomes this allocation's (its family too), or 508. */
  reservationToken: Buffer | null;
  lifetimeMs: number;
  /** The Allocate's transaction id (hex) and digest: the allocation answers copies of it (RelayServer.handleRequest). */
  transactionId: string;
  digest: string;
  /**
   * Checked again once the relay socket is bound, right before the allocation is registered: other
   * requests may have run while the bind was under way (quotas, a second Allocate of this client).
   */
  admit(): Answer | null;
}

export interface TurnContext {
  readonly config: RelayConfig;
  readonly table: AllocationTable;
  readonly peers: PeerPolicy;
  readonly clock: CoarseClock;
  /** Ports held for RESERVATION-TOKENs (EVEN-PORT with the R bit). */
  readonly reservations: ReservationTable<ReservedPort>;
  /** Binds a relay socket (or takes a reserved one) and registers the allocation, or answers why not (508, 440). */
  openAllocation(link: ClientLink, owner: AllocationOwner, request: AllocationRequest): Promise<Allocation | Answer>;
  closeAllocation(allocation: Allocation, reason: string): void;
  /** Whether a transport address is one of the relay's own listeners. */
  isOwnListener(address: string, port: number): boolean;
}
