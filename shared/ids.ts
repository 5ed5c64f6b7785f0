/**
 * One rule for user ids everywhere. A join token's `sub` is the peer id in a room and the user id in
 * the TURN credentials issued to that peer, where it follows the ':' of the username: so it never
 * contains ':', and an id outside the rule is refused, never rewritten.
 */
export const USER_ID_PATTERN = /^[A-Za-z0-9_.@+=-]{1,128}$/;
export const MAX_USER_ID_LENGTH = 128;
export const USER_ID_RULE = "1-128 of A-Z a-z 0-9 _ . @ + = - (no ':')";

export function isValidUserId(id: string): boolean {
  return USER_ID_PATTERN.test(id);
}

/** Room names: 1-64 characters of A-Z a-z 0-9 _ . - (no '/', which room-scoped TURN users rely on). */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
export const ROOM_NAME_RULE = "1-64 characters of A-Z a-z 0-9 _ . -";

export function isValidRoomName(name: string): boolean {
  return ROOM_NAME_PATTERN.test(name);
}
