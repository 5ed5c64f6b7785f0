/**
 * A full mesh of peer connections over one room: a connection to every other peer, negotiated with
 * "perfect negotiation" (the W3C pattern), so either side may add tracks or channels at any time and
 * simultaneous offers ("glare") resolve themselves. In each pair one side is polite (it yields and
 * rolls back its own offer on a collision) and the other impolite (it ignores the colliding offer);
 * both sides derive the roles from the two peer ids, so no coordination is needed.
 *
 * Perfect negotiation resolves glare, but the first exchange of a pair is where both sides always
 * have something to offer at the same moment, and browsers handle that collision badly (Chromium can
 * fail the answer after its rollback with "Failed to start SCTP transport"). So the first offer of a
 * pair comes from one side only: the peer that was already in the room offers as soon as it sees the
 * newcomer, and the newcomer holds its own until that offer arrives (or `firstOfferWaitMs` passes,
 * for a peer with nothing to offer). Later renegotiations may collide and are resolved as usual.
 * What the newcomer held while waiting is offered once its connection has settled (connected or
 * failed), not while ICE and DTLS are still being set up: that offer usually changes nothing the
 * answer did not already cover, and werift starts its transports again on every answer, so an extra
 * round in the middle of the first checks fails its connection ("state must be new").
 *
 * The mesh also keeps every connection on the room's current ICE servers: when the Worker's TURN
 * credentials are refreshed, or the room pushes new servers (a relay in the old ones is draining), it
 * applies them with `setConfiguration`, and on calls that are up one side restarts ICE so new
 * allocations use the fresh servers: the impolite side at once, the polite side only if no restart
 * from the other side came within a few seconds (the other side's restart makes it gather anew with
 * its new configuration too).
 *
 * A call whose connection fails (its relay vanished without draining, say) is recovered the same
 * way, after asking the Worker for fresh servers first: the room client fetches /v1/ice-servers once
 * for however many links failed together, and the answer moves every call that is up, the failed ones
 * included, as above. If the fetch fails (or servers fetched moments ago are reused) each failed link
 * restarts ICE from one side with the servers in hand. At most `maxIceRestarts` recoveries in a row
 * per link, spaced by a growing backoff. A connection that stays `disconnected` for
 * `DISCONNECTED_RECOVERY_MS` is recovered the same way without waiting for `failed`: browsers report
 * `failed` only 10 s or more after the path died (Chromium: disconnected ~6 s, failed ~16 s after its
 * relay was killed), and a call whose relay is gone does not come back by waiting. A recovery whose
 * restart has not brought the call back within `RECOVERY_CHECK_MS` is followed by another.
 */
import type { JsonValue } from "../signaling/protocol.js";
import type { IceServer } from "../turn/ice-servers.js";
import { backoffDelayMs, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { FRESH_ICE_SERVERS_MS, type RoomClient } from "./room-client.js";
import type {
  IceCandidateEventLike,
  IceCandidateInit,
  IceTransportPolicy,
  PeerConnectionConfig,
  PeerConnectionLike,
  SessionDescriptionInit,
} from "./webrtc.js";

export interface PeerLink<PC extends PeerConnectionLike = PeerConnectionLike> {
  readonly peerId: string;
  readonly pc: PC;
  /** The polite side yields on an offer collision. */
  readonly polite: boolean;
}

export interface MeshEvents<PC extends PeerConnectionLike> {
  [name: string]: unknown[];
  /** A connection to a peer was created (after `setup` ran). */
  peer: [link: PeerLink<PC>];
  /** The connection to a peer was closed (it left, or its session was replaced). */
  "peer-closed": [peerId: string];
  "connection-state": [peerId: string, state: string];
  error: [peerId: string, error: Error];
}

export interface MeshOptions<PC extends PeerConnectionLike> {
  room: RoomClient;
  /** `(config) => new RTCPeerConnection(config)`; werift's RTCPeerConnection works as well. */
  createPeerConnection: (config: PeerConnectionConfig) => PC;
  /** `"relay"` sends everything through TURN (hides addresses, works through any NAT). Default `"all"`. */
  iceTransportPolicy?: IceTransportPolicy;
  /** Add tracks and create data channels here; it runs before any negotiation of the link. */
  setup?: (link: PeerLink<PC>) => void;
  /** Choose which of the room's ICE servers to use (e.g. STUN only). */
  filterIceServers?: (servers: IceServer[]) => IceServer[];
  /**
   * Recoveries (fresh servers, then an ICE restart) of a failed link in a row, without it getting
   * connected in between, before the mesh gives up on it with an `error` event. Default 3.
   */
  maxIceRestarts?: number;
  /** How long a newcomer waits for the first offer before making its own. Default 5 s. */
  firstOfferWaitMs?: number;
  /**
   * How long after a recovery's ICE restart the link must be connected again; if it is not, the mesh
   * recovers it anew (within `maxIceRestarts`). Default `RECOVERY_CHECK_MS` (10 s).
   */
  recoveryCheckMs?: number;
  /**
   * Which peers this side opens a link to by itself (when it joins, or when they join). Default: all.
   * A peer that signals first always gets a link, so a one-to-many app's receivers say
   * `connectTo: () => false` and link only with the sender, which links with everyone; they hold no
   * connection to each other.
   */
  connectTo?: (peerId: string) => boolean;
}

export const DEFAULT_FIRST_OFFER_WAIT_MS = 5_000;
/**
 * The longest a newcomer's held offer waits, after it answered the first offer, for its connection
 * to settle; a connection still "connecting" by then gets the offer anyway.
 */
export const HELD_OFFER_SETTLE_MAX_MS = 10_000;
/** How long the polite side waits for the other side's ICE restart after new credentials. */
export const POLITE_RESTART_DELAY_MS = 3_000;
export const DEFAULT_MAX_ICE_RESTARTS = 3;
/**
 * A connection `disconnected` this long is recovered as if it had failed. Short drops (a Wi-Fi
 * hiccup, a congested moment) come back by themselves within a second or two and cost no restart.
 */
export const DISCONNECTED_RECOVERY_MS = 3_000;
/**
 * A recovery whose restart has not brought the connection back this long after is tried again (as a
 * new recovery, within `maxIceRestarts`): a browser whose connection sits in `failed` reports no
 * further change, so a restart that went nowhere would otherwise be the last one.
 */
export const RECOVERY_CHECK_MS = 10_000;
/**
 * The first recovery of a failed link starts at once; each further one in a row waits a backoff of
 * 1-2 s, then 2-4 s, and so on up to 15-30 s, so a restart that itself fails cannot spin.
 */
export const ICE_RECOVERY_BACKOFF: Readonly<Required<BackoffOptions>> = { initialDelayMs: 2_000, maxDelayMs: 30_000 };

/** What the mesh puts in a room signal's `data`. `session` tells a reloaded peer from its old self. */
export interface MeshSignal {
  mesh: {
    session: string;
    description?: { type: "offer" | "answer" | "pranswer"; sdp: string };
    candidate?: IceCandidateInit;
  };
}

/** The mesh part of a signal, or null when the signal is the app's own. */
export function readMeshSignal(data: JsonValue): MeshSignal["mesh"] | null {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return null;
  const mesh = data["mesh"];
  if (typeof mesh !== "object" || mesh === null || Array.isArray(mesh) || typeof mesh["session"] !== "string") return null;
  const out: MeshSignal["mesh"] = { session: mesh["session"] };
  const description = mesh["description"];
  if (typeof description === "object" && description !== null && !Array.isArray(description)) {
    const { type, sdp } = description;
    if ((type === "offer" || type === "answer" || type === "pranswer") && typeof sdp === "string") out.description = { type, sdp };
    else return null;
  }
  const candidate = mesh["candidate"];
  if (typeof candidate === "object" && candidate !== null && !Array.isArray(candidate)) {
    if (typeof candidate["candidate"] !== "string") return null;
    const sdpMid = candidate["sdpMid"];
    const sdpMLineIndex = candidate["sdpMLineIndex"];
    const usernameFragment = candidate["usernameFragment"];
    out.candidate = {
      candidate: candidate["candidate"],
      sdpMid: typeof sdpMid === "string" ? sdpMid : null,
      sdpMLineIndex: typeof sdpMLineIndex === "number" ? sdpMLineIndex : null,
      ...(typeof usernameFragment === "string" ? { usernameFragment } : {}),
    };
  }
  return out.description === undefined && out.candidate === undefined ? null : out;
}

/** Both sides of a pair agree on who is polite without talking: the greater peer id is. */
export function isPolite(localPeerId: string, remotePeerId: string): boolean {
  return localPeerId > remotePeerId;
}

interface LinkState<PC extends PeerConnectionLike> extends PeerLink<PC> {
  remoteSession: string | null;
  makingOffer: boolean;
  ignoreOffer: boolean;
  /** Signal handling and offers run one at a time per link, in arrival order. */
  chain: Promise<void>;
  /** Recoveries from `failed` since the link was last connected (bounded by `maxIceRestarts`). */
  iceRestarts: number;
  /** A recovery is waiting for its backoff or its fetch; later `failed` events change nothing. */
  recovering: boolean;
  recoveryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set after a recovery's restart: recovers again if the link is not connected `recoveryCheckMs` later. */
  recoveryCheckTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set while the connection is `disconnected`: recovers it if it stays so for DISCONNECTED_RECOVERY_MS. */
  disconnectedTimer: ReturnType<typeof setTimeout> | undefined;
  /** Counts restarts the mesh made or planned, so a recovery skips one that a push already made. */
  restartGeneration: number;
  closed: boolean;
  /** A newcomer's link holds its first offer until the other side's arrives (see the top). */
  holdingFirstOffer: boolean;
  /** negotiationneeded fired while the first offer was held. */
  negotiationHeld: boolean;
  holdTimer: ReturnType<typeof setTimeout> | undefined;
  /** Set while the held offer waits for the connection to settle; the timer caps that wait. */
  heldOfferTimer: ReturnType<typeof setTimeout> | undefined;
  /** Remote descriptions applied so far; tells the polite side whether the other restarted ICE. */
  remoteDescriptions: number;
  restartTimer: ReturnType<typeof setTimeout> | undefined;
}

/** The longest one negotiation step (applying a description, making an offer) may take. */
const NEGOTIATION_STEP_TIMEOUT_MS = 15_000;

/** Past setting up: ICE and DTLS have finished one way or the other (connected, failed, and after). */
function isSettled(connectionState: string): boolean {
  return connectionState !== "new" && connectionState !== "connecting";
}

function randomSession(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Refuses a mesh option that would make it spin or never act, saying what is wanted. */
function checkMeshTimings(options: Pick<MeshOptions<PeerConnectionLike>, "maxIceRestarts" | "firstOfferWaitMs" | "recoveryCheckMs">): void {
  const { maxIceRestarts, firstOfferWaitMs, recoveryCheckMs } = options;
  if (maxIceRestarts !== undefined && !(Number.isInteger(maxIceRestarts) && maxIceRestarts >= 0)) {
    throw new TypeError(`maxIceRestarts must be a whole number, 0 or more; got ${String(maxIceRestarts)}`);
  }
  // 0 is a real choice for the first offer (a broadcast's sender need not wait); a check sooner than
  // 100 ms after a restart would take every restart in flight for one that went nowhere.
  for (const [name, value, least] of [["firstOfferWaitMs", firstOfferWaitMs, 0], ["recoveryCheckMs", recoveryCheckMs, 100]] as const) {
    if (value !== undefined && !(Number.isFinite(value) && value >= least && value <= 600_000)) {
      throw new TypeError(`${name} must be milliseconds from ${least} to 600000; got ${String(value)}`);
    }
  }
}

/** The `a=ice-ufrag:` values of a session description. */
export function remoteUfrags(sdp: string): Set<string> {
  const ufrags = new Set<string>();
  for (const match of sdp.matchAll(/^a=ice-ufrag:(\S+)/gm)) ufrags.add(match[1]!);
  return ufrags;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

export class Mesh<PC extends PeerConnectionLike = PeerConnectionLike> extends Emitter<MeshEvents<PC>> {
  private readonly options: MeshOptions<PC>;
  private readonly room: RoomClient;
  private readonly state = new Map<string, LinkState<PC>>();
  private readonly session = randomSession();
  private readonly unsubscribe: (() => void)[] = [];
  private policy: IceTransportPolicy;
  private closed = false;

  constructor(options: MeshOptions<PC>) {
    super();
    checkMeshTimings(options);
    this.options = options;
    this.room = options.room;
    this.policy = options.iceTransportPolicy ?? "all";
    const room = this.room;
    this.unsubscribe.push(
      room.on("welcome", (welcome) => {
        // A session that was not resumed starts over: the others dropped their links to us.
        if (!welcome.resumed) for (const peerId of [...this.state.keys()]) this.closeLink(peerId);
        // We are the newcomer to everyone in the welcome: they offer first.
        for (const peer of welcome.peers) this.openLink(peer.id, true);
      }),
      room.on("peer-joined", (peer) => this.openLink(peer.id)),
      room.on("peer-left", (peerId) => this.closeLink(peerId)),
      room.on("signal", (from, data) => this.onSignal(from, data)),
      // Whatever the reason (welcome, refresh, a push because a relay drains, a fetch after a failed
      // call), every call that is up moves to the new servers. After a failure that includes calls
      // that look healthy: they may run through the same vanished relay and not have noticed yet,
      // and their allocations hold credentials that expire before the new ones, which the next
      // scheduled refresh (planned from the new expiry) would no longer replace.
      room.on("ice-servers", () => this.applyConfiguration(true)),
    );
    // A mesh made after the welcome picks up the peers already there.
    if (room.peerId !== null) for (const peerId of room.peers.keys()) this.openLink(peerId, true);
  }

  /** The live links, by peer id. */
  get links(): ReadonlyMap<string, PeerLink<PC>> {
    return this.state;
  }

  get iceTransportPolicy(): IceTransportPolicy {
    return this.policy;
  }

  /** Switches every link between relay-only and all candidates (an ICE restart on each). */
  setIceTransportPolicy(policy: IceTransportPolicy): void {
    if (policy === this.policy) return;
    this.policy = policy;
    this.applyConfiguration(true);
  }

  /** Closes every peer connection and stops following the room (the room stays connected). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribe) off();
    for (const peerId of [...this.state.keys()]) this.closeLink(peerId);
  }

  // ---------------------------------------------------------------------------------------------

  private configuration(): PeerConnectionConfig {
    const servers = this.room.iceServers;
    return { iceServers: this.options.filterIceServers ? this.options.filterIceServers(servers) : servers, iceTransportPolicy: this.policy };
  }

  private applyConfiguration(restart: boolean): void {
    const configuration = this.configuration();
    for (const link of this.state.values()) {
      try {
        link.pc.setConfiguration(configuration);
      } catch (error) {
        this.emit("error", link.peerId, asError(error));
        continue;
      }
      // Only a call that is up needs new candidates now; one still starting gathers with the new
      // configuration when it next negotiates.
      if (!restart || link.pc.connectionState === "new" || link.pc.connectionState === "closed") continue;
      this.restartFromOneSide(link);
    }
  }

  /**
   * An ICE restart from one side of the pair, so the two cannot collide: the impolite side at once;
   * the polite side only if no description from the other side came within `POLITE_RESTART_DELAY_MS`
   * (the other side's restart makes this side gather anew as well). `unlessConnected`: a recovery's
   * restart, which a link that got connected meanwhile no longer needs.
   */
  private restartFromOneSide(link: LinkState<PC>, unlessConnected = false): void {
    link.restartGeneration++;
    if (!link.polite) {
      this.restartIce(link);
      return;
    }
    if (link.restartTimer !== undefined) clearTimeout(link.restartTimer);
    const seen = link.remoteDescriptions;
    link.restartTimer = setTimeout(() => {
      link.restartTimer = undefined;
      if (link.closed || link.remoteDescriptions !== seen) return;
      if (unlessConnected && link.pc.connectionState === "connected") return;
      this.restartIce(link);
    }, POLITE_RESTART_DELAY_MS);
  }

  private restartIce(link: LinkState<PC>): void {
    try {
      link.pc.restartIce();
    } catch (error) {
      this.emit("error", link.peerId, asError(error));
    }
  }

  /**
   * The link's connection failed: fetch fresh servers (the room client shares one fetch among all
   * links that ask at once), then restart ICE from one side. The first recovery in a row starts at
   * once, later ones after a backoff; past `maxIceRestarts` the link is given up with an `error`.
   */
  private recoverFailedLink(link: LinkState<PC>): void {
    if (link.closed || link.recovering) return;
    const max = this.options.maxIceRestarts ?? DEFAULT_MAX_ICE_RESTARTS;
    if (link.iceRestarts >= max) {
      this.emit("error", link.peerId, new Error(`the connection failed again after ${max} ICE restarts (maxIceRestarts); the mesh stops restarting it. It recovers if the peer rejoins`));
      return;
    }
    const attempt = link.iceRestarts++;
    link.recovering = true;
    const generation = link.restartGeneration;
    const delay = attempt === 0 ? 0 : backoffDelayMs(attempt - 1, ICE_RECOVERY_BACKOFF);
    link.recoveryTimer = setTimeout(() => {
      link.recoveryTimer = undefined;
      void this.recoverNow(link, attempt, generation);
    }, delay);
  }

  /** Starts (or stops) the wait after which a connection still `disconnected` is recovered. */
  private watchDisconnected(link: LinkState<PC>, disconnected: boolean): void {
    if (!disconnected) {
      if (link.disconnectedTimer !== undefined) clearTimeout(link.disconnectedTimer);
      link.disconnectedTimer = undefined;
      return;
    }
    if (link.disconnectedTimer !== undefined) return;
    link.disconnectedTimer = setTimeout(() => {
      link.disconnectedTimer = undefined;
      if (!link.closed && link.pc.connectionState === "disconnected") this.recoverFailedLink(link);
    }, DISCONNECTED_RECOVERY_MS);
  }

  /** `generation`: the link's restart count when it failed. */
  private async recoverNow(link: LinkState<PC>, attempt: number, generation: number): Promise<void> {
    // The first recovery may use servers the Worker handed out moments ago (another link's failure
    // fetched them); a link that failed again on those asks the Worker anew (one fetch, shared).
    // Never rejects; false (the fetch failed, or the app's own servers) means: restart with what we have.
    await this.room.refreshIceServers("ice-failed", attempt === 0 ? FRESH_ICE_SERVERS_MS : 0);
    link.recovering = false;
    if (link.closed || this.closed) return;
    // New servers since the failure (this fetch's, a push's) came with a restart of their own; and a
    // link the other side's restart brought back needs none.
    if (link.pc.connectionState === "connected") return;
    // Whoever restarts it (this recovery, or the new servers' own restart), check that it came back.
    if (link.recoveryCheckTimer !== undefined) clearTimeout(link.recoveryCheckTimer);
    link.recoveryCheckTimer = setTimeout(() => {
      link.recoveryCheckTimer = undefined;
      if (!link.closed && !this.closed && link.pc.connectionState !== "connected") this.recoverFailedLink(link);
    }, this.options.recoveryCheckMs ?? RECOVERY_CHECK_MS);
    if (link.restartGeneration !== generation) return;
    this.restartFromOneSide(link, true);
  }

  private send(link: LinkState<PC>, body: Omit<MeshSignal["mesh"], "session">): void {
    const signal: MeshSignal = { mesh: { session: this.session, ...body } };
    this.room.signal(link.peerId, signal as unknown as JsonValue);
  }

  private enqueue(link: LinkState<PC>, task: () => Promise<void>): void {
    link.chain = link.chain.then(async () => {
      if (link.closed) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      // A WebRTC stack that never settles a promise must not wedge every later signal of the link.
      const stuck = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`a negotiation step took over ${NEGOTIATION_STEP_TIMEOUT_MS} ms; moving on`)), NEGOTIATION_STEP_TIMEOUT_MS);
      });
      try {
        await Promise.race([task(), stuck]);
      } catch (error) {
        if (!link.closed) this.emit("error", link.peerId, asError(error));
      } finally {
        if (timer !== undefined) clearTimeout(timer);
      }
    });
  }

  /** A link this side opens by itself, if `connectTo` wants one with this peer. */
  private openLink(peerId: string, newcomer = false): void {
    if (this.options.connectTo === undefined || this.options.connectTo(peerId)) this.ensureLink(peerId, newcomer);
  }

  /** `newcomer`: we learned of this peer from our welcome, so it makes the first offer. */
  private ensureLink(peerId: string, newcomer = false): LinkState<PC> | null {
    if (this.closed || this.room.peerId === null || peerId === this.room.peerId) return null;
    const existing = this.state.get(peerId);
    if (existing !== undefined) return existing;

    const pc = this.options.createPeerConnection(this.configuration());
    const link: LinkState<PC> = {
      peerId,
      pc,
      polite: isPolite(this.room.peerId, peerId),
      remoteSession: null,
      makingOffer: false,
      ignoreOffer: false,
      chain: Promise.resolve(),
      iceRestarts: 0,
      recovering: false,
      recoveryTimer: undefined,
      disconnectedTimer: undefined,
      recoveryCheckTimer: undefined,
      restartGeneration: 0,
      closed: false,
      holdingFirstOffer: newcomer,
      negotiationHeld: false,
      holdTimer: undefined,
      heldOfferTimer: undefined,
      remoteDescriptions: 0,
      restartTimer: undefined,
    };
    this.state.set(peerId, link);
    if (newcomer) {
      link.holdTimer = setTimeout(() => this.releaseFirstOffer(link, false), this.options.firstOfferWaitMs ?? DEFAULT_FIRST_OFFER_WAIT_MS);
    }

    pc.onnegotiationneeded = () => {
      if (link.holdingFirstOffer) {
        link.negotiationHeld = true;
        return;
      }
      this.negotiate(link);
    };
    pc.onicecandidate = (event: IceCandidateEventLike) => {
      const candidate = event.candidate;
      // The end-of-candidates marker (null or an empty candidate) needs no signal: trickle ends on its own.
      if (candidate === null || candidate === undefined || candidate.candidate === "") return;
      this.send(link, {
        candidate: {
          candidate: candidate.candidate,
          sdpMid: candidate.sdpMid ?? null,
          sdpMLineIndex: candidate.sdpMLineIndex ?? null,
          ...(typeof candidate.usernameFragment === "string" ? { usernameFragment: candidate.usernameFragment } : {}),
        },
      });
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      this.emit("connection-state", peerId, state);
      if (state === "connected") {
        link.iceRestarts = 0;
        if (link.recoveryCheckTimer !== undefined) clearTimeout(link.recoveryCheckTimer);
        link.recoveryCheckTimer = undefined;
      }
      if (isSettled(state)) this.makeHeldOffer(link);
      // Both sides see the failure and both fetch fresh servers; one side restarts.
      if (state === "failed") this.recoverFailedLink(link);
      this.watchDisconnected(link, state === "disconnected");
    };

    try {
      this.options.setup?.(link);
    } catch (error) {
      this.emit("error", peerId, asError(error));
    }
    this.emit("peer", link);
    return link;
  }

  /** Makes an offer when the link is stable (the first one, or a renegotiation). */
  private negotiate(link: LinkState<PC>): void {
    const { pc } = link;
    this.enqueue(link, async () => {
      // Negotiation waits its turn behind signals being handled; by then it may be moot.
      if (pc.signalingState !== "stable") return;
      link.makingOffer = true;
      try {
        await pc.setLocalDescription();
        const description = pc.localDescription;
        if (description !== null && (description.type === "offer" || description.type === "answer")) {
          // Any offer now carries what a waiting held offer would have.
          if (description.type === "offer") this.dropHeldOffer(link);
          this.send(link, { description: { type: description.type, sdp: description.sdp } });
        }
      } finally {
        link.makingOffer = false;
      }
    });
  }

  /**
   * Ends a newcomer's wait for the first offer. A negotiationneeded swallowed meanwhile is not
   * fired again by every stack (werift does not re-check after answering), so the held offer is
   * made here: at once when the wait timed out (the other side had nothing to offer), or, after
   * answering the other side's offer, once the connection has settled (see the top). A stack that
   * does fire negotiationneeded again after the answer (a browser with a change still unnegotiated)
   * offers at once as usual, and the held offer is then dropped as already made.
   */
  private releaseFirstOffer(link: LinkState<PC>, answered: boolean): void {
    if (!link.holdingFirstOffer) return;
    link.holdingFirstOffer = false;
    if (link.holdTimer !== undefined) clearTimeout(link.holdTimer);
    link.holdTimer = undefined;
    if (!link.negotiationHeld || link.closed) return;
    link.negotiationHeld = false;
    if (!answered || isSettled(link.pc.connectionState)) this.negotiate(link);
    else link.heldOfferTimer = setTimeout(() => this.makeHeldOffer(link), HELD_OFFER_SETTLE_MAX_MS);
  }

  /** The held offer, once the connection settled or the wait ran out (unless an offer went meanwhile). */
  private makeHeldOffer(link: LinkState<PC>): void {
    if (link.heldOfferTimer === undefined) return;
    this.dropHeldOffer(link);
    if (!link.closed) this.negotiate(link);
  }

  private dropHeldOffer(link: LinkState<PC>): void {
    if (link.heldOfferTimer !== undefined) clearTimeout(link.heldOfferTimer);
    link.heldOfferTimer = undefined;
  }

  private closeLink(peerId: string): void {
    const link = this.state.get(peerId);
    if (link === undefined) return;
    link.closed = true;
    this.state.delete(peerId);
    if (link.holdTimer !== undefined) clearTimeout(link.holdTimer);
    this.dropHeldOffer(link);
    if (link.restartTimer !== undefined) clearTimeout(link.restartTimer);
    if (link.recoveryTimer !== undefined) clearTimeout(link.recoveryTimer);
    if (link.disconnectedTimer !== undefined) clearTimeout(link.disconnectedTimer);
    if (link.recoveryCheckTimer !== undefined) clearTimeout(link.recoveryCheckTimer);
    link.pc.onnegotiationneeded = null;
    link.pc.onicecandidate = null;
    link.pc.onconnectionstatechange = null;
    try {
      void Promise.resolve(link.pc.close()).catch(() => {});
    } catch {
      // already closed
    }
    this.emit("peer-closed", peerId);
  }

  private onSignal(from: string, data: JsonValue): void {
    if (this.closed) return;
    const signal = readMeshSignal(data);
    if (signal === null) return; // the app's own signal
    let link = this.state.get(from) ?? (this.room.peers.has(from) ? this.ensureLink(from) : null);
    if (link === null) return;
    if (link.remoteSession !== null && link.remoteSession !== signal.session) {
      // The peer reloaded (same id, new mesh): its old connection is gone; start a fresh one.
      this.closeLink(from);
      link = this.ensureLink(from);
      if (link === null) return;
    }
    link.remoteSession = signal.session;
    const target = link;
    this.enqueue(target, () => this.handleSignal(target, signal));
  }

  private async handleSignal(link: LinkState<PC>, signal: MeshSignal["mesh"]): Promise<void> {
    const { pc } = link;
    if (signal.description !== undefined) {
      const description: SessionDescriptionInit = signal.description;
      const offerCollision = description.type === "offer" && (link.makingOffer || pc.signalingState !== "stable");
      link.ignoreOffer = !link.polite && offerCollision;
      if (link.ignoreOffer) return;
      // The polite side drops its own offer; an explicit rollback works in every stack.
      if (offerCollision) await pc.setLocalDescription({ type: "rollback" });
      await pc.setRemoteDescription(description);
      link.remoteDescriptions++;
      if (description.type === "offer") {
        await pc.setLocalDescription();
        const answer = pc.localDescription;
        if (answer !== null && answer.type === "answer") this.send(link, { description: { type: "answer", sdp: answer.sdp } });
      }
      // The first offer came from the other side, as arranged: now this side may offer too.
      this.releaseFirstOffer(link, description.type === "offer");
    }
    if (signal.candidate !== undefined) {
      // A candidate of an ICE generation the remote side has since restarted away from (it was
      // sent before the new offer, and arrives after it) belongs to no current m-section.
      const ufrag = signal.candidate.usernameFragment;
      if (typeof ufrag === "string" && pc.remoteDescription !== null && !remoteUfrags(pc.remoteDescription.sdp).has(ufrag)) return;
      try {
        await pc.addIceCandidate(signal.candidate);
      } catch (error) {
        // Candidates of an offer we ignored fail to apply; that is expected.
        if (!link.ignoreOffer) throw error;
      }
    }
  }
}
