/**
 * A room at `/r/:room`: joins through the client library (`RoomClient` for signaling, `Mesh` for a
 * peer connection to everyone else with perfect negotiation), sends the camera and microphone,
 * shows a tile per peer with the path its call took and its bitrate, and runs a small text chat
 * over a data channel. Everything that goes wrong is said on the page.
 */
import { Mesh, RoomClient, type PeerLink, type RoomError, type RoomState } from "../../shared/client/index.js";
import { byId, element, messageOf } from "../common/dom.js";
import type { DemoHook, DemoPeerSnapshot, DemoSnapshot } from "./hook.js";
import { openLocalMedia } from "./media.js";
import { describePair, inboundKbps, summarizeStats, type LinkStats, type StatsEntry } from "./stats.js";
import { Tile } from "./tile.js";

/** How often each peer's stats are read. */
const STATS_INTERVAL_MS = 1_000;
/** Reconnect quickly at first, then at most every 10 s while the Worker is unreachable. */
const RECONNECT = { initialDelayMs: 500, maxDelayMs: 10_000 };
/** The chat keeps this many messages per peer (and on screen); older ones are dropped. */
const CHAT_HISTORY_LIMIT = 500;
const CHAT_MAX_LENGTH = 1_000;
/** The chat channel every peer creates the same way, so no offer has to announce it. */
const CHAT_CHANNEL = { label: "chat", init: { negotiated: true, id: 0 } } as const;

type Link = PeerLink<RTCPeerConnection>;

interface PeerView {
  readonly id: string;
  readonly link: Link;
  readonly tile: Tile;
  readonly stream: MediaStream;
  readonly chat: RTCDataChannel;
  readonly chatReceived: string[];
  stats: LinkStats | null;
  bitrateKbps: number;
  polling: boolean;
}

type AlertTopic = "media" | "room" | "ice-servers" | "relay";

function shortId(peerId: string): string {
  return peerId.length > 8 ? peerId.slice(0, 8) : peerId;
}

export class RoomApp implements DemoHook {
  private readonly roomName: string;
  private readonly room: RoomClient;
  private readonly mesh: Mesh<RTCPeerConnection>;
  private readonly peers = new Map<string, PeerView>();
  private readonly alerts = new Map<AlertTopic, { text: string; warning: boolean }>();
  private readonly selfTile = new Tile("You", { self: true });
  private localStream: MediaStream | null = null;
  private localMedia: "camera" | "none" = "none";
  private relayOnly: boolean;
  private statsTimer: ReturnType<typeof setInterval> | undefined;

  private readonly ui = {
    title: byId("room-title", HTMLElement),
    state: byId("room-state", HTMLElement),
    alerts: byId("alerts", HTMLElement),
    tiles: byId("tiles", HTMLElement),
    mic: byId("toggle-mic", HTMLButtonElement),
    camera: byId("toggle-camera", HTMLButtonElement),
    relayOnly: byId("relay-only", HTMLInputElement),
    copyLink: byId("copy-link", HTMLButtonElement),
    copyStatus: byId("copy-status", HTMLElement),
    chatLog: byId("chat-log", HTMLOListElement),
    chatForm: byId("chat-form", HTMLFormElement),
    chatInput: byId("chat-input", HTMLInputElement),
  };

  constructor(roomName: string, options: { relayOnly: boolean; token?: string }) {
    this.roomName = roomName;
    this.relayOnly = options.relayOnly;
    this.room = new RoomClient({
      server: location.origin,
      room: roomName,
      reconnect: RECONNECT,
      ...(options.token === undefined ? {} : { token: options.token }),
    });
    this.mesh = new Mesh<RTCPeerConnection>({
      room: this.room,
      createPeerConnection: (config) => new RTCPeerConnection(config),
      iceTransportPolicy: this.relayOnly ? "relay" : "all",
      setup: (link) => this.addPeer(link),
    });
  }

  start(): void {
    byId("room", HTMLElement).hidden = false;
    document.title = `${this.roomName} · relaykit`;
    this.ui.title.textContent = `Room ${this.roomName}`;
    this.ui.state.hidden = false;
    this.ui.tiles.append(this.selfTile.root);
    this.selfTile.setDetails("connecting your camera…");
    this.ui.relayOnly.checked = this.relayOnly;
    this.bindControls();

    this.mesh.on("peer-closed", (peerId) => this.removePeer(peerId));
    this.mesh.on("connection-state", (peerId, state) => this.onConnectionState(peerId, state));
    this.mesh.on("error", (peerId, error) => console.warn(`relaykit: the connection to ${peerId}: ${error.message}`));
    this.room.on("state", (state) => this.onRoomState(state));
    this.room.on("error", (error) => this.onRoomError(error));
    this.room.on("welcome", () => this.checkRelayAvailable());
    this.room.on("ice-servers", () => {
      this.setAlert("ice-servers", null);
      this.checkRelayAvailable();
    });
    this.onRoomState(this.room.state);

    void this.startMedia();
    // Failures also arrive as `error` events, which put them on the page.
    this.room.connect().catch(() => {});
    this.statsTimer = setInterval(() => this.pollAllStats(), STATS_INTERVAL_MS);
    // Leaving (rather than dropping) tells the others at once instead of after the resume grace.
    addEventListener("pagehide", () => this.stop());
  }

  /** Leaves the room and releases the camera. */
  stop(): void {
    this.room.leave();
    this.release();
  }

  /** Ends the calls and turns the camera off: the session is over for good. */
  private release(): void {
    clearInterval(this.statsTimer);
    this.mesh.close();
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    this.ui.mic.disabled = this.ui.camera.disabled = true;
    this.selfTile.setDetails(this.localStream === null ? "" : "camera and microphone released");
  }

  // -- the test hook ------------------------------------------------------------------------------

  snapshot(): DemoSnapshot {
    const peers: DemoPeerSnapshot[] = [...this.peers.values()].map((view) => ({
      id: view.id,
      connectionState: view.link.pc.connectionState,
      pair: view.stats?.pair ?? null,
      framesDecoded: view.stats?.framesDecoded ?? 0,
      bitrateKbps: view.bitrateKbps,
      chatState: view.chat.readyState,
      chatReceived: [...view.chatReceived],
    }));
    return {
      peerId: this.room.peerId,
      roomState: this.room.state,
      relayOnly: this.relayOnly,
      localMedia: this.localMedia,
      error: this.alerts.size === 0 ? null : [...this.alerts.values()].map((alert) => alert.text).join(" "),
      peers,
    };
  }

  sendChat(text: string): void {
    const message = text.trim().slice(0, CHAT_MAX_LENGTH);
    if (message === "") return;
    let delivered = 0;
    for (const view of this.peers.values()) {
      if (view.chat.readyState !== "open") continue;
      view.chat.send(message);
      delivered++;
    }
    this.appendChat("You", delivered > 0 ? message : `${message} (not delivered: nobody is connected yet)`);
  }

  // -- peers --------------------------------------------------------------------------------------

  /** Runs in the mesh's `setup`, before the link negotiates: tracks and the chat channel go in now. */
  private addPeer(link: Link): void {
    const { pc, peerId } = link;
    const stream = new MediaStream();
    const tile = new Tile(shortId(peerId), { self: false });
    tile.setState(pc.connectionState);
    tile.setDetails("negotiating…");
    if (this.localStream !== null) for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    const chat = pc.createDataChannel(CHAT_CHANNEL.label, CHAT_CHANNEL.init);
    const view: PeerView = { id: peerId, link, tile, stream, chat, chatReceived: [], stats: null, bitrateKbps: 0, polling: false };
    this.peers.set(peerId, view);

    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      event.track.addEventListener("ended", () => stream.removeTrack(event.track));
      tile.show(stream);
    };
    chat.onmessage = (event: MessageEvent<unknown>) => {
      if (typeof event.data !== "string") return;
      const text = event.data.slice(0, CHAT_MAX_LENGTH);
      view.chatReceived.push(text);
      if (view.chatReceived.length > CHAT_HISTORY_LIMIT) view.chatReceived.shift();
      this.appendChat(shortId(peerId), text);
    };
    chat.onopen = () => this.renderPeer(view);
    chat.onclose = () => this.renderPeer(view);
    this.ui.tiles.append(tile.root);
  }

  private removePeer(peerId: string): void {
    const view = this.peers.get(peerId);
    if (view === undefined) return;
    this.peers.delete(peerId);
    view.chat.onmessage = view.chat.onopen = view.chat.onclose = null;
    view.link.pc.ontrack = null;
    view.tile.remove();
  }

  private onConnectionState(peerId: string, state: string): void {
    const view = this.peers.get(peerId);
    if (view === undefined) return;
    this.renderPeer(view);
    // The path is known the moment the call is up; do not wait for the next poll to show it.
    if (state === "connected") void this.pollStats(view);
  }

  private renderPeer(view: PeerView): void {
    view.tile.setState(view.link.pc.connectionState);
    const parts = [describePair(view.stats?.pair ?? null), `${view.bitrateKbps} kbit/s in`];
    if (view.chat.readyState !== "open") parts.push(`chat ${view.chat.readyState}`);
    view.tile.setDetails(parts.join(" · "));
  }

  private pollAllStats(): void {
    for (const view of this.peers.values()) void this.pollStats(view);
  }

  private async pollStats(view: PeerView): Promise<void> {
    const pc = view.link.pc;
    if (view.polling || pc.connectionState === "closed") return;
    view.polling = true;
    try {
      const report = await pc.getStats();
      const stats = summarizeStats(report.values() as IterableIterator<StatsEntry>);
      // The bitrate is over the last poll interval, not since the last out-of-turn poll.
      const previous = view.stats;
      if (previous === null || stats.timestamp - previous.timestamp >= STATS_INTERVAL_MS / 2) {
        view.bitrateKbps = inboundKbps(previous, stats);
        view.stats = stats;
      } else {
        view.stats = { ...stats, inboundBytes: previous.inboundBytes, timestamp: previous.timestamp };
      }
      if (this.peers.get(view.id) === view) this.renderPeer(view);
    } catch (error) {
      // A connection closed mid-read; the next poll (or the peer's removal) settles it.
      console.debug(`relaykit: stats for ${view.id}: ${messageOf(error)}`);
    } finally {
      view.polling = false;
    }
  }

  // -- local media --------------------------------------------------------------------------------

  private async startMedia(): Promise<void> {
    const media = await openLocalMedia();
    this.setAlert("media", media.problem, true);
    if (media.stream === null) {
      this.selfTile.setDetails("receive-only: no camera or microphone");
      return;
    }
    this.localMedia = "camera";
    if (this.room.state === "closed") {
      // The session ended while the permission prompt was open: do not keep the camera on.
      for (const track of media.stream.getTracks()) track.stop();
      return;
    }
    this.localStream = media.stream;
    this.selfTile.show(media.stream);
    this.updateToggles();
    // Links made while the permission prompt was open get the tracks now (a renegotiation).
    for (const view of this.peers.values()) {
      const sending = new Set(view.link.pc.getSenders().map((sender) => sender.track));
      for (const track of media.stream.getTracks()) if (!sending.has(track)) view.link.pc.addTrack(track, media.stream);
    }
  }

  private tracks(kind: "audio" | "video"): MediaStreamTrack[] {
    return this.localStream?.getTracks().filter((track) => track.kind === kind) ?? [];
  }

  private updateToggles(): void {
    const audio = this.tracks("audio");
    const video = this.tracks("video");
    const micOff = audio.length > 0 && audio.every((track) => !track.enabled);
    const cameraOff = video.length > 0 && video.every((track) => !track.enabled);
    this.ui.mic.disabled = audio.length === 0;
    this.ui.mic.setAttribute("aria-pressed", String(micOff));
    this.ui.mic.textContent = audio.length === 0 ? "No microphone" : micOff ? "Unmute microphone" : "Mute microphone";
    this.ui.camera.disabled = video.length === 0;
    this.ui.camera.setAttribute("aria-pressed", String(cameraOff));
    this.ui.camera.textContent = video.length === 0 ? "No camera" : cameraOff ? "Turn camera on" : "Turn camera off";
    this.selfTile.setDetails([micOff ? "microphone muted" : "", cameraOff ? "camera off" : ""].filter((part) => part !== "").join(" · "));
  }

  // -- controls -----------------------------------------------------------------------------------

  private bindControls(): void {
    const toggle = (kind: "audio" | "video") => {
      const tracks = this.tracks(kind);
      const enable = tracks.some((track) => !track.enabled);
      for (const track of tracks) track.enabled = enable;
      this.updateToggles();
    };
    this.ui.mic.addEventListener("click", () => toggle("audio"));
    this.ui.camera.addEventListener("click", () => toggle("video"));
    this.ui.relayOnly.addEventListener("change", () => this.setRelayOnly(this.ui.relayOnly.checked));
    this.ui.copyLink.addEventListener("click", () => void this.copyLink());
    this.ui.chatForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendChat(this.ui.chatInput.value);
      this.ui.chatInput.value = "";
    });
  }

  private setRelayOnly(relayOnly: boolean): void {
    this.relayOnly = relayOnly;
    this.mesh.setIceTransportPolicy(relayOnly ? "relay" : "all");
    // Keep the choice across a reload, but not in the link people copy.
    const url = new URL(location.href);
    if (relayOnly) url.searchParams.set("relay", "1");
    else url.searchParams.delete("relay");
    history.replaceState(null, "", url);
    this.checkRelayAvailable();
  }

  private async copyLink(): Promise<void> {
    const link = `${location.origin}/r/${encodeURIComponent(this.roomName)}`;
    try {
      await navigator.clipboard.writeText(link);
      this.ui.copyStatus.textContent = "Link copied.";
    } catch {
      this.ui.copyStatus.textContent = `Copy this link: ${link}`;
    }
  }

  // -- room state and problems --------------------------------------------------------------------

  private onRoomState(state: RoomState): void {
    this.ui.state.textContent = state;
    this.ui.state.dataset["state"] = state;
    if (state === "open") this.setAlert("room", null);
    if (state === "closed") {
      if (!this.alerts.has("room")) this.setAlert("room", "You are disconnected from the room. Reload the page to join again.");
      this.release();
    }
  }

  private onRoomError(error: RoomError): void {
    const server = location.origin;
    switch (error.code) {
      case "room-full":
        return this.setAlert("room", "This room is full. Create another room from the lobby, or try again when someone leaves.");
      case "connection":
        return this.setAlert("room", `Cannot reach the signaling server at ${server} (${error.message}). Retrying…`);
      case "closed":
        if (this.alerts.get("room")?.text.startsWith("This room is full")) return; // already said, better
        return this.setAlert("room", `Disconnected: ${error.message}. Reload the page to join again.`);
      case "ice-servers":
        return this.setAlert("ice-servers", `Could not refresh the TURN credentials (${error.message}). Calls that are up keep going; retrying.`, true);
      default:
        // Signaling hiccups (a peer gone mid-negotiation, a dropped frame) that the mesh recovers from.
        console.warn(`relaykit: ${error.code}: ${error.message}`);
    }
  }

  /** Relay only needs a TURN server; say so rather than let every call fail silently. */
  private checkRelayAvailable(): void {
    if (this.room.peerId === null) return;
    const urls = this.room.iceServers.flatMap((server) => (typeof server.urls === "string" ? [server.urls] : server.urls));
    const hasTurn = urls.some((url) => /^turns?:/.test(url));
    this.setAlert("relay", this.relayOnly && !hasTurn ? "Relay only is on, but this server hands out no TURN server, so no call can connect. Turn relay only off, or configure TURN_URLS and TURN_SECRETS on the Worker." : null, true);
  }

  private setAlert(topic: AlertTopic, text: string | null, warning = false): void {
    if (text === null) this.alerts.delete(topic);
    else this.alerts.set(topic, { text, warning });
    this.ui.alerts.replaceChildren(...[...this.alerts.values()].map((alert) => element("p", { className: alert.warning ? "warning" : "" }, alert.text)));
  }

  private appendChat(who: string, text: string): void {
    const log = this.ui.chatLog;
    log.append(element("li", {}, element("span", { className: "who" }, `${who}:`), text));
    while (log.childElementCount > CHAT_HISTORY_LIMIT) log.firstElementChild?.remove();
    log.scrollTop = log.scrollHeight;
  }
}
