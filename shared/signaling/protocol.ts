/**
 * The signaling protocol, version 1: every frame that crosses a room's WebSocket, defined once.
 *
 * The Worker validates client frames with `parseClientFrame` (see ./validate.ts) and sends only the
 * server frames typed here; apps and the client library read the same types. Frames are JSON text.
 */
import type { IceServer } from "../turn/ice-servers.js";

/** The subprotocol a client may offer; the server echoes it when offered (see `tokenSubprotocol`). */
export const SIGNALING_SUBPROTOCOL = "relaykit.v1";

/** Any value JSON can carry. `data` of signals and broadcasts is passed through untouched. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A peer's app-defined description (display name, role…): a JSON object of bounded size. */
export type PeerMeta = { [key: string]: JsonValue };

export interface PeerInfo {
  id: string;
  meta: PeerMeta;
}

// ---------------------------------------------------------------------------------------------
// Client → server

/** Deliver `data` to one peer of the room (an SDP offer or answer, an ICE candidate…). */
export interface SignalRequest {
  type: "signal";
  to: string;
  data: JsonValue;
}

/** Deliver `data` to every other peer of the room. */
export interface BroadcastRequest {
  type: "broadcast";
  data: JsonValue;
}

/** Replace the sender's metadata; the others are told with `peer-updated`. */
export interface MetaRequest {
  type: "meta";
  data: PeerMeta;
}

/** Leave for good: the others see `peer-left` at once and the resume token stops working. */
export interface LeaveRequest {
  type: "leave";
}

/**
 * Keep the connection alive. The exact text `{"type":"ping"}` is answered `{"type":"pong"}` by the
 * runtime without waking the room; any other spelling of a ping is answered by the room itself.
 */
export interface PingRequest {
  type: "ping";
}

export type ClientFrame = SignalRequest | BroadcastRequest | MetaRequest | LeaveRequest | PingRequest;

/** The ping text the runtime answers on its own; clients should send exactly this. */
export const PING_FRAME = '{"type":"ping"}';
export const PONG_FRAME = '{"type":"pong"}';

// ---------------------------------------------------------------------------------------------
// Server → client

export interface WelcomeFrame {
  type: "welcome";
  /** This connection's peer id: the join token's `sub`, or a random id in an open room. */
  peerId: string;
  /** Everyone else in the room, including peers that dropped and may still resume. */
  peers: PeerInfo[];
  /**
   * Reconnect within `resumeGraceMs` offering the subprotocol `resumeSubprotocol(resumeToken)` to keep
   * `peerId`. Single use.
   */
  resumeToken: string;
  /** True when this connection took over an earlier one of the same peer (no leave/join was seen). */
  resumed: boolean;
  /** Send a ping at least this often or the room closes the connection as stale. */
  idleTimeoutMs: number;
  /** How long a dropped peer may take to resume before the others are told it left. */
  resumeGraceMs: number;
  /** STUN and TURN servers with fresh credentials, when the Worker has a relay configured. */
  iceServers?: IceServer[];
  /** ISO 8601 time the TURN credentials in `iceServers` expire: fetch /v1/ice-servers before then. */
  expiresAt?: string;
  /**
   * Set instead of `iceServers` when this peer would get TURN credentials but the Worker did not mint
   * them (the caller's issuance budget, shared with /v1/ice-servers, is spent; or no relay of the
   * fleet is available). The join itself succeeded; fetch /v1/ice-servers after `retryAfterMs`.
   */
  iceServersWithheld?: IceServersWithheld;
}

export const ICE_SERVERS_WITHHELD_CODES = ["rate-limited", "no-relay-available"] as const;
export type IceServersWithheldCode = (typeof ICE_SERVERS_WITHHELD_CODES)[number];

/** Why a welcome came without the TURN credentials it would normally carry. */
export interface IceServersWithheld {
  /**
   * `rate-limited`: too many credentials for this caller lately (ISSUE_RATE_LIMITER).
   * `no-relay-available`: relays are registered with the Worker's fleet but none is live, ready and
   * below capacity, and there is no TURN_URLS to fall back on.
   */
  code: IceServersWithheldCode;
  message: string;
  /** When asking /v1/ice-servers makes sense again. */
  retryAfterMs: number;
}

export interface PeerJoinedFrame {
  type: "peer-joined";
  peer: PeerInfo;
}

export interface PeerLeftFrame {
  type: "peer-left";
  peerId: string;
}

export interface PeerUpdatedFrame {
  type: "peer-updated";
  peer: PeerInfo;
}

export interface SignalFrame {
  type: "signal";
  /** Set by the room from the sender's connection; a client cannot choose it. */
  from: string;
  data: JsonValue;
}

export interface BroadcastFrame {
  type: "broadcast";
  from: string;
  data: JsonValue;
}

export interface PongFrame {
  type: "pong";
}

/**
 * New ICE servers, pushed by the room when the ones it handed out stop being good: a relay in them
 * is draining (`relay-draining`; the list excludes it). Apply them as a credential refresh: replace
 * the configuration (`setConfiguration`) and restart ICE on calls that are up, from one side.
 */
export interface IceServersFrame {
  type: "ice-servers";
  iceServers: IceServer[];
  /** ISO 8601 time the TURN credentials in `iceServers` expire. */
  expiresAt: string;
  reason: IceServersReason;
}

export const ICE_SERVERS_REASONS = ["relay-draining"] as const;
export type IceServersReason = (typeof ICE_SERVERS_REASONS)[number];

/** Stable error codes; `message` says in words what went wrong and what to do. */
export const ERROR_CODES = [
  /** The frame is not JSON, has an unknown type, or misses a field. The connection stays. */
  "bad-message",
  /** A signal named a peer that is not in the room. */
  "peer-not-found",
  /** A frame or the metadata is over its size limit. Oversized frames also close the connection (1009). */
  "too-large",
  /** The connection sends faster than its rate limit; the frame was dropped. */
  "rate-limited",
  /** The room is at capacity; the connection is closed with `CLOSE_CODES.roomFull`. */
  "room-full",
  /** Join refused for want of a valid token. Over HTTP this is a 401 before the upgrade. */
  "unauthorized",
  /** The target peer is away and its queue of pending signals is full; the signal was dropped. */
  "queue-full",
  /**
   * The Worker refuses open rooms: it has a relay secret or API keys (so it looks like production) but
   * no JOIN_SECRET, and AUTH_MODE=open does not say open rooms are wanted. The connection is closed
   * with `CLOSE_CODES.authNotConfigured`; only its operator can fix this.
   */
  "auth-not-configured",
  /**
   * The room's operator removed this peer (`POST /v1/rooms/:room/peers/:peer/kick`). The connection is
   * closed with `CLOSE_CODES.kicked`; its resume token no longer works. Do not reconnect.
   */
  "kicked",
  /**
   * The join was refused: this peer id (the join token's `sub`) is banned from the room until the time
   * the message gives. The connection is closed with `CLOSE_CODES.kicked`.
   */
  "banned",
  /** The room's operator closed the room (`DELETE /v1/rooms/:room`); the connection is closed with `CLOSE_CODES.roomClosed`. */
  "room-closed",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
}

export type ServerFrame =
  | WelcomeFrame
  | PeerJoinedFrame
  | PeerLeftFrame
  | PeerUpdatedFrame
  | SignalFrame
  | BroadcastFrame
  | PongFrame
  | IceServersFrame
  | ErrorFrame;

/** WebSocket close codes the room uses, so clients can tell why they were closed. */
export const CLOSE_CODES = {
  /** After `leave`. */
  normal: 1000,
  /** A flood of bad or rate-limited frames. Reconnecting right away is pointless. */
  policyViolation: 1008,
  /** A frame over the size limit. */
  tooLarge: 1009,
  /** A newer connection of the same peer took over (resume or the same token `sub`). Do not reconnect. */
  replaced: 4001,
  /** No frame and no ping within the idle timeout. The peer may resume within the grace period. */
  stale: 4002,
  /** The room is at capacity. */
  roomFull: 4003,
  /**
   * The room's operator removed this peer, or refused its join while a ban on its id lasts. Not
   * resumable (the resume token is gone). Do not reconnect; the error frame before the close says
   * which (`kicked` or `banned`, with the ban's end).
   */
  kicked: 4004,
  /** The room's operator closed the room: everyone is out and every resume token is gone. Do not reconnect. */
  roomClosed: 4005,
  /** The Worker refuses open rooms until its operator sets JOIN_SECRET (or AUTH_MODE=open). Do not reconnect. */
  authNotConfigured: 4010,
} as const;

// ---------------------------------------------------------------------------------------------
// Joining

/** Room names live in shared/ids.ts beside user ids: the TURN user of a room member is built from both. */
export { ROOM_NAME_PATTERN, isValidRoomName } from "../ids.js";

/**
 * Browsers cannot set headers on a WebSocket, so a join token may ride in `Sec-WebSocket-Protocol`
 * instead of the URL (where it would land in access logs): offer
 * `[SIGNALING_SUBPROTOCOL, tokenSubprotocol(jwt)]` and the server answers with `SIGNALING_SUBPROTOCOL`.
 */
export const TOKEN_SUBPROTOCOL_PREFIX = "token.";

export function tokenSubprotocol(token: string): string {
  return TOKEN_SUBPROTOCOL_PREFIX + token;
}

/**
 * The resume token rides in `Sec-WebSocket-Protocol` too, never in the URL: a URL is kept by access
 * logs and proxies, and whoever holds a live resume token takes over the peer. Offer
 * `[SIGNALING_SUBPROTOCOL, resumeSubprotocol(welcome.resumeToken)]` (plus the join token, if any).
 * `?resume=<token>` is still read as a fallback for clients written before this, and is deprecated.
 */
export const RESUME_SUBPROTOCOL_PREFIX = "resume.";

export function resumeSubprotocol(token: string): string {
  return RESUME_SUBPROTOCOL_PREFIX + token;
}

/**
 * What a resume token looks like: the room issues 128 random bits as base64url (22 characters); the
 * range leaves room to change that. Anything else is refused before it reaches a room.
 */
export const RESUME_TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

/** The JSON body of every HTTP error the Worker answers. */
export interface HttpErrorBody {
  error: { code: string; message: string };
}

// ---------------------------------------------------------------------------------------------
// The admin API (API key): what an app backend reads and gets back when it moderates a room

/** One peer as `GET /v1/rooms/:room` shows it. */
export interface RoomViewPeer {
  id: string;
  meta: PeerMeta;
  /** ISO 8601 time the peer joined (a resume keeps it); null for peers that joined before the room kept it. */
  joinedAt: string | null;
  /** True while the peer has an open connection; false while it is away within its resume grace period. */
  connected: boolean;
  /** ISO 8601 time the peer dropped, or null while connected. */
  awaySince: string | null;
}

/** `GET /v1/rooms/:room` without Upgrade. A room nobody has joined is simply empty. */
export interface RoomView {
  room: string;
  /** Everyone in the room, in join order, including peers away within their grace period. */
  peers: RoomViewPeer[];
  /** Bans in force (set by a kick with `banSeconds`), soonest to end first. */
  bans: { peerId: string; until: string }[];
  /** The room's relay usage so far: `GET /v1/rooms/:room/usage` has it per peer. */
  usage: UsageFigures;
}

/**
 * Relay usage, as the relays counted it for room-scoped credentials (`<expiry>:<room>/<peer-id>`)
 * and reported in their heartbeats (shared/fleet/protocol.ts `UsageEntry`): exact figures, up to
 * the latest report (relays report every 5 s, and an allocation's last figures when it ends).
 */
export interface UsageFigures {
  /** Payload bytes relayed from the peers' clients on to their peers. */
  bytesToPeers: number;
  /** Payload bytes relayed from peers to the peers' clients. */
  bytesToClient: number;
  /** Allocation lifetimes added up, in seconds (to the millisecond). */
  allocationSeconds: number;
}

export interface PeerUsage extends UsageFigures {
  peerId: string;
  /** ISO 8601 time of the latest report that changed this peer's figures. */
  updatedAt: string;
}

/** `GET /v1/rooms/:room/usage`. */
export interface RoomUsage {
  room: string;
  total: UsageFigures;
  /** Per peer id, most bytes first. */
  peers: PeerUsage[];
  /**
   * Peers whose figures were folded into one line to bound the room's storage (the room keeps
   * per-peer figures for MAX_USAGE_PEERS peer ids): counted in `total`, not listed in `peers`.
   */
  foldedPeers: number;
  /** ISO 8601 time of the latest report, null before any. */
  updatedAt: string | null;
}

/** `POST /v1/rooms/:room/peers/:peer/kick`, answered 200. */
export interface KickResult {
  kicked: string;
  /** ISO 8601 end of the ban, or null when the kick carried none. */
  bannedUntil: string | null;
}

/** `DELETE /v1/rooms/:room`, answered 200. */
export interface RoomClosedResult {
  closed: string;
  /** Peers that were in the room (connected or away). */
  peers: number;
}
