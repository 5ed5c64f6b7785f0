/**
 * The slice of the WebRTC API the mesh uses, written out structurally so the library compiles
 * without DOM types and works with any standard-shaped stack: browsers' RTCPeerConnection and
 * werift's both fit. Event handlers take `never` so that each stack's own event classes are
 * accepted; the mesh reads only the fields typed in the `*EventLike` interfaces below.
 */
import type { IceServer } from "../turn/ice-servers.js";

export type IceTransportPolicy = "all" | "relay";

export interface PeerConnectionConfig {
  iceServers?: IceServer[];
  iceTransportPolicy?: IceTransportPolicy;
}

export interface SessionDescriptionInit {
  type: "offer" | "answer" | "pranswer" | "rollback";
  sdp?: string;
}

export interface IceCandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

export interface IceCandidateEventLike {
  candidate: (IceCandidateInit & { toJSON?(): unknown }) | null | undefined;
}

export interface PeerConnectionLike {
  readonly signalingState: string;
  readonly connectionState: string;
  readonly localDescription: { type: string; sdp: string } | null;
  readonly remoteDescription: { type: string; sdp: string } | null;
  onnegotiationneeded: ((event: never) => unknown) | null | undefined;
  onicecandidate: ((event: never) => unknown) | null | undefined;
  onconnectionstatechange: ((event: never) => unknown) | null | undefined;
  setLocalDescription(description?: SessionDescriptionInit): Promise<unknown>;
  setRemoteDescription(description: SessionDescriptionInit): Promise<unknown>;
  addIceCandidate(candidate: IceCandidateInit): Promise<unknown>;
  setConfiguration(configuration: PeerConnectionConfig): void;
  restartIce(): void;
  close(): unknown;
}
