/**
 * The client's side of validation: a server frame's text in, a typed frame or null out. The server
 * is ours, but a client must survive a proxy's garbage or a newer server's frame it does not know
 * without throwing inside a socket callback; unknown frame types come back as null and are ignored.
 */
import type { IceServersWithheld, PeerInfo, ServerFrame } from "./protocol.js";
import { ERROR_CODES, ICE_SERVERS_WITHHELD_CODES } from "./protocol.js";
import { isPlainObject } from "./validate.js";

function isPeerInfo(value: unknown): value is PeerInfo {
  return isPlainObject(value) && typeof value["id"] === "string" && isPlainObject(value["meta"]);
}

function isIceServersWithheld(value: unknown): value is IceServersWithheld {
  return (
    isPlainObject(value) &&
    (ICE_SERVERS_WITHHELD_CODES as readonly unknown[]).includes(value["code"]) &&
    typeof value["message"] === "string" &&
    typeof value["retryAfterMs"] === "number" &&
    Number.isFinite(value["retryAfterMs"]) &&
    value["retryAfterMs"] >= 0
  );
}

/**
 * The welcome, if its required fields hold. An `iceServersWithheld` the client does not understand
 * (a newer server's code) is dropped rather than the whole welcome: the join worked either way.
 */
function parseWelcome(frame: Record<string, unknown>): ServerFrame | null {
  const valid =
    typeof frame["peerId"] === "string" &&
    Array.isArray(frame["peers"]) &&
    frame["peers"].every(isPeerInfo) &&
    typeof frame["resumeToken"] === "string" &&
    typeof frame["resumed"] === "boolean" &&
    typeof frame["idleTimeoutMs"] === "number" &&
    typeof frame["resumeGraceMs"] === "number" &&
    (frame["iceServers"] === undefined || Array.isArray(frame["iceServers"])) &&
    (frame["expiresAt"] === undefined || typeof frame["expiresAt"] === "string");
  if (!valid) return null;
  if (frame["iceServersWithheld"] !== undefined && !isIceServersWithheld(frame["iceServersWithheld"])) delete frame["iceServersWithheld"];
  return frame as unknown as ServerFrame;
}

export function parseServerFrame(text: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isPlainObject(value)) return null;
  const frame = value as Record<string, unknown>;
  switch (frame["type"]) {
    case "welcome":
      return parseWelcome(frame);
    case "peer-joined":
    case "peer-updated":
      return isPeerInfo(frame["peer"]) ? (value as unknown as ServerFrame) : null;
    case "peer-left":
      return typeof frame["peerId"] === "string" ? (value as unknown as ServerFrame) : null;
    case "signal":
    case "broadcast":
      return typeof frame["from"] === "string" && "data" in frame ? (value as unknown as ServerFrame) : null;
    case "pong":
      return { type: "pong" };
    case "ice-servers":
      // A reason this client does not know (a newer Worker's) still brings servers to apply: keep the frame.
      return Array.isArray(frame["iceServers"]) && typeof frame["expiresAt"] === "string" && typeof frame["reason"] === "string" ? (value as unknown as ServerFrame) : null;
    case "error":
      return typeof frame["message"] === "string" && (ERROR_CODES as readonly unknown[]).includes(frame["code"]) ? (value as unknown as ServerFrame) : null;
    default:
      return null;
  }
}
