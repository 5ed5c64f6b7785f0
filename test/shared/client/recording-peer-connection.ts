/**
 * A peer connection that records what the mesh asks of it, for tests of the mesh's own decisions
 * (which links get `setConfiguration`, which restart ICE, in what order, how often). It is not a
 * WebRTC stack: the test moves `connectionState` itself, as a real stack would report it. The real
 * stacks (werift, Chromium) are exercised end to end in test/e2e, inside network namespaces.
 *
 * Descriptions follow the signaling state machine just far enough for perfect negotiation to run:
 * a remote offer is answered, a local offer waits for an answer, a rollback returns to stable.
 */
import type { PeerConnectionConfig, PeerConnectionLike, SessionDescriptionInit } from "../../../shared/client/webrtc.js";

/** The TURN usernames of a configuration, comma-joined: enough to tell one server set from another. */
export function usernames(config: PeerConnectionConfig): string {
  return (config.iceServers ?? []).map((server) => server.username ?? "-").join(",");
}

export class RecordingPeerConnection implements PeerConnectionLike {
  signalingState = "stable";
  connectionState = "new";
  localDescription: { type: string; sdp: string } | null = null;
  remoteDescription: { type: string; sdp: string } | null = null;
  onnegotiationneeded: ((event: never) => unknown) | null | undefined = null;
  onicecandidate: ((event: never) => unknown) | null | undefined = null;
  onconnectionstatechange: ((event: never) => unknown) | null | undefined = null;
  configuration: PeerConnectionConfig;
  /** Set by the mesh's `setup` hook (the mesh makes the connection before it hands out the link). */
  remotePeerId = "?";

  /** `log` is shared by every connection of a test, so the order across links shows too. */
  constructor(
    initial: PeerConnectionConfig,
    private readonly log: string[],
  ) {
    this.configuration = initial;
  }

  /** Entries of the shared log for this connection, without the peer id prefix. */
  calls(): string[] {
    const prefix = `${this.remotePeerId} `;
    return this.log.filter((entry) => entry.startsWith(prefix)).map((entry) => entry.slice(prefix.length));
  }

  count(call: string): number {
    return this.calls().filter((entry) => entry === call).length;
  }

  /** What a WebRTC stack does when ICE or DTLS changes state. */
  setConnectionState(state: string): void {
    this.connectionState = state;
    this.onconnectionstatechange?.(undefined as never);
  }

  setConfiguration(configuration: PeerConnectionConfig): void {
    this.configuration = configuration;
    this.record(`setConfiguration ${usernames(configuration)}`);
  }

  restartIce(): void {
    this.record("restartIce");
  }

  async setLocalDescription(description?: SessionDescriptionInit): Promise<void> {
    if (description?.type === "rollback") {
      this.localDescription = null;
      this.signalingState = "stable";
    } else if (this.signalingState === "have-remote-offer") {
      this.localDescription = { type: "answer", sdp: "v=0\r\na=ice-ufrag:local\r\n" };
      this.signalingState = "stable";
    } else {
      this.localDescription = { type: "offer", sdp: "v=0\r\na=ice-ufrag:local\r\n" };
      this.signalingState = "have-local-offer";
    }
    this.record(`setLocalDescription ${this.localDescription?.type ?? "rollback"}`);
  }

  async setRemoteDescription(description: SessionDescriptionInit): Promise<void> {
    this.remoteDescription = { type: description.type, sdp: description.sdp ?? "" };
    this.signalingState = description.type === "offer" ? "have-remote-offer" : "stable";
    this.record(`setRemoteDescription ${description.type}`);
  }

  async addIceCandidate(): Promise<void> {}

  close(): void {
    this.connectionState = "closed";
    this.record("close");
  }

  private record(call: string): void {
    this.log.push(`${this.remotePeerId} ${call}`);
  }
}
