/**
 * The lobby at `/`: create a room with a random name, or join one by name (or pasted link).
 */
import { isValidRoomName } from "../../shared/signaling/protocol.js";
import { byId } from "../common/dom.js";

const NAME_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"; // no 0/o, 1/l: names get read aloud
const NAME_GROUPS = 3;
const GROUP_LENGTH = 4;

/** A random room name like `k7qd-mx3a-w9pe` (60 bits): hard to guess, easy to read out. */
export function randomRoomName(): string {
  const bytes = new Uint8Array(NAME_GROUPS * GROUP_LENGTH);
  crypto.getRandomValues(bytes);
  const letters = Array.from(bytes, (byte) => NAME_ALPHABET[byte % NAME_ALPHABET.length]!);
  const groups: string[] = [];
  for (let i = 0; i < NAME_GROUPS; i++) groups.push(letters.slice(i * GROUP_LENGTH, (i + 1) * GROUP_LENGTH).join(""));
  return groups.join("-");
}

/** What the person typed: a room name, or a link to a room (`…/r/<name>`). */
export function roomNameFromInput(input: string): string {
  const trimmed = input.trim();
  const match = /\/r\/([^/?#]+)/.exec(trimmed);
  if (match === null) return trimmed;
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    return match[1]!;
  }
}

export function roomPath(name: string): string {
  return `/r/${encodeURIComponent(name)}`;
}

export function startLobby(): void {
  byId("lobby", HTMLElement).hidden = false;
  const joinError = byId("join-error", HTMLElement);
  const nameInput = byId("join-name", HTMLInputElement);
  byId("create-room", HTMLButtonElement).addEventListener("click", () => location.assign(roomPath(randomRoomName())));
  byId("join-form", HTMLFormElement).addEventListener("submit", (event) => {
    event.preventDefault();
    const name = roomNameFromInput(nameInput.value);
    if (!isValidRoomName(name)) {
      joinError.textContent = name === "" ? "Type a room name first." : `“${name}” is not a room name: use 1 to 64 letters, digits, _, . or -.`;
      nameInput.setAttribute("aria-invalid", "true");
      nameInput.focus();
      return;
    }
    location.assign(roomPath(name));
  });
}
