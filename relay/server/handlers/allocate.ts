/**
 * Allocate (RFC 8656 §7): a UDP relay address for this client 5-tuple; with EVEN-PORT's R bit, the next
 * port held for a later Allocate under a RESERVATION-TOKEN, and with such a token, that held port.
 */
import { AttributeType } from "../../stun/constants.js";
import {
  encodeLifetime,
  encodeReservationToken,
  encodeXorAddress,
  readEvenPort,
  readReservationToken,
  readLifetime,
  readRequestedAddressFamily,
  readRequestedTransport,
  TRANSPORT_PROTOCOL_UDP,
  encodeUnknownAttributes,
} from "../../stun/attributes.js";
import { findAttribute } from "../../stun/message.js";
import { parseTurnUser } from "../../../shared/turn/turn-user.js";
import { DEFAULT_ALLOCATION_LIFETIME_SECONDS } from "../../config.js";
import type { Allocation, ClientLink } from "../../allocation/allocation.js";
import type { RelayRequest, TurnContext } from "../context.js";
import { quotaRefusal, type QuotaRefusal } from "../../policy/allocation-quotas.js";
import { failure, refused, success, type Answer } from "../responses.js";

/**
 * The answer to a successful Allocate, also resent for a retransmission of it: with the
 * RESERVATION-TOKEN of the port it reserved, while that is still held.
 */
export function allocateSuccess(ctx: TurnContext, allocation: Allocation, transactionId: Buffer, now: number): Answer {
  const id = transactionId;
  const token = ctx.reservations.tokenMadeBy(allocation, now);
  return success([
    encodeXorAddress(AttributeType.XorRelayedAddress, allocation.relayedAddress, id),
    encodeLifetime(Math.max(0, Math.round((allocation.expiresAt - now) / 1000))),
    ...(token === undefined ? [] : [encodeReservationToken(token)]),
    encodeXorAddress(AttributeType.XorMappedAddress, allocation.client.address, id),
  ]);
}

/** What a client hears for each quota it meets. */
export function quotaAnswer(refusal: QuotaRefusal): Answer {
  return QUOTA_ANSWERS[refusal]();
}

const QUOTA_ANSWERS: Record<QuotaRefusal, () => Answer> = {
  "user-quota": () => refused("user-quota", 486, "Allocation Quota Reached: this user holds the most allocations allowed"),
  "ip-quota": () => refused("ip-quota", 486, "Allocation Quota Reached: this client address (its IPv6 /64) holds the most allocations allowed"),
  "total-quota": () => refused("total-quota", 508, "Insufficient Capacity: the relay holds the most allocations allowed"),
};

/** Whether one more allocation for this client and user fits: no allocation yet, and within the quotas. */
function admission(ctx: TurnContext, link: ClientLink, userId: string): Answer | null {
  if (ctx.table.byKey(link.key) !== undefined) return failure(437, "Allocation Mismatch: this client already has an allocation");
  const refusal = quotaRefusal(ctx.config, {
    user: ctx.table.countForUser(userId),
    source: ctx.table.countForSource(link.address.address),
    total: ctx.table.size,
  });
  return refusal === null ? null : quotaAnswer(refusal);
}

/** Whether this user may hold one more port reservation: with --user-quota, as many as the allocations it allows. */
function reservationRoom(ctx: TurnContext, userId: string): Answer | null {
  return ctx.reservations.hasRoomFor(userId) ? null : reservationRefused();
}

/** The answer when the user holds as many port reservations as --user-quota allows. */
export function reservationRefused(): Answer {
  return refused("user-quota", 486, "Allocation Quota Reached: this user holds the most port reservations allowed; each is freed when used or after 30 s");
}

/**
 * The room and peer id a room member's credential names (read once per allocation, for the fleet's
 * per-room counts and per-member usage); {} for a plain user.
 */
function roomOf(userId: string): { room?: string; peerId?: string } {
  const user = parseTurnUser(userId);
  return user?.kind === "room-member" ? { room: user.room, peerId: user.peerId } : {};
}

/** Seconds a client gets: what it asked for, or the default, never more than the maximum. */
export function grantedLifetime(requested: number | undefined, maxSeconds: number): number {
  return Math.min(requested ?? DEFAULT_ALLOCATION_LIFETIME_SECONDS, maxSeconds);
}

export async function handleAllocate(ctx: TurnContext, request: RelayRequest): Promise<Answer> {
  const { message, link, auth } = request;
  // A copy of the Allocate that made this client's allocation never gets here: the server answers it
  // from the allocation (RelayServer.handleRequest). Any other Allocate from the client is a mismatch.
  if (ctx.table.byKey(link.key) !== undefined) return failure(437, "Allocation Mismatch: this client already has an allocation");

  const transport = findAttribute(message, AttributeType.RequestedTransport);
  if (transport === undefined) return failure(400, "Bad Request: REQUESTED-TRANSPORT is missing");
  const protocol = readRequestedTransport(message, transport);
  if (!protocol.ok) return failure(400, `Bad Request: ${protocol.reason}`);
  if (protocol.value !== TRANSPORT_PROTOCOL_UDP) return failure(442, "Unsupported Transport Protocol: only UDP relaying is offered");

  // Node cannot set the DF bit on a socket, so DONT-FRAGMENT is refused as RFC 8656 §7.2 asks.
  if (findAttribute(message, AttributeType.DontFragment) !== undefined) {
    return failure(420, "Unknown Attribute: DONT-FRAGMENT is not supported", [encodeUnknownAttributes([AttributeType.DontFragment])]);
  }
  const evenPortAttribute = findAttribute(message, AttributeType.EvenPort);
  const tokenAttribute = findAttribute(message, AttributeType.ReservationToken);
  const familyAttribute = findAttribute(message, AttributeType.RequestedAddressFamily);
  // The reserved port fixes the port and the family, so asking for either as well is a contradiction (RFC 8656 §7.2).
  if (tokenAttribute !== undefined && (evenPortAttribute !== undefined || familyAttribute !== undefined)) {
    return failure(400, "Bad Request: RESERVATION-TOKEN cannot be combined with EVEN-PORT or REQUESTED-ADDRESS-FAMILY; send the token alone");
  }
  let reservationToken: Buffer | null = null;
  if (tokenAttribute !== undefined) {
    const token = readReservationToken(message, tokenAttribute);
    if (!token.ok) return failure(400, `Bad Request: ${token.reason}`);
    reservationToken = token.value;
  }
  let evenPort = false;
  let reserveNextPort = false;
  if (evenPortAttribute !== undefined) {
    const even = readEvenPort(message, evenPortAttribute);
    if (!even.ok) return failure(400, `Bad Request: ${even.reason}`);
    evenPort = true;
    reserveNextPort = even.value.reserveNextPort;
  }

  let family: 4 | 6 = 4;
  if (familyAttribute !== undefined) {
    const requested = readRequestedAddressFamily(message, familyAttribute);
    if (!requested.ok) return failure(440, `Address Family not Supported: ${requested.reason}`);
    family = requested.value;
  }

  let requestedLifetime: number | undefined;
  const lifetimeAttribute = findAttribute(message, AttributeType.Lifetime);
  if (lifetimeAttribute !== undefined) {
    const lifetime = readLifetime(message, lifetimeAttribute);
    if (!lifetime.ok) return failure(400, `Bad Request: ${lifetime.reason}`);
    requestedLifetime = lifetime.value;
  }
  const lifetimeSeconds = grantedLifetime(requestedLifetime, ctx.config.maxAllocateLifetime);
  if (lifetimeSeconds === 0) return failure(400, "Bad Request: an allocation needs a lifetime above 0");

  // With the R bit, the user's reservations count too: checked here and again once the ports are bound.
  const admit = () => admission(ctx, link, auth.userId) ?? (reserveNextPort ? reservationRoom(ctx, auth.userId) : null);
  const refused = admit();
  if (refused !== null) return refused;
  const opened = await ctx.openAllocation(
    link,
    { username: auth.username, userId: auth.userId, key: auth.key, credentialExpiresAt: auth.expiresAt, ...roomOf(auth.userId) },
    { family, evenPort, reserveNextPort, reservationToken, lifetimeMs: lifetimeSeconds * 1000, transactionId: request.transactionId, digest: request.digest, admit },
  );
  if ("ok" in opened) return opened;
  return allocateSuccess(ctx, opened, message.transactionId, request.now);
}
