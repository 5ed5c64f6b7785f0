/**
 * Send indication (RFC 8656 §10.2): relay DATA to XOR-PEER-ADDRESS if a permission exists.
 * Indications get no answer; anything wrong is dropped silently, as the RFC asks.
 */
import type { Allocation } from "../../allocation/allocation.js";
import { AttributeType } from "../../stun/constants.js";
import { readXorAddress } from "../../stun/attributes.js";
import { findAttribute, type StunMessage } from "../../stun/message.js";

export function handleSendIndication(allocation: Allocation, message: StunMessage, now: number): boolean {
  const peerAttribute = findAttribute(message, AttributeType.XorPeerAddress);
  const dataAttribute = findAttribute(message, AttributeType.Data);
  if (peerAttribute === undefined || dataAttribute === undefined) return false;
  const peer = readXorAddress(message, peerAttribute);
  if (!peer.ok || !allocation.hasPermission(peer.value.address, now)) return false;
  allocation.toPeer(message.buffer, dataAttribute.offset, dataAttribute.length, peer.value.address, peer.value.port);
  return true;
}
