/**
 * Validation of client frames: text in, a typed frame or a reason out. Pure, so the room, the tests
 * and the client all judge a frame the same way.
 */
import type { ClientFrame, ErrorCode, JsonValue, PeerMeta } from "./protocol.js";

export type ParseResult =
  | { ok: true; frame: ClientFrame }
  | { ok: false; code: Extract<ErrorCode, "bad-message" | "too-large">; message: string };

export interface FrameLimits {
  /** Largest `meta` object, in bytes of its JSON text. */
  maxMetaBytes: number;
  /** Longest peer id accepted in `to`. */
  maxPeerIdLength: number;
}

const CLIENT_FRAME_TYPES = "signal, broadcast, meta, leave, ping";

function fail(message: string): ParseResult {
  return { ok: false, code: "bad-message", message };
}

export function isPlainObject(value: unknown): value is { [key: string]: JsonValue } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Bytes of a string once UTF-8 encoded, without allocating the encoding. */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      // A surrogate pair is one 4-byte code point.
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Checks metadata on its own: the room uses this for the join token's `meta` claim too. */
export function checkMeta(value: unknown, maxMetaBytes: number): { ok: true; meta: PeerMeta } | { ok: false; code: "bad-message" | "too-large"; message: string } {
  if (!isPlainObject(value)) {
    return { ok: false, code: "bad-message", message: "meta must be a JSON object, e.g. {\"name\":\"Ada\"}" };
  }
  const bytes = utf8ByteLength(JSON.stringify(value));
  if (bytes > maxMetaBytes) {
    return { ok: false, code: "too-large", message: `meta is ${bytes} bytes of JSON; the limit is ${maxMetaBytes}` };
  }
  return { ok: true, meta: value };
}

export function parseClientFrame(text: string, limits: FrameLimits): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail("frames must be JSON text, e.g. {\"type\":\"ping\"}");
  }
  if (!isPlainObject(value)) return fail("a frame must be a JSON object with a \"type\" field");
  const type = value.type;
  switch (type) {
    case "signal": {
      const to = value.to;
      if (typeof to !== "string" || to.length === 0 || to.length > limits.maxPeerIdLength) {
        return fail(`signal needs "to": the id of a peer in the room (1-${limits.maxPeerIdLength} characters)`);
      }
      if (!("data" in value)) return fail("signal needs \"data\": the payload to deliver");
      return { ok: true, frame: { type, to, data: value.data as JsonValue } };
    }
    case "broadcast":
      if (!("data" in value)) return fail("broadcast needs \"data\": the payload to deliver");
      return { ok: true, frame: { type, data: value.data as JsonValue } };
    case "meta": {
      const checked = checkMeta(value.data, limits.maxMetaBytes);
      if (!checked.ok) return checked;
      return { ok: true, frame: { type, data: checked.meta } };
    }
    case "leave":
    case "ping":
      return { ok: true, frame: { type } };
    default:
      return fail(
        typeof type === "string"
          ? `unknown frame type ${JSON.stringify(type.slice(0, 40))}; expected one of ${CLIENT_FRAME_TYPES}`
          : `a frame needs a string "type": one of ${CLIENT_FRAME_TYPES}`,
      );
  }
}
