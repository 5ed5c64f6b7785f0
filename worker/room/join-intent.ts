/**
 * What the Worker has established about a join before handing the upgrade to the room: the
 * verified identity (if any), the resume token offered, and the subprotocol to echo. It travels in
 * one internal header on a request the Worker builds itself, so a client can never set it.
 */
import type { IceServersWithheld, PeerMeta } from "../../shared/signaling/protocol.js";
import type { GeoLocation } from "../../shared/fleet/protocol.js";
import type { IceServersResponse } from "../../shared/turn/ice-servers.js";

export interface JoinIntent {
  /** The room's name (a Durable Object does not know the name it was addressed by). */
  room?: string;
  /** Where the peer is, as the edge saw it: drain notices pick relays near it. */
  location?: GeoLocation | null;
  /** The join token's `sub`; absent in open rooms, where the room picks a random id. */
  peerId?: string;
  /** The join token's `meta` claim. */
  meta?: PeerMeta;
  /** The resume token from an earlier welcome (subprotocol `resume.<token>`, or the deprecated `?resume=`). */
  resumeToken?: string;
  /** The subprotocol to answer with, when the client offered it. */
  subprotocol?: string;
  /**
   * In an open room, the id the peer gets if it is new (the Worker picks it so that the TURN
   * credentials below can name it). A resuming peer keeps its old id.
   */
  newPeerId?: string;
  /**
   * TURN credentials for the welcome, when the Worker has a relay configured, minted for
   * `<room>/<peerId ?? newPeerId>`; the room re-mints them if the peer resumes under its old id.
   */
  ice?: IceServersResponse;
  /** Why `ice` is missing although this peer would get credentials (the issuance limit, or no relay available). */
  iceWithheld?: IceServersWithheld;
}

const JOIN_INTENT_HEADER = "X-Relaykit-Join";

/** The request the Worker sends to the room's object: only the upgrade and the intent. */
export function joinRequest(intent: JoinIntent): Request {
  return new Request("https://room.internal/join", {
    headers: { Upgrade: "websocket", [JOIN_INTENT_HEADER]: JSON.stringify(intent) },
  });
}

export function readJoinIntent(request: Request): JoinIntent | null {
  const header = request.headers.get(JOIN_INTENT_HEADER);
  if (header === null || request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return null;
  try {
    const value: unknown = JSON.parse(header);
    return typeof value === "object" && value !== null ? (value as JoinIntent) : null;
  } catch {
    return null;
  }
}
