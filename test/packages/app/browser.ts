/**
 * A browser app on @relaykit/client, as the fresh-app test (../packages.test.ts) type-checks it
 * (tsc --strict, from the packed tarball) and bundles it (esbuild). It uses every export of the
 * package, which the test checks, so the published types are proven together as an app uses them:
 * a video mesh, a chat over room broadcasts, and a raw-protocol panel that speaks the frames itself.
 */
import {
  CLOSE_CODES,
  DEFAULT_MAX_ICE_RESTARTS,
  DISCONNECTED_RECOVERY_MS,
  ERROR_CODES,
  FRESH_ICE_SERVERS_MS,
  HELD_OFFER_SETTLE_MAX_MS,
  ICE_RECOVERY_BACKOFF,
  IceServersError,
  Mesh,
  POLITE_RESTART_DELAY_MS,
  RECOVERY_CHECK_MS,
  RECOVERY_FETCH_TIMEOUT_MS,
  RoomClient,
  SIGNALING_SUBPROTOCOL,
  fetchIceServers,
  isPolite,
  isValidRoomName,
  parseIceServersResponse,
  readMeshSignal,
  refreshDelayMs,
  roomSocketUrl,
  roomSubprotocols,
  type BackoffOptions,
  type BroadcastFrame,
  type BroadcastRequest,
  type ClientFrame,
  type ErrorCode,
  type ErrorFrame,
  type FetchIceServersOptions,
  type FetchLike,
  type HttpErrorBody,
  type IceServer,
  type IceServersFrame,
  type IceServersReason,
  type IceServersResponse,
  type IceServersUpdate,
  type IceServersUpdateReason,
  type IceServersWithheld,
  type IceServersWithheldCode,
  type IceTransportPolicy,
  type JsonValue,
  type LeaveRequest,
  type MeshEvents,
  type MeshOptions,
  type MeshSignal,
  type MetaRequest,
  type PeerConnectionConfig,
  type PeerConnectionLike,
  type PeerInfo,
  type PeerJoinedFrame,
  type PeerLeftFrame,
  type PeerLink,
  type PeerMeta,
  type PeerUpdatedFrame,
  type PingRequest,
  type PongFrame,
  type RoomClientEvents,
  type RoomClientOptions,
  type RoomError,
  type RoomState,
  type ServerFrame,
  type SignalFrame,
  type SignalRequest,
  type WebSocketConstructor,
  type WebSocketLike,
  type WelcomeFrame,
} from "@relaykit/client";

const WORKER = "https://relaykit.example.workers.dev";
const log = (line: string): void => void document.querySelector("#log")?.append(`${line}\n`);

// The page's own backend mints join tokens (with @relaykit/server); its errors use the Worker's shape.
async function joinToken(room: string): Promise<string> {
  const response = await fetch(`/api/join-token?room=${encodeURIComponent(room)}`);
  if (!response.ok) {
    const body = (await response.json()) as HttpErrorBody;
    throw new Error(`${body.error.code}: ${body.error.message}`);
  }
  return response.text();
}

const params = new URLSearchParams(location.hash.slice(1));
const roomName = params.get("room") ?? "standup";
if (!isValidRoomName(roomName)) throw new Error(`not a room name: ${roomName}`);
const policy: IceTransportPolicy = params.get("relay") === "1" ? "relay" : "all";

const backoff: BackoffOptions = { initialDelayMs: 500, maxDelayMs: 15_000 };
const BrowserWebSocket: WebSocketConstructor = WebSocket;
const options: RoomClientOptions = {
  server: WORKER,
  room: roomName,
  token: () => joinToken(roomName),
  WebSocket: BrowserWebSocket,
  reconnect: { ...backoff, maxAttempts: 30 },
  maxQueuedFrames: 128,
};
const room = new RoomClient(options);

room.on("state", (state: RoomState) => log(`room: ${state}`));
room.on("error", (error: RoomError) => log(`room error ${error.code}: ${error.message}`));
room.on("welcome", (welcome: WelcomeFrame) => {
  const others: PeerInfo[] = welcome.peers;
  log(`joined as ${welcome.peerId} with ${others.length} others${welcome.resumed ? " (resumed)" : ""}`);
  const withheld: IceServersWithheld | undefined = welcome.iceServersWithheld;
  if (withheld !== undefined) {
    const code: IceServersWithheldCode = withheld.code;
    log(`no TURN yet (${code}): retry in ${withheld.retryAfterMs} ms`);
  }
});
const onIceServers = (...[update]: RoomClientEvents["ice-servers"]): void => {
  const { iceServers, expiresAt, reason }: IceServersUpdate = update;
  const why: IceServersUpdateReason = reason ?? "welcome";
  log(`${iceServers.length} ICE servers (${why}); refresh in ${expiresAt === null ? "never" : refreshDelayMs(expiresAt, Date.now())} ms`);
};
room.on("ice-servers", onIceServers);

// Chat: room broadcasts whose data is the app's own; the mesh's signals are told apart by readMeshSignal.
const me: PeerMeta = { name: params.get("name") ?? "guest" };
room.on("signal", (from: string, data: JsonValue) => {
  const mesh: MeshSignal["mesh"] | null = readMeshSignal(data);
  if (mesh === null) log(`app signal from ${from}: ${JSON.stringify(data)}`);
});
room.on("broadcast", (from: string, data: JsonValue) => log(`${room.peers.get(from)?.meta.name ?? from}: ${JSON.stringify(data)}`));
document.querySelector("form")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.querySelector("input");
  if (input !== null) room.broadcast({ text: input.value, at: Date.now() });
});

// Video: a mesh of RTCPeerConnections, one per other peer.
const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
function describeLink<PC extends PeerConnectionLike>(link: PeerLink<PC>, localId: string | null): string {
  const polite = localId === null ? link.polite : isPolite(localId, link.peerId);
  return `${link.peerId}: ${link.pc.connectionState}${polite ? " (polite)" : ""}`;
}
const meshOptions: MeshOptions<RTCPeerConnection> = {
  room,
  createPeerConnection: (config: PeerConnectionConfig) => new RTCPeerConnection(config),
  iceTransportPolicy: policy,
  maxIceRestarts: DEFAULT_MAX_ICE_RESTARTS,
  filterIceServers: (servers: IceServer[]) => (policy === "relay" ? servers.filter((server) => server.username !== undefined) : servers),
  setup: (link) => {
    for (const track of local.getTracks()) link.pc.addTrack(track, local);
    link.pc.ontrack = (event) => {
      const video = document.createElement("video");
      video.autoplay = true;
      video.srcObject = event.streams[0] ?? null;
      video.dataset.peer = link.peerId;
      document.body.append(video);
    };
  },
};
const mesh = new Mesh(meshOptions);
const onConnectionState = (...[peerId, state]: MeshEvents<RTCPeerConnection>["connection-state"]): void => {
  const link = mesh.links.get(peerId);
  log(link === undefined ? `${peerId}: ${state}` : describeLink(link, room.peerId));
};
mesh.on("connection-state", onConnectionState);
mesh.on("peer-closed", (peerId) => document.querySelector(`video[data-peer="${peerId}"]`)?.remove());
mesh.on("error", (peerId, error) => log(`call with ${peerId} gave up: ${error.message}`));
document.querySelector("#relay-only")?.addEventListener("change", () => mesh.setIceTransportPolicy("relay"));

log(
  `recovery: restart after ${DISCONNECTED_RECOVERY_MS} ms disconnected, check after ${RECOVERY_CHECK_MS} ms, ` +
    `backoff ${ICE_RECOVERY_BACKOFF.initialDelayMs}-${ICE_RECOVERY_BACKOFF.maxDelayMs} ms, polite side waits ${POLITE_RESTART_DELAY_MS} ms, ` +
    `servers fresh for ${FRESH_ICE_SERVERS_MS} ms, fetch gives up after ${RECOVERY_FETCH_TIMEOUT_MS} ms, ` +
    `a held first offer waits up to ${HELD_OFFER_SETTLE_MAX_MS} ms for the call to settle`,
);
await room.connect();
room.setMeta(me);

// ICE servers for a page that only tests TURN (no room): cached between reloads, fetched when stale.
const timedFetch: FetchLike = (input, init) => fetch(input, init);
async function iceServersForTest(): Promise<IceServersResponse> {
  const cached = parseIceServersResponse(sessionStorage.getItem("ice") ?? "");
  if (cached !== null && refreshDelayMs(cached.expiresAt, Date.now()) > 1_000) return cached;
  const fetchOptions: FetchIceServersOptions = { server: WORKER, token: await joinToken(roomName), fetch: timedFetch, timeoutMs: 5_000 };
  try {
    const fresh = await fetchIceServers(fetchOptions);
    sessionStorage.setItem("ice", JSON.stringify(fresh));
    return fresh;
  } catch (error) {
    if (error instanceof IceServersError) log(`ICE servers refused (${error.status} ${error.code}): ${error.message}`);
    throw error;
  }
}
document.querySelector("#ice-test")?.addEventListener("click", () => void iceServersForTest().then((ice) => log(`${ice.iceServers.length} servers, ttl ${ice.ttl} s`)));

// The raw-protocol panel: one more connection that speaks the frames itself, for debugging a deployment.
function describe(frame: ServerFrame): string {
  switch (frame.type) {
    case "welcome":
      return `welcome ${frame.peerId}`;
    case "peer-joined": {
      const joined: PeerJoinedFrame = frame;
      return `joined ${joined.peer.id}`;
    }
    case "peer-left": {
      const left: PeerLeftFrame = frame;
      return `left ${left.peerId}`;
    }
    case "peer-updated": {
      const updated: PeerUpdatedFrame = frame;
      return `updated ${updated.peer.id}`;
    }
    case "signal": {
      const signal: SignalFrame = frame;
      return `signal from ${signal.from}`;
    }
    case "broadcast": {
      const broadcast: BroadcastFrame = frame;
      return `broadcast from ${broadcast.from}`;
    }
    case "pong": {
      const pong: PongFrame = frame;
      return pong.type;
    }
    case "ice-servers": {
      const pushed: IceServersFrame = frame;
      const reason: IceServersReason = pushed.reason;
      return `ice-servers (${reason})`;
    }
    case "error": {
      const error: ErrorFrame = frame;
      const known: readonly ErrorCode[] = ERROR_CODES;
      return `error ${error.code}${known.includes(error.code) ? "" : " (newer than this page)"}`;
    }
  }
}
const probe: WebSocketLike = new WebSocket(roomSocketUrl(WORKER, roomName), roomSubprotocols(await joinToken(roomName), undefined));
const send = (frame: ClientFrame): void => probe.send(JSON.stringify(frame));
const probeSocket = probe as WebSocket;
probeSocket.onopen = () => {
  if (probe.protocol !== SIGNALING_SUBPROTOCOL) log(`the Worker answered subprotocol ${probe.protocol}`);
  const ping: PingRequest = { type: "ping" };
  const meta: MetaRequest = { type: "meta", data: { name: "probe" } };
  const hello: BroadcastRequest = { type: "broadcast", data: "probe here" };
  for (const frame of [ping, meta, hello]) send(frame);
};
probeSocket.onmessage = (event) => {
  const frame = JSON.parse(String(event.data)) as ServerFrame;
  log(`probe: ${describe(frame)}`);
  if (frame.type === "peer-joined") {
    const direct: SignalRequest = { type: "signal", to: frame.peer.id, data: { probe: true } };
    send(direct);
  }
};
probeSocket.onclose = (event) => log(`probe closed ${event.code}${event.code === CLOSE_CODES.kicked ? " (kicked: do not reconnect)" : ""}`);
addEventListener("pagehide", () => {
  const leave: LeaveRequest = { type: "leave" };
  send(leave);
  mesh.close();
  room.leave();
});
