/**
 * Where moderation in a room (worker/room/signaling-room.ts) hands a revocation to the relay fleet:
 * after a kick, a ban or a room close, the TURN credentials of `<room>/<peerId>` (or of every member of
 * `room` when `peerId` is absent) must stop working on every relay, and stay refused until `until`.
 *
 * For now this only logs; the fleet object will push it to every connected relay (issue 15).
 */
import type { Env } from "../env.js";

export interface RoomRevocation {
  room: string;
  /** One member of the room; absent: every member (the room was closed). */
  peerId?: string;
  /**
   * Unix seconds until which the covered credentials stay refused: the later of the ban's end and
   * the latest expiry any credential minted before the revocation can have (now + TURN_MAX_TTL).
   */
  until: number;
}

export async function revokeRoomCredentials(env: Env, revocation: RoomRevocation): Promise<void> {
  void env;
  console.log(`revocation: ${JSON.stringify(revocation)} (not yet pushed to relays)`);
}
