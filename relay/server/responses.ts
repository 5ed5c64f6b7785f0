/**
 * Building the answer to a request: success or error, signed with the long-term key when the
 * request was authenticated, with FINGERPRINT when the client used it, and SOFTWARE only when the
 * operator asked for it (it helps nobody but fingerprinters and amplifiers).
 */
import { AttributeType, StunClass } from "../stun/constants.js";
import { buildStunMessage, type StunAttributeValue } from "../stun/builder.js";
import { encodeErrorCode, encodeText } from "../stun/attributes.js";
import type { StunMessage } from "../stun/message.js";

/**
 * Why a request was refused when the reason is one operators watch (a metric counts each):
 * a quota, the port range, the peer policy, a drain in progress, or a credential the fleet revoked.
 */
export type RefusalKind = "user-quota" | "ip-quota" | "total-quota" | "no-relay-port" | "peer-denied" | "draining" | "revoked";

/** What a method handler decides; the server turns it into bytes. */
export type Answer =
  | { ok: true; attributes: StunAttributeValue[] }
  | { ok: false; code: number; reason: string; attributes?: StunAttributeValue[]; refusal?: RefusalKind };

export function success(attributes: StunAttributeValue[] = []): Answer {
  return { ok: true, attributes };
}

export function failure(code: number, reason: string, attributes?: StunAttributeValue[]): Answer {
  return attributes === undefined ? { ok: false, code, reason } : { ok: false, code, reason, attributes };
}

/** A failure operators count (see RefusalKind). */
export function refused(refusal: RefusalKind, code: number, reason: string): Answer {
  return { ok: false, code, reason, refusal };
}

export interface ResponseOptions {
  /** Signs the response: every answer to an authenticated request, with the integrity attribute the request used. */
  signature?: { key: Buffer; integrity: "message-integrity" | "message-integrity-sha256" };
  software: string | null;
}

export function buildResponse(request: StunMessage, answer: Answer, options: ResponseOptions): Buffer {
  const attributes = answer.ok ? [...answer.attributes] : [encodeErrorCode(answer.code, answer.reason), ...(answer.attributes ?? [])];
  if (options.software !== null) attributes.push(encodeText(AttributeType.Software, options.software));
  return buildStunMessage({
    method: request.method,
    messageClass: answer.ok ? StunClass.SuccessResponse : StunClass.ErrorResponse,
    transactionId: request.transactionId,
    attributes,
    ...(options.signature?.integrity === "message-integrity" && { messageIntegrityKey: options.signature.key }),
    ...(options.signature?.integrity === "message-integrity-sha256" && { messageIntegritySha256Key: options.signature.key }),
    fingerprint: request.fingerprint !== undefined,
  });
}
