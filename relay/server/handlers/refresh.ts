/**
 * Refresh (RFC 8656 §8): extend the allocation, or delete it with LIFETIME 0.
 */
import { AttributeType } from "../../stun/constants.js";
import { encodeLifetime, readLifetime } from "../../stun/attributes.js";
import { findAttribute } from "../../stun/message.js";
import type { RelayRequest, TurnContext } from "../context.js";
import { failure, success, type Answer } from "../responses.js";
import { grantedLifetime } from "./allocate.js";
import { ownAllocation } from "./peer-address.js";

export function handleRefresh(ctx: TurnContext, request: RelayRequest): Answer {
  const { message, auth, now } = request;
  const own = ownAllocation(ctx.table.byKey(request.link.key), auth.username);
  if (!own.ok) return own.answer;

  let requested: number | undefined;
  const attribute = findAttribute(message, AttributeType.Lifetime);
  if (attribute !== undefined) {
    const lifetime = readLifetime(message, attribute);
    if (!lifetime.ok) return failure(400, `Bad Request: ${lifetime.reason}`);
    requested = lifetime.value;
  }
  if (requested === 0) {
    ctx.closeAllocation(own.allocation, "deleted by the client");
    return success([encodeLifetime(0)]);
  }
  const seconds = grantedLifetime(requested, ctx.config.maxAllocateLifetime);
  own.allocation.expiresAt = now + seconds * 1000;
  return success([encodeLifetime(seconds)]);
}
