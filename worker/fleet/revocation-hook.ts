/**
 * Where moderation in a room (worker/room/signaling-room.ts) hands a revocation to the relay fleet:
 * after a kick, a ban or a room close, the TURN credentials of `<room>/<peerId>` (or of every member of
 * `room` when `peerId` is absent) stop working on every relay the fleet steers: the fleet object
 * keeps the revocation, pushes it to every connected relay and replays it to relays that connect
 * later (worker/fleet/fleet-object.ts `revoke`). A Worker without a fleet (no FLEET_KEYS) has no
 * relay to tell: its rooms still kick, and the revocation is logged as not delivered.
 */
import { MAX_CREDENTIAL_TTL_SECONDS } from "../../shared/turn/credentials.js";
import { readFleetConfig } from "../config.js";
import type { Env } from "../env.js";
import { FLEET_OBJECT_NAME } from "./fleet-object.js";

export interface RoomRevocation {
  room: string;
  /** One member of the room; absent: every member (the room was closed). */
  peerId?: string;
  /**
   * Unix seconds: the revocation covers credentials that expire at or before it. Room members get
   * credentials of at most TURN_TTL, so `now + TURN_TTL` covers every one minted before the
   * revocation and none minted after (a kicked peer that rejoins gets fresh ones that work); a ban
   * pushes it to the ban's end.
   */
  until: number;
}

export async function revokeRoomCredentials(env: Env, revocation: RoomRevocation): Promise<void> {
  if (readFleetConfig(env) === null) {
    console.log(`revocation of ${JSON.stringify(revocation)} not delivered: this Worker has no relay fleet (FLEET_KEYS)`);
    return;
  }
  const fleet = env.FLEET.get(env.FLEET.idFromName(FLEET_OBJECT_NAME));
  // No credential lives longer than MAX_CREDENTIAL_TTL_SECONDS, so no revocation needs to (a longer
  // ban keeps the peer out of the room; the room's own bans hold it).
  const until = Math.min(revocation.until, Math.floor(Date.now() / 1000) + MAX_CREDENTIAL_TTL_SECONDS);
  const result = await fleet.revoke({ room: revocation.room, peerId: revocation.peerId ?? null, until });
  if (!result.ok) throw new Error(`the fleet refused the revocation of ${JSON.stringify(revocation)}: ${result.code}: ${result.message}`);
}
