/**
 * Which TURN servers a caller gets, for `/v1/ice-servers`, `/v1/turn-credentials` and the welcome:
 *
 * - no FLEET_KEYS, or no relay registered: TURN_URLS, as before the fleet;
 * - relays registered: the best FLEET_PICK eligible ones for the caller's location, each its own
 *   RTCIceServer entry with the same credential;
 * - relays registered but none eligible: TURN_URLS if set, else nothing (`no-relay-available`).
 */
import type { GeoLocation } from "../../shared/fleet/protocol.js";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import { iceServersForRelays, stunUrlsFromTurnUrls, type IceServersResponse } from "../../shared/turn/ice-servers.js";
import { parseLocation, type FleetConfig, type TurnConfig } from "../config.js";
import type { Env } from "../env.js";
import { FLEET_OBJECT_NAME } from "./fleet-object.js";
import { pickRelays, type FleetRelay } from "./selection.js";
import { fleetSnapshots, type FleetSnapshotCache } from "./snapshot-cache.js";

/** When to ask again after `no-relay-available`: a relay coming back shows within one heartbeat. */
export const NO_RELAY_RETRY_AFTER_SECONDS = 5;

/** The dev/test header with the caller's location, honoured only under FLEET_LOCATION_HEADER=on. */
export const LOCATION_HEADER = "X-Relaykit-Location";

export type RelayChoice =
  | { kind: "fleet"; relays: FleetRelay[] }
  | { kind: "static"; turnUrls: string[]; stunUrls: string[] }
  | { kind: "none"; message: string };

/** Where the caller is: the header (dev/test only), else Cloudflare's request.cf, else FLEET_DEFAULT_LOCATION. */
export function callerLocation(request: Request, fleet: FleetConfig | null): GeoLocation | null {
  if (fleet === null) return null;
  if (fleet.locationHeader) {
    const header = request.headers.get(LOCATION_HEADER);
    const fromHeader = header === null ? null : parseLocation(header);
    if (fromHeader !== null) return fromHeader;
  }
  const cf = (request as { cf?: { latitude?: unknown; longitude?: unknown } }).cf;
  if (typeof cf?.latitude === "string" && typeof cf.longitude === "string") {
    const fromCf = parseLocation(`${cf.latitude},${cf.longitude}`);
    if (fromCf !== null) return fromCf;
  }
  return fleet.defaultLocation;
}

function staticOrNone(turn: TurnConfig, why: string): RelayChoice {
  if (turn.turnUrls.length > 0) return { kind: "static", turnUrls: turn.turnUrls, stunUrls: turn.stunUrls };
  return { kind: "none", message: `${why}, and this Worker has no TURN_URLS to fall back on; retry in ${NO_RELAY_RETRY_AFTER_SECONDS} s` };
}

/** The fleet's relays as this isolate last saw them (at most SNAPSHOT_MAX_AGE_MS old); null if it could not ask. */
export function fleetRelays(env: Env, cache: FleetSnapshotCache = fleetSnapshots): Promise<{ relays: FleetRelay[] } | null> {
  return cache.get(async () => env.FLEET.get(env.FLEET.idFromName(FLEET_OBJECT_NAME)).snapshot());
}

/** Picks from `relays` (a snapshot), leaving out `excludeId`; falls back to TURN_URLS as the module says. */
export function choose(relays: readonly FleetRelay[] | null, turn: TurnConfig, location: GeoLocation | null, pick: number, now: number, excludeId?: string): RelayChoice {
  if (relays === null) return staticOrNone(turn, "the relay fleet could not be asked");
  if (relays.length === 0) return staticOrNone(turn, "no relay is registered with this Worker's fleet");
  const picked = pickRelays(relays, location, pick, now, excludeId);
  if (picked.length > 0) return { kind: "fleet", relays: picked };
  return staticOrNone(turn, "no relay of this Worker's fleet is live, ready and below capacity");
}

export async function chooseRelays(env: Env, turn: TurnConfig, fleet: FleetConfig | null, location: GeoLocation | null): Promise<RelayChoice> {
  if (fleet === null) return staticOrNone(turn, "this Worker has no relay fleet (FLEET_KEYS)");
  return choose((await fleetRelays(env))?.relays ?? null, turn, location, fleet.pick, Date.now());
}

type Servers = Exclude<RelayChoice, { kind: "none" }>;

/**
 * The RTCIceServer list: one `stun:` entry (from the picked relays' `turn:` URLs, or STUN_URLS for
 * TURN_URLS), then one TURN entry per relay, all with the same credential.
 */
export function iceServersFor(choice: Servers, credential: TurnCredential): IceServersResponse {
  const turnEntries = choice.kind === "fleet" ? choice.relays.map((relay) => relay.urls) : [choice.turnUrls];
  const stunUrls = choice.kind === "fleet" ? stunUrlsFromTurnUrls(turnEntries.flat()) : choice.stunUrls;
  return iceServersForRelays(credential, turnEntries, stunUrls);
}

/** The TURN REST draft's `uris`: every picked relay's URLs, best relay first. */
export function turnUrisFor(choice: Servers): string[] {
  return choice.kind === "fleet" ? choice.relays.flatMap((relay) => relay.urls) : [...choice.turnUrls];
}

/** The same servers with another credential (a room re-mints for the peer id it really assigned). */
export function withCredential(ice: IceServersResponse, credential: TurnCredential): IceServersResponse {
  return {
    iceServers: ice.iceServers.map((server) => (server.username === undefined ? server : { ...server, username: credential.username, credential: credential.password })),
    ttl: credential.ttl,
    expiresAt: new Date(credential.expiresAt * 1000).toISOString(),
  };
}
