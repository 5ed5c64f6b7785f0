/**
 * A 1:1 call with file transfer: both people open this page and join a room by name; they see and
 * hear each other (camera and microphone; without them the call is data only), and either picks a
 * file and sends it to the other over an RTCDataChannel of the same connection, in chunks, pausing
 * whenever the channel's send buffer is full. Both sides show progress; the receiver checks the
 * SHA-256 of what arrived against the sender's and offers the file for download. (More than two in
 * the room: the file goes to each, the last one to connect is the one seen.)
 *
 * On the channel, per file: a JSON `start` ({ name, size, sha256 }), the chunks as binary messages, a
 * JSON `end`; the receiver answers with a JSON `received` carrying the SHA-256 it computed.
 *
 * `?server=<Worker origin>` picks the Worker; by default this page's own origin, which
 * scripts/serve-example.mjs forwards to the local Worker. `?room=<name>` fills in the room.
 */
import { Mesh, RoomClient, isValidRoomName } from "@relaykit/client";

/** 16 KiB: the message size every browser's data channels deliver whole. */
const CHUNK_BYTES = 16 * 1024;
/**
 * Stop queueing while this much waits in the channel's send buffer (a whole file queued at once would
 * sit in memory twice, and the progress bar would say nothing)…
 */
const HIGH_WATER_BYTES = 256 * 1024;
/** …and go on when it has drained to this (the channel's bufferedAmountLowThreshold). */
const LOW_WATER_BYTES = 64 * 1024;
/** Both sides hold the whole file in memory (the sender to hash it, the receiver to offer it). */
const MAX_FILE_BYTES = 256 * 1024 * 1024;

type Control =
  | { type: "start"; name: string; size: number; sha256: string }
  | { type: "end" }
  | { type: "received"; sha256: string };

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const server = params.get("server") ?? location.origin;
$<HTMLInputElement>("room").value = params.get("room") ?? "";

/** The open channel to each peer, by peer id. */
const channels = new Map<string, RTCDataChannel>();
/** The sender's rows waiting for the receiver's `received`, by peer id. */
const pendingAcks = new Map<string, (sha256: string) => void>();
let sending = false;

async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function formatBytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

/** One transfer's box: a title, a progress bar, a line of text. */
function transferRow(direction: "in" | "out", peerId: string, name: string, size: number) {
  const row = document.createElement("div");
  row.className = "transfer";
  row.dataset["direction"] = direction;
  row.dataset["peer"] = peerId;
  const title = document.createElement("div");
  title.textContent = `${direction === "out" ? "To" : "From"} ${peerId}: ${name} (${formatBytes(size)})`;
  const progress = document.createElement("progress");
  progress.max = size;
  progress.value = 0;
  const text = document.createElement("div");
  text.className = "hash";
  row.append(title, progress, text);
  $("transfers").prepend(row);
  return {
    row,
    progress: (bytes: number) => (progress.value = Math.min(bytes, size)),
    say: (line: string) => (text.textContent = line),
  };
}

/** Resolves once the channel's send buffer drained below its threshold; rejects if it closes. */
function drained(channel: RTCDataChannel): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      channel.removeEventListener("bufferedamountlow", done);
      channel.removeEventListener("close", closed);
      resolve();
    };
    const closed = () => {
      channel.removeEventListener("bufferedamountlow", done);
      reject(new Error("the channel closed (the other side left?)"));
    };
    channel.addEventListener("bufferedamountlow", done);
    channel.addEventListener("close", closed, { once: true });
  });
}

async function sendFile(peerId: string, channel: RTCDataChannel, file: File, data: ArrayBuffer, sha256: string): Promise<void> {
  const ui = transferRow("out", peerId, file.name, file.size);
  ui.row.dataset["sha256"] = sha256;
  ui.say(`sending… SHA-256 ${sha256}`);
  const start: Control = { type: "start", name: file.name, size: file.size, sha256 };
  try {
    channel.send(JSON.stringify(start));
    for (let offset = 0; offset < data.byteLength; offset += CHUNK_BYTES) {
      if (channel.bufferedAmount > HIGH_WATER_BYTES) await drained(channel);
      channel.send(data.slice(offset, offset + CHUNK_BYTES));
      // What has left the send buffer, not just what was queued.
      ui.progress(Math.min(offset + CHUNK_BYTES, data.byteLength) - channel.bufferedAmount);
    }
    channel.send(JSON.stringify({ type: "end" } satisfies Control));
  } catch (error) {
    ui.say(`failed: ${error instanceof Error ? error.message : String(error)}`);
    return;
  }
  ui.say(`sent, waiting for the other side's hash… SHA-256 ${sha256}`);
  pendingAcks.set(peerId, (theirs) => {
    ui.progress(file.size);
    ui.row.dataset["state"] = theirs === sha256 ? "delivered" : "corrupted";
    ui.say(theirs === sha256 ? `delivered, SHA-256 ${sha256} matches` : `ARRIVED DIFFERENT: sent ${sha256}, they got ${theirs}`);
  });
}

/** Reads one peer's channel: a `start`, chunks, an `end`; then checks and offers the file. */
function receiveOn(peerId: string, channel: RTCDataChannel): void {
  let incoming: { start: Extract<Control, { type: "start" }>; chunks: ArrayBuffer[]; bytes: number; ui: ReturnType<typeof transferRow> } | null = null;
  channel.binaryType = "arraybuffer";
  channel.onmessage = async ({ data }: MessageEvent<string | ArrayBuffer>) => {
    if (data instanceof ArrayBuffer) {
      if (incoming === null) return;
      incoming.chunks.push(data);
      incoming.bytes += data.byteLength;
      incoming.ui.progress(incoming.bytes);
      return;
    }
    const control = JSON.parse(data) as Control;
    if (control.type === "start") {
      const ui = transferRow("in", peerId, control.name, control.size);
      ui.say("receiving…");
      incoming = { start: control, chunks: [], bytes: 0, ui };
    } else if (control.type === "end" && incoming !== null) {
      const { start, chunks, bytes, ui } = incoming;
      incoming = null;
      const blob = new Blob(chunks);
      const sha256 = await sha256Hex(await blob.arrayBuffer());
      channel.send(JSON.stringify({ type: "received", sha256 } satisfies Control));
      const intact = bytes === start.size && sha256 === start.sha256;
      ui.row.dataset["sha256"] = sha256;
      ui.row.dataset["state"] = intact ? "intact" : "corrupted";
      ui.say(`${intact ? "arrived intact" : `ARRIVED DIFFERENT from the sender's ${start.sha256}`}: SHA-256 ${sha256}`);
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = start.name;
      link.textContent = `Download ${start.name}`;
      ui.row.append(link);
    } else if (control.type === "received") {
      pendingAcks.get(peerId)?.(control.sha256);
      pendingAcks.delete(peerId);
    }
  };
}

function showPeers(): void {
  const open = [...channels.values()].filter((channel) => channel.readyState === "open").length;
  $("status").textContent = open === 0 ? "In the room; waiting for someone to join the same room…" : `Connected to ${open} peer${open === 1 ? "" : "s"}.`;
  $<HTMLButtonElement>("send-button").disabled = open === 0 || sending;
}

/** The camera and microphone, or null (none, or not allowed): the call is then data only. */
async function localMedia(): Promise<MediaStream | null> {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    $<HTMLVideoElement>("local").srcObject = stream;
    return stream;
  } catch (error) {
    $("media").textContent = `No camera or microphone (${error instanceof Error ? error.message : String(error)}): files only.`;
    return null;
  }
}

async function join(roomName: string): Promise<void> {
  const media = await localMedia();
  const room = new RoomClient({ server, room: roomName });
  const mesh = new Mesh({
    room,
    createPeerConnection: (config) => new RTCPeerConnection(config),
    setup: ({ peerId, pc }) => {
      if (media !== null) for (const track of media.getTracks()) pc.addTrack(track, media);
      pc.ontrack = ({ streams }) => {
        const remote = $<HTMLVideoElement>("remote");
        if (streams[0] !== undefined && remote.srcObject !== streams[0]) remote.srcObject = streams[0];
      };
      // Negotiated with the same id on both sides: the channel exists as soon as the link does.
      const channel = pc.createDataChannel("file", { negotiated: true, id: 0, ordered: true });
      channel.bufferedAmountLowThreshold = LOW_WATER_BYTES;
      channel.onopen = channel.onclose = showPeers;
      channels.set(peerId, channel);
      receiveOn(peerId, channel);
    },
  });
  mesh.on("peer-closed", (peerId) => {
    channels.delete(peerId);
    showPeers();
  });
  room.on("error", ({ message }) => ($("status").textContent = `Signaling: ${message}`));
  $("status").textContent = `Joining ${roomName}…`;
  room.connect().then(
    () => {
      $("send").hidden = false;
      showPeers();
    },
    (error: unknown) => ($("status").textContent = `Could not join: ${error instanceof Error ? error.message : String(error)}`),
  );
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $<HTMLInputElement>("room").value.trim();
  if (!isValidRoomName(name)) return void ($("status").textContent = "Room names are 1 to 64 letters, digits, _, . or -.");
  $<HTMLFormElement>("join").hidden = true;
  void join(name);
});

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = $<HTMLInputElement>("file").files?.[0];
  if (file === undefined) return;
  if (file.size > MAX_FILE_BYTES) return void ($("status").textContent = `This example sends files up to ${formatBytes(MAX_FILE_BYTES)}.`);
  sending = true;
  showPeers();
  try {
    const data = await file.arrayBuffer();
    const sha256 = await sha256Hex(data);
    const open = [...channels].filter(([, channel]) => channel.readyState === "open");
    await Promise.all(open.map(([peerId, channel]) => sendFile(peerId, channel, file, data, sha256)));
  } finally {
    sending = false;
    showPeers();
  }
});
