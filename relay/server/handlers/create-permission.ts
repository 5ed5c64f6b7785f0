/**
 * CreatePermission (RFC 8656 §9): let datagrams from these peers' IP addresses through for five
 * minutes. All peers of a request are checked before any is installed: all or nothing.
 */
import { AttributeType } from "../../stun/constants.js";
import { findAllAttributes } from "../../stun/message.js";
import type { TransportAddress } from "../../stun/attributes.js";
import { PERMISSION_LIFETIME_SECONDS } from "../../config.js";
import type { RelayRequest, TurnContext } from "../context.js";
import { failure, success, type Answer } from "../responses.js";
import { checkPeerAddress, ownAllocation } from "./peer-address.js";

export function handleCreatePermission(ctx: TurnContext, request: RelayRequest): Answer {
  const { message, auth, now } = request;
  const own = ownAllocation(ctx.table.byKey(request.link.key), auth.username);
  if (!own.ok) return own.answer;
  const attributes = findAllAttributes(message, AttributeType.XorPeerAddress);
  if (attributes.length === 0) return failure(400, "Bad Request: XOR-PEER-ADDRESS is missing");
  const peers: TransportAddress[] = [];
  for (const attribute of attributes) {
    const checked = checkPeerAddress(message, attribute, own.allocation, ctx.peers);
    if (!checked.ok) return checked.answer;
    peers.push(checked.peer);
  }
  own.allocation.sweep(now);
  const added = new Set(peers.map((peer) => peer.address).filter((address) => !own.allocation.permissions.has(address)));
  if (own.allocation.permissions.size + added.size > ctx.config.maxPermissionsPerAllocation) {
    return failure(508, `Insufficient Capacity: an allocation holds at most ${ctx.config.maxPermissionsPerAllocation} permissions`);
  }
  for (const peer of peers) own.allocation.permit(peer.address, PERMISSION_LIFETIME_SECONDS * 1000, now);
  return success();
}
