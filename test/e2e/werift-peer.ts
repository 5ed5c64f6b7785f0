/**
 * A werift peer that joins a room through the client library (RoomClient + Mesh, exactly as an app
 * would) and proves a call: the `chat` data channel opens, messages cross it, and getStats() tells
 * which candidate pair carried them. Runs only inside a network namespace a test made.
 *
 *   npx tsx test/e2e/werift-peer.ts --server http://H:P --room NAME [options]
 *     --relay-only          iceTransportPolicy "relay"
 *     --stun-only           use only the room's stun: servers (no TURN)
 *     --send N              send N chat messages "<peerId>:<i>" once the channel opens
 *     --echo                answer every chat message M with "echo:M"
 *     --expect N            done once N messages arrived (echoes included)
 *     --recv-video          offer to receive video, and count the RTP packets that arrive
 *     --min-rtp N           with --recv-video: done only after N packets (default 20)
 *     --ice-ttl-refresh     report every ICE-server update the room client applied
 *     --linger-ms N         stay this long after done, so the other side can finish (default 1500);
 *                           with --send, keep sending a "tick" every 500 ms meanwhile, so a long
 *                           linger shows the call carried on (ticks echoed, last echo's age)
 *     --timeout-ms N        give up after this long (default 20000)
 *
 * The last stdout line is a JSON summary; exit 0 only when every condition was met.
 */
import { parseArgs } from "node:util";
import { RTCPeerConnection, type RTCDataChannel } from "werift";
import { WebSocket } from "ws";
import { Mesh, RoomClient, type PeerLink } from "../../shared/client/index.js";
import { isStunUrl } from "../../shared/turn/ice-servers.js";
import { assertIsolatedNetwork } from "./isolation.js";
import { selectedPair, type SelectedPair } from "./werift-stats.js";

const { values } = parseArgs({
  options: {
    server: { type: "string" },
    room: { type: "string" },
    "relay-only": { type: "boolean", default: false },
    "stun-only": { type: "boolean", default: false },
    send: { type: "string", default: "0" },
    echo: { type: "boolean", default: false },
    expect: { type: "string", default: "0" },
    "recv-video": { type: "boolean", default: false },
    "min-rtp": { type: "string", default: "20" },
    "linger-ms": { type: "string", default: "1500" },
    "timeout-ms": { type: "string", default: "20000" },
  },
});

const started = Date.now();
const summary: Record<string, unknown> = { ok: false };
const received: string[] = [];
const signalingStates: string[] = [];
const connectionStates: string[] = [];
const iceServerUpdates: string[] = [];
let rtpPackets = 0;
const ticks = { sent: 0, echoed: 0, lastEchoAt: 0 };
const TICK_INTERVAL_MS = 500;
let pair: SelectedPair | undefined;

function finish(ok: boolean, error?: string): never {
  Object.assign(summary, { ok, ...(error === undefined ? {} : { error }), elapsedMs: Date.now() - started, received, signalingStates, connectionStates, rtpPackets, pair, iceServerUpdates });
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.exit(ok ? 0 : 1);
}

function count(name: string): number {
  const raw = values[name as "send"];
  const value = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw)) finish(false, `--${name} must be a whole number, not ${JSON.stringify(raw)}`);
  return value;
}

async function main(): Promise<void> {
  assertIsolatedNetwork("test/e2e/werift-peer.ts");
  if (values.server === undefined || values.room === undefined) throw new Error("--server and --room are required");
  const send = count("send");
  const expect = count("expect");
  const minRtp = count("min-rtp");
  const lingerMs = count("linger-ms");

  const room = new RoomClient({ server: values.server, room: values.room, WebSocket, reconnect: { maxAttempts: 5 } });
  room.on("error", (error) => process.stderr.write(`room: ${error.code}: ${error.message}\n`));
  room.on("ice-servers", ({ expiresAt }) => iceServerUpdates.push(expiresAt ?? "none"));

  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let channelOpen = false;
  let chat: RTCDataChannel | undefined;
  let remotePeer: string | undefined;
  const check = () => {
    if (channelOpen && received.length >= expect && (!values["recv-video"] || rtpPackets >= minRtp)) resolveDone();
  };

  const setup = (link: PeerLink<RTCPeerConnection>) => {
    const { pc } = link;
    remotePeer = link.peerId;
    pc.signalingStateChange.subscribe((state) => signalingStates.push(state));
    pc.connectionStateChange.subscribe((state) => connectionStates.push(state));
    if (values["recv-video"]) {
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.onTrack.subscribe((track) => track.onReceiveRtp.subscribe(() => {
        rtpPackets++;
        check();
      }));
    }
    const channel: RTCDataChannel = pc.createDataChannel("chat", { negotiated: true, id: 0 });
    chat = channel;
    channel.stateChanged.subscribe((state) => {
      if (state !== "open" || channelOpen) return;
      channelOpen = true;
      summary["channelOpenAfterMs"] = Date.now() - started;
      for (let i = 0; i < send; i++) channel.send(`${room.peerId}:${i}`);
      check();
    });
    channel.onMessage.subscribe((data) => {
      const text = typeof data === "string" ? data : data.toString("utf8");
      if (text.startsWith("echo:tick:")) {
        ticks.echoed++;
        ticks.lastEchoAt = Date.now();
        return;
      }
      if (text.startsWith("tick:")) {
        if (values.echo) channel.send(`echo:${text}`);
        return;
      }
      received.push(text);
      if (values.echo && !text.startsWith("echo:")) channel.send(`echo:${text}`);
      check();
    });
  };

  const mesh = new Mesh<RTCPeerConnection>({
    room,
    createPeerConnection: (config) => new RTCPeerConnection({ ...config, iceTurnConnectTimeout: 3 } as ConstructorParameters<typeof RTCPeerConnection>[0]),
    iceTransportPolicy: values["relay-only"] ? "relay" : "all",
    ...(values["stun-only"] ? { filterIceServers: (servers) => servers.filter((server) => [server.urls].flat().every(isStunUrl)) } : {}),
    setup,
  });
  mesh.on("error", (peerId, error) => process.stderr.write(`mesh ${peerId}: ${error.message}\n`));

  const welcome = await room.connect();
  summary["peerId"] = welcome.peerId;
  summary["iceServers"] = room.iceServers.map((server) => [server.urls].flat()).flat();
  await done;
  summary["doneAfterMs"] = Date.now() - started;
  summary["remotePeer"] = remotePeer;
  const link = remotePeer === undefined ? undefined : mesh.links.get(remotePeer);
  if (link !== undefined) pair = await selectedPair(link.pc);
  // The other side may still be waiting for our echoes or its own stats.
  const lingerEnd = Date.now() + lingerMs;
  while (Date.now() < lingerEnd) {
    if (send > 0 && chat !== undefined && chat.readyState === "open") {
      chat.send(`tick:${ticks.sent}`);
      ticks.sent++;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(TICK_INTERVAL_MS, Math.max(0, lingerEnd - Date.now()))));
  }
  summary["ticks"] = { sent: ticks.sent, echoed: ticks.echoed, lastEchoAgoMs: ticks.lastEchoAt === 0 ? null : Date.now() - ticks.lastEchoAt };
  if (link !== undefined) pair = await selectedPair(link.pc);
  mesh.close();
  room.leave();
}

const timer = setTimeout(() => finish(false, `timeout: the call was not complete within ${values["timeout-ms"]} ms`), count("timeout-ms"));
main().then(
  () => {
    clearTimeout(timer);
    finish(true);
  },
  (error: unknown) => {
    clearTimeout(timer);
    finish(false, error instanceof Error ? error.message : String(error));
  },
);
