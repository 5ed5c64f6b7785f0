/**
 * Joins a room of a Worker that requires join tokens: asks this page's backend (server.ts) for a
 * token, then connects with it. The Worker takes the peer id and metadata from the token; the page
 * lists who else is in the room. (A call would add a Mesh, as in the other examples.)
 */
import { RoomClient, type PeerInfo } from "@relaykit/client";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function status(state: string, text: string): void {
  $("status").dataset["state"] = state;
  $("status").textContent = text;
}

function showPeers(peers: Iterable<PeerInfo>): void {
  $("peers").replaceChildren(
    ...Array.from(peers, (peer) => {
      const item = document.createElement("li");
      item.dataset["peer"] = peer.id;
      item.textContent = `${String(peer.meta["name"] ?? peer.id)} is here`;
      return item;
    }),
  );
}

/** A fresh token from this page's backend, and the Worker it is for. */
async function fetchToken(roomName: string, name: string): Promise<{ token: string; server: string }> {
  const answer = await fetch(`/token?${new URLSearchParams({ room: roomName, name })}`);
  const body = (await answer.json()) as { token?: string; server?: string; error?: string };
  if (!answer.ok || body.token === undefined || body.server === undefined) throw new Error(body.error ?? `the backend answered ${answer.status}`);
  return { token: body.token, server: body.server };
}

async function join(roomName: string, name: string): Promise<void> {
  status("joining", "Asking the backend for a token…");
  const first = await fetchToken(roomName, name);
  let unused: string | null = first.token;
  const room = new RoomClient({
    server: first.server,
    room: roomName,
    // Tokens are short-lived: a function gets a fresh one for every reconnection (and for the TURN
    // credential refreshes, which present it too). The first one is already here.
    token: async () => {
      const token = unused ?? (await fetchToken(roomName, name)).token;
      unused = null;
      return token;
    },
  });
  room.on("peer-joined", () => showPeers(room.peers.values()));
  room.on("peer-left", () => showPeers(room.peers.values()));
  room.on("error", ({ message }) => status("error", message));
  const welcome = await room.connect();
  status("joined", `Joined ${roomName} as ${welcome.peerId}.`);
  showPeers(room.peers.values());
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  $<HTMLFormElement>("join").hidden = true;
  join($<HTMLInputElement>("room").value.trim(), $<HTMLInputElement>("name").value.trim()).catch((error: unknown) =>
    status("error", `Could not join: ${error instanceof Error ? error.message : String(error)}`),
  );
});
