/**
 * The NAT lab's cases and the JSON every lab script prints, shared by the scripts (which fill it in) and
 * nat-lab.test.ts (which judges it). No side effects: safe to import from the test.
 */
import type { RelayLogLine, TurnTransport } from "../stack.js";
import type { HomeName, LabCounters, LabShape } from "./topology.js";

export interface LabCase {
  /** What the case shows, for the summary. */
  title: string;
  shape: LabShape;
  /** The TURN URLs the Worker hands out (it always hands out the relay's STUN URL too). */
  turnTransports: TurnTransport[];
  /** Which of the handed-out ICE servers the peers keep. */
  servers: ServerChoice;
  policy: Policy;
  relaySecretMismatch: boolean;
  /** Data channel messages each home sends (and has echoed). */
  messages: number;
  messageBytes: number;
}

const SYMMETRIC: LabShape = { home1: "symmetric", home2: "symmetric" };

export const LAB_CASES = {
  "stun-only": { title: "two symmetric NATs, STUN only", shape: SYMMETRIC, turnTransports: ["udp"], servers: "stun", policy: "all", relaySecretMismatch: false, messages: 20, messageBytes: 200 },
  "turn-udp": { title: "two symmetric NATs, TURN over UDP, relay only", shape: SYMMETRIC, turnTransports: ["udp"], servers: "turn", policy: "relay", relaySecretMismatch: false, messages: 20, messageBytes: 200 },
  "turn-tcp": { title: "two symmetric NATs, TURN over TCP, relay only", shape: SYMMETRIC, turnTransports: ["tcp"], servers: "turn", policy: "relay", relaySecretMismatch: false, messages: 20, messageBytes: 200 },
  "wrong-secret": { title: "two symmetric NATs, TURN over UDP with credentials the relay cannot verify", shape: SYMMETRIC, turnTransports: ["udp"], servers: "turn", policy: "relay", relaySecretMismatch: true, messages: 20, messageBytes: 200 },
  // Enough data that a relayed call could not hide in the relay's counters among ICE checks.
  "cone-direct": { title: "two cone NATs, STUN and TURN, all candidates", shape: { home1: "cone", home2: "cone" }, turnTransports: ["udp"], servers: "all", policy: "all", relaySecretMismatch: false, messages: 100, messageBytes: 1000 },
} satisfies Record<string, LabCase>;

export type LabCaseName = keyof typeof LAB_CASES;

// ---------------------------------------------------------------------------------------------
// What home-peer.ts prints

export type ServerChoice = "stun" | "turn" | "all";
export type Policy = "all" | "relay";

export interface CandidateInfo {
  type: string;
  protocol: string;
  address: string;
  port: number;
}

export interface PeerSummary {
  ok: boolean;
  error?: string;
  name: string;
  peerId?: string;
  elapsedMs: number;
  /** The ICE server URLs the Worker handed out, and those this peer kept. */
  offeredUrls: string[];
  usedUrls: string[];
  policy: Policy;
  /** Candidates this peer gathered (from onIceCandidate) and received from the other home. */
  localCandidates: CandidateInfo[];
  remoteCandidates: CandidateInfo[];
  connectionStates: string[];
  iceConnectionStates: string[];
  connectedAfterMs?: number;
  channelOpenAfterMs?: number;
  messagesSent: number;
  echoesReceived: number;
  echoesSent: number;
  payloadBytesSent: number;
  selectedPair?: { local: CandidateInfo; remote: CandidateInfo; state: string };
  /** Every candidate pair werift tried, by state (e.g. {"failed":4}). */
  pairStates: Record<string, number>;
  otherHomeDone: boolean;
  /** What the room client and the mesh reported through their `error` events. */
  clientErrors: string[];
  /**
   * What happened when, as "<ms since the peer started> <event>": descriptions and candidates received,
   * signaling, ICE and connection states, the echo channel opening. For reading a failure: werift has
   * been seen (rarely, in CI) to report a connection "failed" early while its data flowed, which the
   * mesh then recovers with an ICE restart. At most TIMELINE_LIMIT entries.
   */
  timeline: string[];
}

/** The most entries a peer's timeline keeps; later events are not recorded. */
export const TIMELINE_LIMIT = 200;

// ---------------------------------------------------------------------------------------------
// What stun-probe.ts map prints, and lab-case.ts

export interface MappedResult {
  server: string;
  address?: string;
  port?: number;
  error?: string;
}

export interface MapReport {
  localPort: number;
  mapped: MappedResult[];
}

/** One probe of the preconditions: who asked whom, and what came back. */
export interface ProbeResult {
  from: string;
  report?: MapReport;
  error?: string;
}

export interface LabCaseSummary {
  case: string;
  title: string;
  /** False when the lab itself could not be run (the call's outcome is in `peers`). */
  ok: boolean;
  error?: string;
  durationsMs: Record<string, number>;
  shape: LabShape;
  routerRules: Record<string, string[]>;
  preconditions: {
    /** Each home, one socket, Binding to two ports of one server in pub. */
    mapping: Partial<Record<HomeName, ProbeResult>>;
    /** Each home to the other home's LAN address (must get no answer). */
    otherLan: Partial<Record<HomeName, ProbeResult>>;
    /** Each home to the other home's router, unsolicited (must get no answer). */
    otherRouterUnsolicited: Partial<Record<HomeName, ProbeResult>>;
    /** Each router to its own home's LAN address (must answer: the responder in the home works). */
    ownLanFromRouter: Partial<Record<HomeName, ProbeResult>>;
  };
  turnUrls: string[];
  /** Packets counted in the routers and in pub during the call (see topology.ts). */
  counters?: LabCounters;
  peers: Partial<Record<HomeName, PeerSummary & { exit?: string; stderr?: string }>>;
  relayEvents: RelayLogLine[];
  stackOutputTail?: string;
}

