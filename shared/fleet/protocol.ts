/**
 * The fleet control channel, version 1: every message between a relay and the Worker's fleet
 * Durable Object, defined once and imported by both sides.
 *
 * A relay keeps one outbound WebSocket to `wss://<worker>/v1/fleet`, offering the subprotocol
 * `FLEET_SUBPROTOCOL` and presenting a fleet token (./token.ts) as `Authorization: Bearer <token>`.
 * It sends `register` once, then a `heartbeat` every `HEARTBEAT_INTERVAL_MS` (and at once when its
 * state changes). The fleet answers `registered`, and `error` for a message it refuses; it sends
 * `revoke` whenever credentials are revoked, and replays every live revocation right after a
 * `register` (before `registered`). A heartbeat may carry a usage report (`UsageReport`); the fleet
 * answers `usage-ack` once every room of the report has stored it. Messages are JSON text of at most
 * `FLEET_LIMITS.maxMessageBytes`.
 *
 * The fleet only steers: a relay serves on its own whether or not the channel is up.
 */
import { isPlainObject } from "../signaling/validate.js";
import { isTurnUrl } from "../turn/ice-servers.js";
import { ROOM_NAME_RULE, USER_ID_RULE, isValidRoomName, isValidUserId } from "../ids.js";
import { checkTurnUsername } from "../turn/credentials.js";

export const FLEET_PATH = "/v1/fleet";
export const FLEET_SUBPROTOCOL = "relaykit-fleet.v1";

/** A relay sends a heartbeat this often... */
export const HEARTBEAT_INTERVAL_MS = 5_000;
/** ...and is handed out only while its last one is at most this old. */
export const LIVE_WITHIN_MS = 15_000;

export const FLEET_LIMITS = {
  /**
   * Largest message either way, in bytes of JSON text: a heartbeat's full room list (~40 KB) plus a
   * full usage report (~50 KB) fit.
   */
  maxMessageBytes: 128 * 1024,
  /** `turn:`/`turns:` URLs one relay may register, and the longest one. */
  maxUrls: 8,
  maxUrlLength: 256,
  maxRegionLength: 64,
  maxVersionLength: 64,
  /** Rooms listed in one heartbeat; the rest are counted in `roomsOmitted`. */
  maxRooms: 500,
  /** Usage entries in one heartbeat's report; a relay with more changes sends the rest in the next ones. */
  maxUsageEntries: 200,
  /** Messages a relay may send in a burst, and per second sustained (heartbeats come every 5 s). */
  messageBurst: 5,
  messagesPerSecond: 1,
  /**
   * Live revocations the fleet keeps, and a relay holds, at once. Each lives only until the
   * credentials it covers expire (48 h at most), so this is far above what kicks and bans produce.
   */
  maxRevocations: 10_000,
  /** Revocations in one `revoke` message (each at most ~300 bytes of JSON: 100 stay well under maxMessageBytes). */
  maxRevocationsPerMessage: 100,
} as const;

/** Relay ids: what an operator names a relay (a host name, say). */
export const RELAY_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const RELAY_ID_RULE = "1-64 characters of A-Z a-z 0-9 _ . -";

export function isValidRelayId(id: string): boolean {
  return RELAY_ID_PATTERN.test(id);
}

/** Degrees, WGS 84: latitude -90..90, longitude -180..180. */
export interface GeoLocation {
  lat: number;
  lon: number;
}

export type RelayState = "ready" | "draining";

// ---------------------------------------------------------------------------------------------
// Relay → fleet

export interface RegisterMessage {
  type: "register";
  /** Must equal the relay id the token names. */
  relayId: string;
  /** The relay's version (package version). */
  version: string;
  /** What clients should use to reach this relay: `turn:`/`turns:` URLs, as in an RTCIceServer. */
  urls: string[];
  /** A label for operators (`eu-west`, `fra1`...). */
  region: string;
  /** Where the relay is; null when the operator did not say (it is then ordered after located relays). */
  location: GeoLocation | null;
  capacity: {
    /** Allocations the relay takes before it counts as full; 0 when it sets no limit. */
    allocations: number;
    /** Relayed bits per second (in + out) it is sized for; 0 when it sets no limit. */
    bps: number;
  };
}

/** A room the relay holds allocations for: counted from room-scoped TURN users (shared/turn/turn-user.ts). */
export interface RoomLoad {
  room: string;
  allocations: number;
}

/**
 * What a relay has relayed for one room member (room-scoped credentials only), counted from the
 * relay process's start (`UsageReport.boot`) and never going down: the payload bytes its
 * allocations relayed each way (as the relay's byte counters and metrics count them) and the
 * allocations' lifetimes added up, the live ones up to now. Cumulative on purpose: a report that is
 * lost, repeated or overtaken changes nothing once a later one arrives, so the stored figures are
 * exact, never sampled.
 */
export interface UsageEntry {
  room: string;
  peerId: string;
  /** Payload bytes from the peer's client relayed on toward its peers. */
  bytesToPeers: number;
  /** Payload bytes from peers relayed to the peer's client. */
  bytesToClient: number;
  /** Milliseconds of allocation lifetime (two allocations for one second count 2000). */
  allocationMs: number;
}

export interface UsageReport {
  /** The relay process's instance id, new at every start: the figures count from it. */
  boot: string;
  /** Increases with every report of this boot; `usage-ack` names the newest stored. */
  seq: number;
  /**
   * The members whose figures differ from what the fleet acknowledged for them (never acknowledged
   * first, then those sent longest ago), at most `FLEET_LIMITS.maxUsageEntries`; may be empty. A
   * live member's figures change every beat; a member whose allocations all ended is reported until
   * its final figures are acknowledged, then kept (not reported) so a returning peer counts on.
   */
  entries: UsageEntry[];
}

/** Boot ids: 8-64 characters of A-Z a-z 0-9 _ -. */
export const BOOT_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

export interface HeartbeatMessage {
  type: "heartbeat";
  state: RelayState;
  /** Live allocations. */
  allocations: number;
  /** Relayed bits per second since the last heartbeat, from clients toward peers and back. */
  bpsIn: number;
  bpsOut: number;
  /** CPU of the relay process since the last heartbeat, percent of one core (may pass 100). */
  cpuPercent: number;
  /** Event-loop delay since the last heartbeat (p99), milliseconds. */
  eventLoopDelayMs: number;
  /** Rooms with the most allocations first, at most `FLEET_LIMITS.maxRooms`. */
  rooms: RoomLoad[];
  /** Rooms left out of `rooms` for the cap. */
  roomsOmitted: number;
  /** Absent from relays that predate usage reports. */
  usage?: UsageReport;
}

export type RelayMessage = RegisterMessage | HeartbeatMessage;

// ---------------------------------------------------------------------------------------------
// Fleet → relay

export interface RegisteredMessage {
  type: "registered";
  relayId: string;
  /** How often the fleet expects heartbeats. */
  heartbeatIntervalMs: number;
}

export const FLEET_ERROR_CODES = [
  /** Not JSON, an unknown type, a missing or out-of-range field, or over a size limit. */
  "bad-message",
  /** `register` named another relay id than the token, came twice, or a heartbeat came before it. */
  "out-of-order",
  /** Messages faster than `FLEET_LIMITS.messagesPerSecond`. */
  "rate-limited",
] as const;
export type FleetErrorCode = (typeof FLEET_ERROR_CODES)[number];

export interface FleetErrorMessage {
  type: "error";
  code: FleetErrorCode;
  message: string;
}

/**
 * Credentials a relay must stop serving: it ends the allocations they made and refuses their
 * requests until `until`. One of two targets:
 *   - a room (`room`, `peerId` null): every room member's credential of that room
 *     (`<expiry>:<room>/<peer-id>`, shared/turn/turn-user.ts);
 *   - a peer of a room (`room` and `peerId`): that member's credentials;
 *   - one exact TURN username (`username`; `room` and `peerId` null): whatever its user part.
 * It covers the matching credentials that expire at or before `until` (unix seconds): every one
 * issued before the revocation, none issued after it (a peer may rejoin once a kick is over).
 */
export interface Revocation {
  room: string | null;
  peerId: string | null;
  username: string | null;
  until: number;
}

export interface RevokeMessage {
  type: "revoke";
  /** 1 to `FLEET_LIMITS.maxRevocationsPerMessage`. */
  revocations: Revocation[];
}

/**
 * Every room named in the report of `seq` has stored it; says nothing of other reports (the fleet
 * stores reports concurrently, and one may fail while a later one succeeds). So the relay counts a
 * member's figures as stored when the ack names the latest report that carried them, and forgets a
 * member once its allocations have all ended and its final figures are stored that way.
 */
export interface UsageAckMessage {
  type: "usage-ack";
  boot: string;
  seq: number;
}

export type FleetMessage = RegisteredMessage | FleetErrorMessage | RevokeMessage | UsageAckMessage;

/**
 * Close codes of the control channel. A relay reconnects (with backoff) after any of them except
 * `fleetFull` and `notConfigured`, which only an operator can fix, and it retries those slowly.
 */
export const FLEET_CLOSE_CODES = {
  /** The token is missing, malformed, or not signed with any of the Worker's FLEET_KEYS. */
  badToken: 4401,
  /** The token has expired (or is not valid yet: check the relay's clock). */
  tokenExpired: 4402,
  /** The token was used before: every connection needs a fresh one. */
  tokenReplayed: 4403,
  /** The fleet already has FLEET_MAX_RELAYS relays; this relay id is new. */
  fleetFull: 4408,
  /** Too many bad or rate-limited messages. */
  protocolViolation: 4409,
  /** The Worker has no FLEET_KEYS. */
  notConfigured: 4410,
  /** A newer connection with the same relay id took over. */
  replaced: 4411,
} as const;

// ---------------------------------------------------------------------------------------------
// Validation: a message's text in, a typed message or a reason out. Never throws.

export type Parsed<T> = { ok: true; message: T } | { ok: false; code: FleetErrorCode; message: string };

function bad<T>(message: string): Parsed<T> {
  return { ok: false, code: "bad-message", message };
}

function parseObject(text: string): Record<string, unknown> | string {
  if (text.length > FLEET_LIMITS.maxMessageBytes) return `a message is at most ${FLEET_LIMITS.maxMessageBytes} bytes`;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "a message is one JSON object";
  }
  return isPlainObject(value) ? value : "a message is one JSON object";
}

function isCount(value: unknown, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= max;
}

function isRate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 1e15;
}

function isBoundedText(value: unknown, max: number): value is string {
  return typeof value === "string" && value.length <= max && !/[\u0000-\u001f]/.test(value);
}

export function isGeoLocation(value: unknown): value is GeoLocation {
  if (!isPlainObject(value)) return false;
  const { lat, lon } = value as Record<string, unknown>;
  return typeof lat === "number" && typeof lon === "number" && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180;
}

function parseRegister(m: Record<string, unknown>): Parsed<RelayMessage> {
  if (typeof m["relayId"] !== "string" || !isValidRelayId(m["relayId"])) return bad(`register.relayId must be ${RELAY_ID_RULE}`);
  if (!isBoundedText(m["version"], FLEET_LIMITS.maxVersionLength)) return bad(`register.version must be text of at most ${FLEET_LIMITS.maxVersionLength} characters`);
  const urls = m["urls"];
  if (!Array.isArray(urls) || urls.length === 0 || urls.length > FLEET_LIMITS.maxUrls) return bad(`register.urls must list 1 to ${FLEET_LIMITS.maxUrls} turn:/turns: URLs`);
  const badUrl = urls.find((url) => typeof url !== "string" || url.length > FLEET_LIMITS.maxUrlLength || !isTurnUrl(url));
  if (badUrl !== undefined) return bad(`register.urls has ${JSON.stringify(badUrl).slice(0, 80)}: each must be a turn: or turns: URL of at most ${FLEET_LIMITS.maxUrlLength} characters`);
  if (!isBoundedText(m["region"], FLEET_LIMITS.maxRegionLength)) return bad(`register.region must be text of at most ${FLEET_LIMITS.maxRegionLength} characters`);
  if (m["location"] !== null && !isGeoLocation(m["location"])) return bad("register.location must be null or {lat, lon} in degrees (-90..90, -180..180)");
  const capacity = m["capacity"];
  if (!isPlainObject(capacity) || !isCount(capacity["allocations"]) || !isRate(capacity["bps"])) {
    return bad("register.capacity must be {allocations, bps}: whole numbers, 0 for no limit");
  }
  return {
    ok: true,
    message: {
      type: "register",
      relayId: m["relayId"],
      version: m["version"],
      urls: urls as string[],
      region: m["region"],
      location: m["location"] === null ? null : { lat: (m["location"] as GeoLocation).lat, lon: (m["location"] as GeoLocation).lon },
      capacity: { allocations: capacity["allocations"], bps: capacity["bps"] },
    },
  };
}

function parseHeartbeat(m: Record<string, unknown>): Parsed<RelayMessage> {
  if (m["state"] !== "ready" && m["state"] !== "draining") return bad('heartbeat.state must be "ready" or "draining"');
  for (const field of ["allocations", "roomsOmitted"] as const) {
    if (!isCount(m[field])) return bad(`heartbeat.${field} must be a whole number from 0`);
  }
  for (const field of ["bpsIn", "bpsOut", "cpuPercent", "eventLoopDelayMs"] as const) {
    if (!isRate(m[field])) return bad(`heartbeat.${field} must be a number from 0`);
  }
  const rooms = m["rooms"];
  if (!Array.isArray(rooms) || rooms.length > FLEET_LIMITS.maxRooms) return bad(`heartbeat.rooms must list at most ${FLEET_LIMITS.maxRooms} rooms`);
  const loads: RoomLoad[] = [];
  for (const entry of rooms) {
    if (!isPlainObject(entry) || typeof entry["room"] !== "string" || !isValidRoomName(entry["room"]) || !isCount(entry["allocations"])) {
      return bad("heartbeat.rooms entries must be {room, allocations} with a valid room name");
    }
    loads.push({ room: entry["room"], allocations: entry["allocations"] });
  }
  let usage: UsageReport | undefined;
  if (m["usage"] !== undefined) {
    const parsed = parseUsageReport(m["usage"]);
    if (typeof parsed === "string") return bad(parsed);
    usage = parsed;
  }
  return {
    ok: true,
    message: {
      type: "heartbeat",
      state: m["state"],
      allocations: m["allocations"] as number,
      bpsIn: m["bpsIn"] as number,
      bpsOut: m["bpsOut"] as number,
      cpuPercent: m["cpuPercent"] as number,
      eventLoopDelayMs: m["eventLoopDelayMs"] as number,
      rooms: loads,
      roomsOmitted: m["roomsOmitted"] as number,
      ...(usage !== undefined && { usage }),
    },
  };
}

/** A heartbeat's usage report, checked field by field: the report or what is wrong with it. */
export function parseUsageReport(value: unknown): UsageReport | string {
  if (!isPlainObject(value)) return "heartbeat.usage must be {boot, seq, entries}";
  const { boot, seq, entries } = value;
  if (typeof boot !== "string" || !BOOT_ID_PATTERN.test(boot)) return "heartbeat.usage.boot must be 8-64 characters of A-Z a-z 0-9 _ -";
  if (!isCount(seq) || seq === 0) return "heartbeat.usage.seq must be a whole number from 1";
  if (!Array.isArray(entries) || entries.length > FLEET_LIMITS.maxUsageEntries) return `heartbeat.usage.entries must list at most ${FLEET_LIMITS.maxUsageEntries} entries`;
  const parsed: UsageEntry[] = [];
  for (const entry of entries) {
    if (
      !isPlainObject(entry) ||
      typeof entry["room"] !== "string" ||
      !isValidRoomName(entry["room"]) ||
      typeof entry["peerId"] !== "string" ||
      !isValidUserId(entry["peerId"]) ||
      !isCount(entry["bytesToPeers"]) ||
      !isCount(entry["bytesToClient"]) ||
      !isCount(entry["allocationMs"])
    ) {
      return "heartbeat.usage.entries must be {room, peerId, bytesToPeers, bytesToClient, allocationMs}: valid names, whole numbers from 0";
    }
    parsed.push({ room: entry["room"], peerId: entry["peerId"], bytesToPeers: entry["bytesToPeers"], bytesToClient: entry["bytesToClient"], allocationMs: entry["allocationMs"] });
  }
  return { boot, seq, entries: parsed };
}

/** The latest `until` any revocation may have, in unix seconds (a sanity bound: year 5138). */
export const MAX_REVOCATION_UNTIL = 99_999_999_999;

/**
 * One revocation, checked field by field: a room (with or without a peer id) or one TURN username
 * (`<expiry>:<user>`, its shape as checkTurnUsername reads it; its expiry is not judged here), and
 * `until` in whole unix seconds. Either the revocation or what is wrong with it. Never throws.
 */
export function parseRevocation(value: unknown): Revocation | string {
  if (!isPlainObject(value)) return "a revocation is {room, peerId, username, until}";
  const room = value["room"] ?? null;
  const peerId = value["peerId"] ?? null;
  const username = value["username"] ?? null;
  const until = value["until"];
  if (!isCount(until, MAX_REVOCATION_UNTIL) || until === 0) return "revocation.until must be whole unix seconds";
  if (username !== null) {
    if (room !== null || peerId !== null) return "a revocation names a username alone, or a room (and a peer id), not both";
    if (typeof username !== "string" || !checkTurnUsername(username, { acceptExpired: true, maxTtlSeconds: MAX_REVOCATION_UNTIL }).ok) {
      return "revocation.username must be a TURN REST username: <unix-expiry>:<user-id> or <unix-expiry>:<room>/<peer-id>";
    }
    return { room: null, peerId: null, username, until };
  }
  if (typeof room !== "string" || !isValidRoomName(room)) return `revocation.room must be ${ROOM_NAME_RULE} (or give a username)`;
  if (peerId !== null && (typeof peerId !== "string" || !isValidUserId(peerId))) return `revocation.peerId must be null or ${USER_ID_RULE}`;
  return { room, peerId, username: null, until };
}

function parseRevoke(m: Record<string, unknown>): RevokeMessage | null {
  const list = m["revocations"];
  if (!Array.isArray(list) || list.length === 0 || list.length > FLEET_LIMITS.maxRevocationsPerMessage) return null;
  const revocations: Revocation[] = [];
  for (const entry of list) {
    const revocation = parseRevocation(entry);
    if (typeof revocation === "string") return null;
    revocations.push(revocation);
  }
  return { type: "revoke", revocations };
}

/** The fleet's side: a relay's message, checked field by field. */
export function parseRelayMessage(text: string): Parsed<RelayMessage> {
  const m = parseObject(text);
  if (typeof m === "string") return bad(m);
  switch (m["type"]) {
    case "register":
      return parseRegister(m);
    case "heartbeat":
      return parseHeartbeat(m);
    default:
      return bad('a relay message is {"type":"register"|"heartbeat", ...}');
  }
}

/** The relay's side: a fleet message, or null for anything it does not know (a newer Worker's type). */
export function parseFleetMessage(text: string): FleetMessage | null {
  const m = parseObject(text);
  if (typeof m === "string") return null;
  switch (m["type"]) {
    case "registered":
      return typeof m["relayId"] === "string" && isCount(m["heartbeatIntervalMs"]) ? (m as unknown as RegisteredMessage) : null;
    case "error":
      return (FLEET_ERROR_CODES as readonly unknown[]).includes(m["code"]) && typeof m["message"] === "string" ? (m as unknown as FleetErrorMessage) : null;
    case "revoke":
      return parseRevoke(m);
    case "usage-ack":
      return typeof m["boot"] === "string" && BOOT_ID_PATTERN.test(m["boot"]) && isCount(m["seq"]) ? { type: "usage-ack", boot: m["boot"], seq: m["seq"] } : null;
    default:
      return null;
  }
}
