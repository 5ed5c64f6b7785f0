/**
 * What the admin API shows and answers about a room, built from the room's storage: pure functions
 * from roster rows and bans to the JSON shapes of shared/signaling/protocol.ts.
 */
import type { KickResult, RoomView, UsageFigures } from "../../shared/signaling/protocol.js";
import type { Ban } from "./bans.js";
import type { PeerRecord } from "./roster.js";

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function roomView(room: string, peers: readonly PeerRecord[], bans: readonly Ban[], usage: UsageFigures): RoomView {
  return {
    room,
    peers: peers.map((peer) => ({
      id: peer.id,
      meta: peer.meta,
      joinedAt: iso(peer.joinedAt),
      connected: peer.connId !== null,
      awaySince: iso(peer.awaySince),
    })),
    bans: bans.map((ban) => ({ peerId: ban.peerId, until: new Date(ban.until).toISOString() })),
    usage,
  };
}

/** What a kick answers: done, or why not (the HTTP layer turns `code` into a status). */
export type KickOutcome =
  | { ok: true; result: KickResult }
  | { ok: false; code: "peer-not-found" | "too-many-bans"; message: string };

/** The words a kicked peer reads in its `error` frame before the 4004 close. */
export function kickedMessage(bannedUntil: number | null): string {
  return bannedUntil === null
    ? "the room's operator removed you from the room; do not reconnect (your resume token no longer works)"
    : `the room's operator removed you from the room and banned this peer id until ${new Date(bannedUntil).toISOString()}; do not rejoin before then`;
}

/** The words a banned peer reads when its join is refused. */
export function bannedMessage(bannedUntil: number): string {
  return `this peer id is banned from the room until ${new Date(bannedUntil).toISOString()}; do not rejoin before then`;
}

/**
 * The `until` of a revocation (worker/fleet/revocation-hook.ts): the latest expiry of a member's
 * credential minted up to `now`, or the ban's end if later.
 */
export function revocationUntil(now: number, longestTtlSeconds: number, bannedUntil: number | null): number {
  const credentialsExpire = Math.ceil(now / 1000) + longestTtlSeconds;
  return bannedUntil === null ? credentialsExpire : Math.max(credentialsExpire, Math.ceil(bannedUntil / 1000));
}
