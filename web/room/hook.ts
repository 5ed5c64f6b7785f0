/**
 * The test hook the end-to-end suites drive the room page through (`window.relaykitDemo`). The
 * shape is a contract with test/e2e: change it only together with those tests.
 */
import type { RoomState } from "../../shared/client/index.js";
import type { CandidatePairSummary } from "./stats.js";

export interface DemoPeerSnapshot {
  id: string;
  /** The peer connection's `connectionState`. */
  connectionState: string;
  /** The selected candidate pair, from the last stats poll; null before there is one. */
  pair: CandidatePairSummary | null;
  /** Inbound video frames decoded (0 when none). */
  framesDecoded: number;
  /** Inbound media bitrate over the last second. */
  bitrateKbps: number;
  /** The chat data channel's `readyState`, or "none". */
  chatState: string;
  /** Chat texts received from this peer, in order. */
  chatReceived: string[];
}

export interface DemoSnapshot {
  peerId: string | null;
  roomState: RoomState;
  relayOnly: boolean;
  /** Whether getUserMedia succeeded (camera, microphone or both). */
  localMedia: "camera" | "none";
  /** What the page shows as a problem, in words; null when it shows none. */
  error: string | null;
  peers: DemoPeerSnapshot[];
}

export interface DemoHook {
  /** The latest state, synchronously (stats are polled once a second). */
  snapshot(): DemoSnapshot;
  /** Sends a chat text to every peer whose chat channel is open, as the chat form does. */
  sendChat(text: string): void;
}

declare global {
  interface Window {
    relaykitDemo?: DemoHook;
  }
}
