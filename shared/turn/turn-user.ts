/**
 * The user part of a TURN REST username (what follows `<expiry>:`), in one of two forms:
 *
 *   <user-id>          a plain user: what an app backend asks for with `?user=`, or a random id
 *   <room>/<peer-id>   a room member: the Worker mints this for a peer of a room (join token, or an
 *                      open room), so a relay can count, report and end allocations per room and peer
 *
 * Unambiguous by construction: '/' is in neither the room-name nor the user-id alphabet (shared/ids.ts),
 * so a plain user id can never read as a room member, and a room member splits at its only '/'.
 * coturn's `use-auth-secret` signs and checks the whole username and never parses the user part, so
 * both forms work there unchanged. At most 64 + 1 + 128 = 193 characters, far under STUN's 513-byte USERNAME.
 */
import { MAX_USER_ID_LENGTH, ROOM_NAME_RULE, USER_ID_RULE, isValidRoomName, isValidUserId } from "../ids.js";

export const ROOM_MEMBER_SEPARATOR = "/";
/** The longest user part either form can have. */
export const MAX_TURN_USER_LENGTH = 64 + ROOM_MEMBER_SEPARATOR.length + MAX_USER_ID_LENGTH;

export type TurnUser = { kind: "user"; userId: string } | { kind: "room-member"; room: string; peerId: string };

/** A room member's user part, checked; throws a TypeError naming the rule it breaks. */
export function roomMemberUser(room: string, peerId: string): string {
  if (!isValidRoomName(room)) throw new TypeError(`room ${JSON.stringify(room.slice(0, 70))} is not a room name: use ${ROOM_NAME_RULE}`);
  if (!isValidUserId(peerId)) throw new TypeError(`peer id ${JSON.stringify(peerId.slice(0, 140))} is not allowed: use ${USER_ID_RULE}`);
  return `${room}${ROOM_MEMBER_SEPARATOR}${peerId}`;
}

/** Reads a user part in either form; null when it is neither. */
export function parseTurnUser(userPart: string): TurnUser | null {
  if (userPart.length > MAX_TURN_USER_LENGTH) return null;
  const slash = userPart.indexOf(ROOM_MEMBER_SEPARATOR);
  if (slash < 0) return isValidUserId(userPart) ? { kind: "user", userId: userPart } : null;
  const room = userPart.slice(0, slash);
  const peerId = userPart.slice(slash + 1);
  return isValidRoomName(room) && isValidUserId(peerId) ? { kind: "room-member", room, peerId } : null;
}

/** True for a user part in either form. */
export function isValidTurnUser(userPart: string): boolean {
  return parseTurnUser(userPart) !== null;
}
