/**
 * A werift peer (Node) and a headless Chromium demo page in one room, relay-only, with each side's
 * offer starting the call in turn. Runs INSIDE a fresh network namespace (werift-chromium.test.ts
 * starts it through runInNetns):
 *
 *   node --import tsx test/e2e/browser/werift-chromium-call.ts --first=werift|chromium [--timeout-ms=N]
 *
 * The werift side is written here rather than taken from test/e2e/werift-peer.ts because it has to
 * decide who offers, and it records every description it sends and receives. It uses the client
 * library exactly as an app would (RoomClient with `ws`'s WebSocket, Mesh with werift's
 * RTCPeerConnection) and the demo page's `chat` channel (`{ negotiated: true, id: 0 }`).
 *
 * Who offers. The mesh (shared/client/mesh.ts) has the peer that was in the room first make the
 * first offer, and the newcomer wait for it, so the order of joining decides:
 * - `--first=werift`: werift joins first, with audio and video transceivers and the chat channel
 *   from the start; the page joins after it, and werift's offer starts the call.
 * - `--first=chromium`: the page joins first; werift joins after it with nothing to negotiate (no
 *   transceiver, no channel), and answers the page's offer. It opens the negotiated chat channel once
 *   that offer is applied (the SCTP transport then exists, so no new negotiation is needed).
 * Which offer got answered first is read from what werift actually sent and received.
 */
import { randomBytes } from "node:crypto";
import { RTCPeerConnection, type RTCDataChannel } from "werift";
import { WebSocket } from "ws";
import { Mesh, RoomClient, readMeshSignal, type JsonValue, type PeerLink } from "../../../shared/client/index.js";
import { launchChromium } from "../chromium.js";
import { relayEventsOnce, startStack, type RelayLogLine } from "../stack.js";
import { selectedPair } from "../werift-stats.js";
import { withTimeout } from "../../node/processes.js";
import { numberFlag, parseFlags, pollUntil, runScript } from "./harness.js";
import { collectPageErrors, demoSnapshot, newRecordedContext, peerConnectionLog, sendChat, waitForHook, type DemoPeer, type DemoSnapshot } from "./pages.js";

const CONNECT_TIMEOUT_MS = 20_000;
const CHAT_TIMEOUT_MS = 5_000;
/** Video RTP packets werift must receive from the page's fake camera. */
const MIN_VIDEO_PACKETS = 50;
const JOIN_TIMEOUT_MS = 5_000;
/** How long the relay's allocation lines may trail the call, at most. */
const RELAY_LOG_WAIT_MS = 5_000;

const flags = parseFlags(process.argv.slice(2), ["first", "timeout-ms"]);
const first = flags.get("first") ?? "werift";
if (first !== "werift" && first !== "chromium") throw new Error(`--first must be werift or chromium, not ${first}`);
const timeoutMs = numberFlag(flags, "timeout-ms", 60_000);

/** One description as werift saw it cross the room. */
interface DescriptionEvent {
  direction: "sent" | "received";
  type: string;
  at: number;
}

function descriptionOf(data: JsonValue): string | null {
  return readMeshSignal(data)?.description?.type ?? null;
}

runScript("werift-chromium-call", timeoutMs, async ({ summary, phase, onCleanup }) => {
  const pageErrors: string[] = [];
  const weriftErrors: string[] = [];
  summary["first"] = first;
  summary["pageErrors"] = pageErrors;
  summary["weriftErrors"] = weriftErrors;

  phase("start relay and Worker");
  const stack = await startStack({ turnTransports: ["udp"] });
  onCleanup(() => stack.stop());
  summary["turnUrls"] = stack.turnUrls;

  phase("launch Chromium");
  const chrome = await launchChromium();
  onCleanup(() => chrome.close());

  const descriptions: DescriptionEvent[] = [];
  const signalingStates: string[] = [];
  const connectionStates: string[] = [];
  const chatReceived: string[] = [];
  // In the summary from the start, so a failed run shows how far the negotiation got.
  Object.assign(summary, { descriptions, weriftSignalingStates: signalingStates, weriftConnectionStates: connectionStates });
  let videoPackets = 0;
  let chatChannel: RTCDataChannel | undefined;
  let chatOpen = false;
  const openChat = (pc: RTCPeerConnection) => {
    const channel = pc.createDataChannel("chat", { negotiated: true, id: 0 });
    chatChannel = channel;
    channel.stateChanged.subscribe((state) => {
      if (state === "open") chatOpen = true;
    });
    channel.onMessage.subscribe((data) => chatReceived.push(typeof data === "string" ? data : data.toString("utf8")));
  };
  const setup = (link: PeerLink<RTCPeerConnection>) => {
    const { pc } = link;
    pc.signalingStateChange.subscribe((state) => {
      signalingStates.push(state);
      // Answer-only: the channel comes once the page's offer made the SCTP transport.
      if (first === "chromium" && state === "stable" && chatChannel === undefined) openChat(pc);
    });
    pc.connectionStateChange.subscribe((state) => connectionStates.push(state));
    pc.onTrack.subscribe((track) => {
      if (track.kind === "video") track.onReceiveRtp.subscribe(() => videoPackets++);
    });
    if (first === "werift") {
      // Audio and video offered sendrecv (werift sends nothing on them), so the page's answer
      // carries its camera and microphone and the first negotiation is the whole call. Offered
      // recvonly, the page answers sendonly and then offers again to make them sendrecv; werift
      // 0.25.2 never answers that second offer (measured), which is a different test.
      pc.addTransceiver("audio", { direction: "sendrecv" });
      pc.addTransceiver("video", { direction: "sendrecv" });
      openChat(pc);
    }
  };

  const room = `interop-${randomBytes(4).toString("hex")}`;
  const openPage = async () => {
    phase("open the page");
    const page = await (await newRecordedContext(chrome.browser)).newPage();
    collectPageErrors(page, pageErrors, "page");
    await page.goto(`${stack.workerUrl}/r/${room}?relay=1`, { timeout: 15_000 });
    await waitForHook(page, "relaykitDemo");
    const pageJoined = await pollUntil("the page joining the room", 15_000, 200, async () => {
      const snapshot = await demoSnapshot(page);
      return snapshot.roomState === "open" && snapshot.peerId !== null ? snapshot : undefined;
    }, () => "");
    summary["pagePeerId"] = pageJoined.peerId;
    summary["pageLocalMedia"] = pageJoined.localMedia;
    return { page, pageId: pageJoined.peerId! };
  };

  const weriftJoin = async () => {
    phase("werift joins");
    const client = new RoomClient({ server: stack.workerUrl, room, WebSocket, reconnect: { maxAttempts: 3 } });
    client.on("error", (error) => weriftErrors.push(`werift room: ${error.code}: ${error.message}`));
    // Watch the descriptions werift sends and receives (the mesh's own signals).
    const send = client.signal.bind(client);
    client.signal = (to: string, data: JsonValue) => {
      const type = descriptionOf(data);
      if (type !== null) descriptions.push({ direction: "sent", type, at: Date.now() });
      return send(to, data);
    };
    client.on("signal", (_from, data) => {
      const type = descriptionOf(data);
      if (type !== null) descriptions.push({ direction: "received", type, at: Date.now() });
    });
    const mesh = new Mesh<RTCPeerConnection>({
      room: client,
      createPeerConnection: (config) => new RTCPeerConnection({ ...config, iceTurnConnectTimeout: 3 } as ConstructorParameters<typeof RTCPeerConnection>[0]),
      iceTransportPolicy: "relay",
      setup,
    });
    mesh.on("error", (peerId, error) => weriftErrors.push(`werift mesh ${peerId}: ${error.message}`));
    onCleanup(async () => {
      mesh.close();
      client.leave();
    });
    await withTimeout(client.connect(), JOIN_TIMEOUT_MS, "werift's welcome");
    return { mesh, weriftId: client.peerId! };
  };

  // Whoever is in the room first makes the first offer.
  let joined: { mesh: Mesh<RTCPeerConnection>; weriftId: string };
  let opened: Awaited<ReturnType<typeof openPage>>;
  if (first === "werift") {
    joined = await weriftJoin();
    opened = await openPage();
  } else {
    opened = await openPage();
    joined = await weriftJoin();
  }
  const { page, pageId } = opened;
  const { mesh: weriftMesh, weriftId } = joined;
  summary["weriftPeerId"] = weriftId;

  phase("connect");
  const connectStarted = Date.now();
  let lastPage: DemoPeer | undefined;
  await pollUntil("a relay-only call with chat open on both sides and video reaching werift", CONNECT_TIMEOUT_MS, 250, async () => {
    const snapshot: DemoSnapshot = await demoSnapshot(page);
    lastPage = snapshot.peers.find((peer) => peer.id === weriftId);
    const pageUp = lastPage !== undefined && lastPage.connectionState === "connected" && lastPage.pair?.local === "relay" && lastPage.pair.remote === "relay" && lastPage.chatState === "open";
    return pageUp && chatOpen && connectionStates.includes("connected") && videoPackets >= MIN_VIDEO_PACKETS ? true : undefined;
  }, () => JSON.stringify({ page: lastPage, werift: { chatOpen, videoPackets } })).catch(async (error: unknown) => {
    summary["pagePeerConnectionLog"] = await peerConnectionLog(page);
    throw error;
  });
  summary["callUpAfterMs"] = Date.now() - connectStarted;

  phase("chat both ways");
  const fromPage = `from chromium ${randomBytes(3).toString("hex")}`;
  const fromWerift = `from werift ${randomBytes(3).toString("hex")}`;
  await sendChat(page, fromPage);
  const weriftChatStateAtSend = chatChannel!.readyState;
  chatChannel!.send(fromWerift);
  let pageReceived: string[] = [];
  let pageChatState = "";
  await pollUntil("each chat line arriving on the other side", CHAT_TIMEOUT_MS, 100, async () => {
    const peer = (await demoSnapshot(page)).peers.find((candidate) => candidate.id === weriftId);
    pageReceived = peer?.chatReceived ?? [];
    pageChatState = peer?.chatState ?? "no such peer";
    return pageReceived.includes(fromWerift) && chatReceived.includes(fromPage) ? true : undefined;
  }, () => JSON.stringify({ pageReceived, pageChatState, weriftReceived: chatReceived, weriftChatStateAtSend, weriftChatStateNow: chatChannel!.readyState }));
  summary["chat"] = { sent: { chromium: fromPage, werift: fromWerift }, received: { chromium: pageReceived, werift: chatReceived } };

  phase("read both sides");
  const link = weriftMesh.links.get(pageId);
  if (link === undefined) throw new Error("werift's mesh has no link to the page");
  summary["weriftPair"] = await selectedPair(link.pc);
  summary["pagePeer"] = (await demoSnapshot(page)).peers.find((peer) => peer.id === weriftId) ?? null;
  summary["pageErrorShown"] = (await demoSnapshot(page)).error;
  summary["videoPackets"] = videoPackets;
  // The first answer werift handled tells whose offer started the call.
  const firstAnswer = descriptions.find((event) => event.type === "answer");
  summary["firstAnsweredOffer"] = firstAnswer === undefined ? null : firstAnswer.direction === "received" ? "werift" : "chromium";
  summary["pagePeerConnectionLog"] = await peerConnectionLog(page);
  // Both sides allocated on the relay; its lines may trail the call a little (relayEventsOnce).
  const allocationStarts = (events: RelayLogLine[]) => events.filter((event) => event.event === "allocation-start");
  const events = await relayEventsOnce(stack, (logged) => allocationStarts(logged).length >= 2, RELAY_LOG_WAIT_MS);
  summary["relayClients"] = allocationStarts(events).map((event) => String(event["client"]));
});
