/**
 * The demo room app (dist/web/index.html): the lobby at `/`, a room at `/r/:room` (the Worker has
 * already checked the name). `?relay=1` starts a room relay-only; `#token=<jwt>` joins a Worker that
 * requires join tokens (a fragment, so the token never reaches a server log).
 */
import { isValidRoomName } from "../../shared/signaling/protocol.js";
import { byId, messageOf } from "../common/dom.js";
import type { DemoHook } from "./hook.js";
import { startLobby } from "./lobby.js";
import { RoomApp } from "./room-app.js";

/** `/r/<name>` → the room name; anything else → null (the lobby). */
function roomFromPath(pathname: string): string | null {
  const match = /^\/r\/([^/]+)\/?$/.exec(pathname);
  if (match === null) return null;
  try {
    return decodeURIComponent(match[1]!);
  } catch {
    return null;
  }
}

const lobbyHook: DemoHook = {
  snapshot: () => ({ peerId: null, roomState: "closed", relayOnly: false, localMedia: "none", error: null, peers: [] }),
  sendChat: () => {
    throw new Error("this is the lobby, not a room: open /r/<room> first");
  },
};

function main(): void {
  const room = roomFromPath(location.pathname);
  if (room === null) {
    window.relaykitDemo = lobbyHook;
    startLobby();
    return;
  }
  if (!isValidRoomName(room)) {
    // The Worker refuses such links with a page of its own; this is for copies served some other way.
    window.relaykitDemo = lobbyHook;
    startLobby();
    byId("join-error", HTMLElement).textContent = `“${room}” is not a room name: use 1 to 64 letters, digits, _, . or -.`;
    return;
  }
  const query = new URLSearchParams(location.search);
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token") ?? undefined;
  const relayOnly = query.get("relay") === "1" || query.get("relay") === "true";
  let app: RoomApp;
  try {
    app = new RoomApp(room, { relayOnly, ...(token === undefined ? {} : { token }) });
  } catch (error) {
    const alerts = byId("alerts", HTMLElement);
    byId("room", HTMLElement).hidden = false;
    alerts.textContent = `The room could not start: ${messageOf(error)}`;
    window.relaykitDemo = { ...lobbyHook, snapshot: () => ({ ...lobbyHook.snapshot(), error: alerts.textContent }) };
    return;
  }
  window.relaykitDemo = { snapshot: () => app.snapshot(), sendChat: (text) => app.sendChat(text) };
  app.start();
}

main();
