/**
 * Reading XOR-PEER-ADDRESS the way CreatePermission and ChannelBind need it: present, well formed,
 * of the allocation's family (443), and a peer the policy allows (403).
 */
import type { Allocation } from "../../allocation/allocation.js";
import { readXorAddress, type TransportAddress } from "../../stun/attributes.js";
import type { StunAttributeRef, StunMessage } from "../../stun/message.js";
import type { PeerPolicy } from "../context.js";
import { failure, refused, type Answer } from "../responses.js";

export function checkPeerAddress(
  message: StunMessage,
  attribute: StunAttributeRef,
  allocation: Allocation,
  peers: PeerPolicy,
): { ok: true; peer: TransportAddress } | { ok: false; answer: Answer } {
  const read = readXorAddress(message, attribute);
  if (!read.ok) return { ok: false, answer: failure(400, `XOR-PEER-ADDRESS: ${read.reason}`) };
  const peer = read.value;
  if (peer.family !== allocation.relayedAddress.family) {
    return { ok: false, answer: failure(443, "Peer Address Family Mismatch") };
  }
  if (!peers.isAllowed(peer.address)) return { ok: false, answer: refused("peer-denied", 403, "Forbidden: the relay does not relay to that peer address") };
  return { ok: true, peer };
}

/** The allocation this request acts on: it must exist (437) and belong to the same user (441). */
export function ownAllocation(allocation: Allocation | undefined, username: string): { ok: true; allocation: Allocation } | { ok: false; answer: Answer } {
  if (allocation === undefined) return { ok: false, answer: failure(437, "Allocation Mismatch: no allocation for this client") };
  if (allocation.owner.username !== username) {
    return { ok: false, answer: failure(441, "Wrong Credentials: the allocation was made with another username") };
  }
  return { ok: true, allocation };
}
