/**
 * Binding (RFC 8489 §6.3): tell the client the address its request came from. No authentication,
 * and an answer no larger than the request needs, so the relay is a poor amplifier.
 */
import type { ClientLink } from "../../allocation/allocation.js";
import { AttributeType } from "../../stun/constants.js";
import { encodeXorAddress } from "../../stun/attributes.js";
import type { StunMessage } from "../../stun/message.js";
import { success, type Answer } from "../responses.js";

export function handleBinding(message: StunMessage, link: ClientLink): Answer {
  return success([encodeXorAddress(AttributeType.XorMappedAddress, link.address, message.transactionId)]);
}
