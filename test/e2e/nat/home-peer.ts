/**
 * One werift peer in one home of the NAT lab: it joins a room on the lab's Worker through the client
 * library (`RoomClient` over `ws`, `Mesh` with werift's RTCPeerConnection), opens the negotiated data
 * channel every peer of the room creates, has each of its messages echoed by the other home and
 * reads the selected candidate pair from getStats(). Run by lab-case.ts inside a home's namespace:
 *
 *   ip netns exec home1 node --import tsx test/e2e/nat/home-peer.ts --name home1 --expect-address 10.0.1.2 \
 *     --server http://198.51.100.1:8787 --room nat-lab --servers stun|turn|all --policy all|relay \
 *     --timeout-ms N [--messages N --message-bytes N]
 *
 * `--servers` keeps only the `stun:` URLs, only the `turn(s):` ones, or all of the ICE servers the
 * Worker handed out (`Mesh({ filterIceServers })`). It refuses to run anywhere but in the home it names
 * (`--expect-address` must be the only address besides loopback), so werift cannot reach a real network.
 *
 * The last stdout line is a JSON summary (`PeerSummary`), whether the call worked or not: what was
 * gathered, which states were seen, and for a call that worked the selected pair and the echo counts.
 * Exit code 0 only when the call worked; a call that never comes up ends at `--timeout-ms`.
 */
import { networkInterfaces } from "node:os";
import { RTCPeerConnection, type RTCDataChannel } from "werift";
import { WebSocket } from "ws";
import { Mesh, RoomClient, readMeshSignal, type IceServer, type JsonValue, type PeerLink } from "../../../shared/client/index.js";
import { TIMELINE_LIMIT, type CandidateInfo, type PeerSummary, type Policy, type ServerChoice } from "./cases.js";
import { withTimeout } from "../../node/processes.js";

/** The negotiated channel both homes create (same label and id on both sides, no in-band open). */
const ECHO_CHANNEL = { label: "nat-lab-echo", id: 0 };
/** After its own echoes are back, a peer keeps echoing for the other this long at most. */
const PEER_DONE_WAIT_MS = 10_000;
const CLOSE_WAIT_MS = 3_000;
/** TURN/TCP connect bound (werift's default is 8 s); the lab's relay is one hop away. */
const TURN_CONNECT_TIMEOUT_SECONDS = 4;

interface Options {
  name: string;
  expectAddress: string;
  server: string;
  room: string;
  servers: ServerChoice;
  policy: Policy;
  timeoutMs: number;
  messages: number;
  messageBytes: number;
}

function parseOptions(argv: string[]): Options {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (name === undefined || !name.startsWith("--") || value === undefined) throw new Error(`expected --name value pairs, got ${JSON.stringify(argv.slice(i))}`);
    values.set(name.slice(2), value);
  }
  const required = (name: string) => {
    const value = values.get(name);
    if (value === undefined) throw new Error(`--${name} is required`);
    return value;
  };
  const positive = (name: string, fallback: number) => {
    const value = Number(values.get(name) ?? fallback);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
    return value;
  };
  const servers = values.get("servers") ?? "all";
  if (servers !== "stun" && servers !== "turn" && servers !== "all") throw new Error("--servers must be stun, turn or all");
  const policy = values.get("policy") ?? "all";
  if (policy !== "all" && policy !== "relay") throw new Error("--policy must be all or relay");
  return {
    name: required("name"),
    expectAddress: required("expect-address"),
    server: required("server"),
    room: required("room"),
    servers,
    policy,
    timeoutMs: positive("timeout-ms", 30_000),
    messages: positive("messages", 20),
    messageBytes: positive("message-bytes", 200),
  };
}

/** Anything but loopback and the home's own address means this is not the home the lab built: refuse. */
function assertInHome(expectAddress: string): void {
  const addresses = Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((address) => !address.internal);
  const texts = addresses.map((address) => address.address);
  if (texts.length !== 1 || texts[0] !== expectAddress) {
    throw new Error(`refusing to run outside the NAT lab's home with address ${expectAddress} (addresses here: ${texts.join(", ") || "none"})`);
  }
}

function urlsOf(server: IceServer): string[] {
  return Array.isArray(server.urls) ? server.urls : [server.urls];
}

/** Keeps the URLs of the chosen kind; an entry left without URLs is dropped. */
function filterServers(servers: IceServer[], choice: ServerChoice): IceServer[] {
  if (choice === "all") return servers;
  const keep = (url: string) => (choice === "stun" ? /^stuns?:/.test(url) : /^turns?:/.test(url));
  return servers.flatMap((server) => {
    const urls = urlsOf(server).filter(keep);
    return urls.length === 0 ? [] : [{ ...server, urls }];
  });
}

/** `candidate:… 1 udp 2130706431 10.0.1.2 50000 typ host …` → its type, protocol, address and port. */
function parseCandidate(line: string): CandidateInfo | null {
  const fields = line.replace(/^a=/, "").split(" ");
  const typIndex = fields.indexOf("typ");
  if (typIndex < 0 || fields.length < 6) return null;
  return { protocol: (fields[2] ?? "").toLowerCase(), address: fields[4] ?? "", port: Number(fields[5]), type: fields[typIndex + 1] ?? "" };
}

interface StatLike {
  type: string;
  id: string;
  [field: string]: unknown;
}

function candidateFromStat(stat: StatLike): CandidateInfo {
  return { type: String(stat["candidateType"]), protocol: String(stat["protocol"]), address: String(stat["address"]), port: Number(stat["port"]) };
}

async function readStats(pc: RTCPeerConnection): Promise<{ selectedPair?: PeerSummary["selectedPair"]; pairStates: Record<string, number> }> {
  const report = (await pc.getStats()) as unknown as Map<string, StatLike>;
  const stats = [...report.values()];
  const pairStates: Record<string, number> = {};
  for (const pair of stats.filter((stat) => stat.type === "candidate-pair")) {
    const state = String(pair["state"]);
    pairStates[state] = (pairStates[state] ?? 0) + 1;
  }
  const transport = stats.find((stat) => stat.type === "transport" && typeof stat["selectedCandidatePairId"] === "string");
  const pair = transport === undefined ? undefined : report.get(transport["selectedCandidatePairId"] as string);
  const local = pair === undefined ? undefined : report.get(pair["localCandidateId"] as string);
  const remote = pair === undefined ? undefined : report.get(pair["remoteCandidateId"] as string);
  if (pair === undefined || local === undefined || remote === undefined) return { pairStates };
  return { pairStates, selectedPair: { local: candidateFromStat(local), remote: candidateFromStat(remote), state: String(pair["state"]) } };
}

const started = Date.now();

/** Adds "<ms since start> <what>" to the summary's timeline, up to TIMELINE_LIMIT entries. */
function mark(summary: PeerSummary, what: string): void {
  if (summary.timeline.length < TIMELINE_LIMIT) summary.timeline.push(`${Date.now() - started} ${what}`);
}

async function main(options: Options, summary: PeerSummary): Promise<void> {
  assertInHome(options.expectAddress);
  const deadline = started + options.timeoutMs;
  const remaining = () => Math.max(1, deadline - Date.now());

  const room = new RoomClient({ server: options.server, room: options.room, WebSocket, reconnect: { maxAttempts: 3 } });
  room.on("error", (error) => summary.clientErrors.push(`room ${error.code}: ${error.message}`));
  room.on("signal", (_from, data) => {
    const signal = readMeshSignal(data);
    if (signal?.description !== undefined) mark(summary, `received ${signal.description.type}`);
    const candidate = signal?.candidate;
    const parsed = candidate === undefined ? null : parseCandidate(candidate.candidate);
    if (parsed !== null) {
      summary.remoteCandidates.push(parsed);
      mark(summary, `received candidate ${parsed.type} ${parsed.protocol}`);
    }
  });
  let otherDone: () => void = () => {};
  const otherHomeDone = new Promise<void>((resolve) => (otherDone = resolve));
  room.on("broadcast", (_from, data) => {
    if (typeof data === "object" && data !== null && !Array.isArray(data) && data["natLabDone"] !== undefined) {
      summary.otherHomeDone = true;
      otherDone();
    }
  });
  const welcome = await withTimeout(room.connect(), remaining(), "joining the room");
  summary.peerId = welcome.peerId;
  summary.offeredUrls = (welcome.iceServers ?? []).flatMap(urlsOf);

  // The link to the other home: the echo channel, and the moments it came up.
  let link: PeerLink<RTCPeerConnection> | undefined;
  let channel: RTCDataChannel | undefined;
  let ownEchoes: () => void = () => {};
  const allEchoed = new Promise<void>((resolve) => (ownEchoes = resolve));
  let channelOpened: () => void = () => {};
  const opened = new Promise<void>((resolve) => (channelOpened = resolve));
  const prefix = `ping:${options.name}:`;

  const mesh = new Mesh<RTCPeerConnection>({
    room,
    iceTransportPolicy: options.policy,
    filterIceServers: (servers) => {
      const kept = filterServers(servers, options.servers);
      summary.usedUrls = kept.flatMap(urlsOf);
      return kept;
    },
    createPeerConnection: (config) =>
      new RTCPeerConnection({
        iceServers: config.iceServers ?? [],
        iceTransportPolicy: config.iceTransportPolicy ?? "all",
        iceTurnConnectTimeout: TURN_CONNECT_TIMEOUT_SECONDS,
      }),
    setup: (created) => {
      if (link !== undefined) return; // one other home only; a second link would be a lab bug, reported below
      link = created;
      const { pc } = created;
      pc.onIceCandidate.subscribe((candidate) => {
        const parsed = candidate === undefined ? null : parseCandidate(candidate.candidate);
        if (parsed !== null) {
          summary.localCandidates.push(parsed);
          mark(summary, `gathered ${parsed.type} ${parsed.protocol}`);
        }
      });
      pc.signalingStateChange.subscribe((state) => mark(summary, `signaling ${state}`));
      pc.connectionStateChange.subscribe((state) => {
        mark(summary, `connection ${state}`);
        summary.connectionStates.push(state);
        if (state === "connected" && summary.connectedAfterMs === undefined) summary.connectedAfterMs = Date.now() - started;
      });
      pc.iceConnectionStateChange.subscribe((state) => {
        mark(summary, `ice ${state}`);
        summary.iceConnectionStates.push(state);
      });
      const echo = pc.createDataChannel(ECHO_CHANNEL.label, { negotiated: true, id: ECHO_CHANNEL.id });
      channel = echo;
      echo.stateChanged.subscribe((state) => {
        if (state !== "open") return;
        summary.channelOpenAfterMs = Date.now() - started;
        mark(summary, "echo channel open");
        channelOpened();
      });
      echo.onMessage.subscribe((data) => {
        const text = typeof data === "string" ? data : data.toString("utf8");
        if (text.startsWith("ping:")) {
          echo.send(`echo:${text.slice("ping:".length)}`);
          summary.echoesSent++;
        } else if (text.startsWith(`echo:${options.name}:`)) {
          summary.echoesReceived++;
          if (summary.echoesReceived === options.messages) ownEchoes();
        }
      });
    },
  });
  mesh.on("error", (peerId, error) => summary.clientErrors.push(`mesh ${peerId}: ${error.message}`));
  mesh.on("peer", (created) => {
    if (created !== link) summary.clientErrors.push(`unexpected second link to ${created.peerId}`);
  });

  const finish = async () => {
    mesh.close();
    room.leave();
    // werift ends its TURN allocation on close; give it a moment so the relay logs the end.
    await new Promise((resolve) => setTimeout(resolve, 500));
    room.close();
  };

  try {
    await withTimeout(opened, remaining(), "the echo channel opening");
    const padding = "x".repeat(Math.max(0, options.messageBytes - prefix.length - 8));
    for (let i = 0; i < options.messages; i++) {
      const message = `${prefix}${String(i).padStart(6, "0")}:${padding}`;
      channel!.send(message);
      summary.messagesSent++;
      summary.payloadBytesSent += Buffer.byteLength(message);
    }
    await withTimeout(allEchoed, remaining(), `all ${options.messages} echoes`);
    Object.assign(summary, await readStats(link!.pc));
    room.broadcast({ natLabDone: options.name } as JsonValue);
    // The other home may still be waiting for its echoes: keep answering until it says it is done.
    await withTimeout(otherHomeDone, Math.min(PEER_DONE_WAIT_MS, remaining()), "the other home's done");
  } catch (error) {
    // A call that never came up: still report what was gathered and tried.
    if (link !== undefined) Object.assign(summary, await withTimeout(readStats(link.pc), CLOSE_WAIT_MS, "getStats").catch(() => ({})));
    await withTimeout(finish(), CLOSE_WAIT_MS, "closing").catch(() => {});
    throw error;
  }
  await withTimeout(finish(), CLOSE_WAIT_MS, "closing");
}

const summary: PeerSummary = {
  ok: false,
  name: "?",
  elapsedMs: 0,
  offeredUrls: [],
  usedUrls: [],
  policy: "all",
  localCandidates: [],
  remoteCandidates: [],
  connectionStates: [],
  iceConnectionStates: [],
  messagesSent: 0,
  echoesReceived: 0,
  echoesSent: 0,
  payloadBytesSent: 0,
  pairStates: {},
  otherHomeDone: false,
  clientErrors: [],
  timeline: [],
};

function report(ok: boolean, error?: string): never {
  const line: PeerSummary = { ...summary, ok, ...(error === undefined ? {} : { error }), elapsedMs: Date.now() - started };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.exit(ok ? 0 : 1);
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  report(false, error instanceof Error ? error.message : String(error));
}
summary.name = options.name;
summary.policy = options.policy;
// Whatever werift is doing, the process ends: the call's own deadline plus time to close.
const hardStop = setTimeout(() => report(false, `hard stop after ${options.timeoutMs + 2 * CLOSE_WAIT_MS} ms`), options.timeoutMs + 2 * CLOSE_WAIT_MS);
main(options, summary).then(
  () => {
    clearTimeout(hardStop);
    report(true);
  },
  (error: unknown) => {
    clearTimeout(hardStop);
    report(false, error instanceof Error ? error.message : String(error));
  },
);
