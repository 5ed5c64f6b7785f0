/**
 * A one-to-many live broadcast over a mesh: one sender sends its camera and microphone to each
 * viewer on a connection of its own; viewers send nothing. One page, two roles:
 *
 *   ?role=sender&room=NAME   captures the camera and microphone and sends them to every viewer
 *   ?role=viewer&room=NAME   receives them (add as many tabs as you like, up to the limit)
 *
 * The sender adds its tracks as `sendonly` transceivers; a viewer adds none, so every transceiver
 * the sender's offer creates on its side answers `recvonly`. A viewer's links to the other viewers
 * carry nothing and are never negotiated. The sender uploads one copy per viewer, so it takes at most
 * MAX_VIEWERS (or `?max=N`, lower); a viewer beyond that is told the broadcast is full. The room
 * itself holds 16 peers (the Worker's ROOM_CAPACITY): one sender and 15 viewers.
 *
 * `?server=<Worker origin>` picks the Worker; by default this page's own origin, which
 * scripts/serve-example.mjs forwards to the local Worker.
 */
import { Mesh, RoomClient, isValidRoomName, type JsonValue } from "@relaykit/client";

/** Viewers one sender serves: each costs the sender one upload of the whole stream. */
const MAX_VIEWERS = 15;

/** What the sender tells a viewer it cannot take. */
type FullNotice = { broadcast: "full"; maxViewers: number };

const params = new URLSearchParams(location.search);
const server = params.get("server") ?? location.origin;
const roomName = params.get("room") ?? "broadcast";
const role = params.get("role") === "sender" ? "sender" : "viewer";
const maxViewers = Math.min(MAX_VIEWERS, Math.max(1, Math.floor(Number(params.get("max") ?? MAX_VIEWERS)) || MAX_VIEWERS));
const video = document.getElementById("video") as HTMLVideoElement;
const statusLine = document.getElementById("status") as HTMLElement;

function status(state: string, text: string): void {
  statusLine.dataset["state"] = state;
  statusLine.textContent = text;
}

function isFullNotice(data: JsonValue): data is FullNotice {
  return typeof data === "object" && data !== null && !Array.isArray(data) && data["broadcast"] === "full";
}

async function sender(room: RoomClient): Promise<void> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  video.srcObject = stream;
  /** The viewers this sender sends to, by peer id. */
  const viewers = new Set<string>();
  const show = () => status("sending", `Sending to ${viewers.size} of at most ${maxViewers} viewers in room ${roomName}.`);
  const mesh = new Mesh({
    room,
    createPeerConnection: (config) => new RTCPeerConnection(config),
    setup: ({ peerId, pc }) => {
      if (viewers.size >= maxViewers) {
        const notice: FullNotice = { broadcast: "full", maxViewers };
        room.signal(peerId, notice);
        return; // nothing added: this link is never negotiated
      }
      viewers.add(peerId);
      for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
      show();
    },
    // Viewers never offer (they add nothing), so the sender need not wait for their first offer.
    firstOfferWaitMs: 0,
  });
  mesh.on("peer-closed", (peerId) => {
    viewers.delete(peerId);
    show();
  });
  await room.connect();
  show();
}

async function viewer(room: RoomClient): Promise<void> {
  video.controls = true; // muted so it may start playing by itself; unmute here
  let senderId: string | null = null;
  const mesh = new Mesh({
    room,
    createPeerConnection: (config) => new RTCPeerConnection(config),
    // Only the sender opens links (to every viewer): viewers hold no connection to each other.
    connectTo: () => false,
    setup: ({ peerId, pc }) => {
      pc.ontrack = ({ streams }) => {
        senderId = peerId;
        if (streams[0] !== undefined && video.srcObject !== streams[0]) video.srcObject = streams[0];
      };
    },
  });
  video.onplaying = () => status("watching", `Watching the broadcast in room ${roomName}.`);
  room.on("signal", (_from, data) => {
    if (!isFullNotice(data)) return;
    status("full", `The broadcast is full (${data.maxViewers} viewers); try again later.`);
    mesh.close();
    room.leave();
  });
  mesh.on("peer-closed", (peerId) => {
    if (peerId === senderId) status("waiting", "The sender left; waiting for it to come back…");
  });
  await room.connect();
  if (statusLine.dataset["state"] !== "full") status("waiting", `In room ${roomName}; waiting for the sender's video…`);
}

async function main(): Promise<void> {
  if (!isValidRoomName(roomName)) return status("error", "Room names are 1 to 64 letters, digits, _, . or -.");
  const room = new RoomClient({ server, room: roomName });
  room.on("error", ({ code, message }) => {
    if (code === "room-full") status("full", "The broadcast is full: the room has no place left.");
    else status("error", `Signaling: ${message}`);
  });
  status("joining", `Joining room ${roomName} as the ${role}…`);
  await (role === "sender" ? sender(room) : viewer(room));
}

main().catch((error: unknown) => status("error", `Could not start: ${error instanceof Error ? error.message : String(error)}`));
