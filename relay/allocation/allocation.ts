/**
 * One TURN allocation (RFC 8656 §2.2): a relay socket on the relay's address, bound to one client
 * 5-tuple, with the permissions and channels the client installed. The data path in both
 * directions lives here: receive, look up, check, send, with no promise, closure or copy per packet.
 *
 * A client's bound channels can be relayed below JavaScript as well (`ChannelRoutes`, the native
 * addon's channel routes, a UDP or plain TCP client's, both ways): this class sets a channel's
 * route while the channel and its peer's permission both live, until the earlier of their expiries,
 * and only when no datagram needs a check beyond those (no bandwidth limit). The rules stay here; what the routes relay is added to
 * `traffic` whenever it is read.
 */
import type { DataPathClock } from "../clock.js";
import { takeBoth, type ByteBucket } from "../policy/bandwidth.js";
import type { SelfGuard } from "../policy/self-guard.js";
import type { TransportAddress } from "../stun/attributes.js";
import type { RelayUdpSocket } from "../transport/udp-socket.js";
import type { ChannelRoutes, DatagramReceiver } from "../transport/relay-udp-socket.js";
import { encodeDataIndication } from "../turn/indications.js";
import { AddressPortMap, type ReadonlyAddressPortMap } from "./peer-map.js";

/**
 * The largest datagram a Data indication can carry: the 16-bit body holds XOR-PEER-ADDRESS (24 bytes
 * for IPv6) and DATA's 4-byte header, and DATA is padded to 4 bytes.
 */
export const MAX_DATA_INDICATION_PAYLOAD = 0xffff - 24 - 4 - 3;

/** How the relay reaches a client: its transport address and how to send it STUN or ChannelData. */
export interface ClientLink {
  readonly transport: "udp" | "tcp" | "tls";
  readonly address: TransportAddress;
  /** The relay's side of the 5-tuple: the listener's address and port ("192.0.2.9:3478"). */
  readonly listener: string;
  /**
   * The whole 5-tuple as text ("udp:192.0.2.1:5000@192.0.2.9:3478"), for maps that are not on the
   * data path. The relay's side is part of it: two clients behind one port-preserving NAT that
   * reach two listening addresses are two clients (RFC 8656 §2.2).
   */
  readonly key: string;
  /**
   * True once the client's TCP/TLS connection is going or gone (never for UDP): no allocation is
   * admitted on a closed link, since nothing would ever end it but its lifetime.
   */
  readonly closed: boolean;
  /** A STUN message the client must get (an answer): never dropped silently. */
  sendStun(message: Buffer): void;
  /** A Data indication: relayed data, which a stream link drops when the client's backlog is full, as UDP would. */
  sendDataIndication(message: Buffer): void;
  /** `data[offset .. offset + length)` may be a reused receive area: send it now or copy it. */
  sendChannelData(channel: number, data: Buffer, offset: number, length: number): void;
  /**
   * Where this client's bound channels on `relaySocket` can be relayed below JavaScript, or null
   * (relay-udp-socket.ts): a UDP client on a native listener has them, and a TCP client on a native
   * connection; a TLS client has none.
   */
  channelRoutesFrom?(relaySocket: RelayUdpSocket): ChannelRoutes | null;
}

export interface ChannelBinding {
  readonly number: number;
  readonly peer: TransportAddress;
  expiresAt: number;
}

/** What the allocation counts, for logs and metrics. */
export interface TrafficCounters {
  packetsToPeers: number;
  bytesToPeers: number;
  packetsToClient: number;
  bytesToClient: number;
  /** Datagrams from peers without a permission, dropped. */
  droppedFromPeers: number;
  /** Datagrams over max-bps or bps-capacity, dropped. */
  droppedOverBandwidth: number;
}

export interface AllocationOwner {
  username: string;
  userId: string;
  /** The long-term key that authenticated the Allocate; responses are signed with it. */
  key: Buffer;
  /** Unix seconds when the credential expires (for strict expiry). */
  credentialExpiresAt: number;
  /**
   * The room of a room member's credential (`<expiry>:<room>/<peer-id>`, shared/turn/turn-user.ts),
   * read once when the allocation is made; absent for a plain user. Counted per room for the fleet.
   */
  room?: string;
  /** The peer id of a room member's credential, read with `room`; absent for a plain user. Usage is counted per (room, peer). */
  peerId?: string;
}

/** What every datagram of an allocation is checked against, shared with the server. */
export interface AllocationLimits {
  readonly clock: DataPathClock;
  /** The relay's own listeners, which are no peers. */
  readonly self: SelfGuard;
  /** max-bps for this allocation, both directions together; null: unlimited. */
  readonly bandwidth: ByteBucket | null;
  /** bps-capacity for the whole relay; null: unlimited. */
  readonly sharedBandwidth: ByteBucket | null;
}

/*
 * What an allocation without permissions or channels points at, shared by all of them: three empty
 * maps per allocation were ~550 bytes of every idle one (issue 16). Never written: `permit` and
 * `bindChannel` put a map of the allocation's own in place first, and `sweep` puts these back.
 */
const NO_PERMISSIONS: Map<string, number> = new Map();
const NO_CHANNELS_BY_NUMBER: Map<number, ChannelBinding> = new Map();
const NO_CHANNELS_BY_PEER = new AddressPortMap<ChannelBinding>();

export class Allocation implements DatagramReceiver {
  private permissionsByAddress = NO_PERMISSIONS;
  private channelMapByNumber = NO_CHANNELS_BY_NUMBER;
  private channelMapByPeer = NO_CHANNELS_BY_PEER;
  /**
   * Where its bound channels are relayed below JavaScript: undefined until its first channel asks
   * (an idle allocation holds none), then the client's routes, or null when it has none.
   */
  private routes: ChannelRoutes | null | undefined = undefined;
  private readonly counters: TrafficCounters = { packetsToPeers: 0, bytesToPeers: 0, packetsToClient: 0, bytesToClient: 0, droppedFromPeers: 0, droppedOverBandwidth: 0 };
  readonly createdAt: number;
  readonly allocateTransactionId: string;
  readonly allocateDigest: string;
  expiresAt: number;
  closed = false;

  constructor(
    readonly client: ClientLink,
    readonly owner: AllocationOwner,
    /** The address the relay socket is bound to. */
    readonly relaySocket: RelayUdpSocket,
    /** What clients are told (XOR-RELAYED-ADDRESS): the bound address, or its external-ip mapping. */
    readonly relayedAddress: TransportAddress,
    private readonly limits: AllocationLimits,
    /** The Allocate that made it (its transaction id in hex, and requestDigest): a copy of it gets the same answer. */
    made: { readonly transactionId: string; readonly digest: string },
    lifetimeMs: number,
  ) {
    this.allocateTransactionId = made.transactionId;
    this.allocateDigest = made.digest;
    this.createdAt = Date.now();
    this.expiresAt = this.createdAt + lifetimeMs;
    relaySocket.receiver = this;
  }

  /** What it relayed and dropped, exact whenever read: what its channel routes relayed is collected first. */
  get traffic(): TrafficCounters {
    this.routes?.collect(this.counters);
    return this.counters;
  }

  /** A datagram from a peer, on the relay socket (this is the socket's DatagramReceiver). */
  receiveDatagram(data: Buffer, offset: number, length: number, address: string, port: number): void {
    try {
      this.fromPeer(data, offset, length, address, port);
    } catch {
      // No datagram may take the relay down; one that trips an unforeseen error is dropped.
      this.counters.droppedFromPeers++;
    }
  }

  /** Peer IP → permission expiry (ms). Permissions are per IP address, not per port (RFC 8656 §9). */
  get permissions(): ReadonlyMap<string, number> {
    return this.permissionsByAddress;
  }

  get channelsByNumber(): ReadonlyMap<number, ChannelBinding> {
    return this.channelMapByNumber;
  }

  get channelsByPeer(): ReadonlyAddressPortMap<ChannelBinding> {
    return this.channelMapByPeer;
  }

  hasPermission(peerAddress: string, now: number): boolean {
    return (this.permissionsByAddress.get(peerAddress) ?? 0) > now;
  }

  /** Client → peer: the payload of a Send indication or a ChannelData message. */
  toPeer(data: Buffer, offset: number, length: number, peerAddress: string, peerPort: number): void {
    // Port 0 is no destination (and dgram throws on it); the relay's own listeners are no peers.
    if (peerPort === 0 || this.limits.self.isListener(peerAddress, peerPort)) return;
    if (!takeBoth(this.limits.bandwidth, this.limits.sharedBandwidth, length, this.limits.clock.now)) {
      this.counters.droppedOverBandwidth++;
      return;
    }
    this.counters.packetsToPeers++;
    this.counters.bytesToPeers += length;
    this.relaySocket.send(data, offset, length, peerPort, peerAddress);
  }

  /** Client → peer over a bound channel; false when the channel is unknown or expired. */
  toChannel(channel: number, data: Buffer, offset: number, length: number): boolean {
    const binding = this.channelMapByNumber.get(channel);
    const now = this.limits.clock.now;
    if (binding === undefined || binding.expiresAt <= now || !this.hasPermission(binding.peer.address, now)) return false;
    this.toPeer(data, offset, length, binding.peer.address, binding.peer.port);
    return true;
  }

  /** Peer → client: over the peer's channel when one is bound, else in a Data indication. */
  private fromPeer(data: Buffer, offset: number, length: number, address: string, port: number): void {
    const now = this.limits.clock.now;
    // Port 0 is no peer the client could answer (toPeer refuses it): a forged sender, dropped.
    if (port === 0 || !this.hasPermission(address, now)) {
      this.counters.droppedFromPeers++;
      return;
    }
    if (!takeBoth(this.limits.bandwidth, this.limits.sharedBandwidth, length, now)) {
      this.counters.droppedOverBandwidth++;
      return;
    }
    this.counters.packetsToClient++;
    this.counters.bytesToClient += length;
    const binding = this.channelMapByPeer.get(address, port);
    if (binding !== undefined && binding.expiresAt > now) {
      this.client.sendChannelData(binding.number, data, offset, length);
      return;
    }
    if (length > MAX_DATA_INDICATION_PAYLOAD) {
      // Too big to wrap in a Data indication (the STUN length field is 16 bits): only a channel carries it.
      this.counters.droppedFromPeers++;
      return;
    }
    const indication = encodeDataIndication(address, port, data, offset, length);
    if (indication !== null) this.client.sendDataIndication(indication);
  }

  /** Installs or refreshes a permission for the peer's IP. */
  permit(peerAddress: string, lifetimeMs: number, now: number): void {
    if (this.permissionsByAddress === NO_PERMISSIONS) this.permissionsByAddress = new Map();
    this.permissionsByAddress.set(peerAddress, now + lifetimeMs);
    // Routes exist only once a channel was bound (bindChannel asks for them).
    if (this.routes === undefined || this.routes === null) return;
    for (const binding of this.channelMapByNumber.values()) if (binding.peer.address === peerAddress) this.route(binding, now);
  }

  /** Binds or refreshes a channel; the caller has checked the rebinding rules. */
  bindChannel(number: number, peer: TransportAddress, lifetimeMs: number, now: number): void {
    const existing = this.channelMapByNumber.get(number);
    if (existing !== undefined) {
      existing.expiresAt = now + lifetimeMs;
      this.route(existing, now);
      return;
    }
    if (this.channelMapByNumber === NO_CHANNELS_BY_NUMBER) {
      this.channelMapByNumber = new Map();
      this.channelMapByPeer = new AddressPortMap();
    }
    const binding: ChannelBinding = { number, peer, expiresAt: now + lifetimeMs };
    this.channelMapByNumber.set(number, binding);
    this.channelMapByPeer.set(peer.address, peer.port, binding);
    this.route(binding, now);
  }

  /**
   * Routes the channel below JavaScript until the earlier of its own expiry and its peer's
   * permission's, or stops routing it when either has run out. The relay's own listeners are no
   * peers (toPeer drops them datagram by datagram), so they are never routed.
   */
  private route(binding: ChannelBinding, now: number): void {
    const routes = this.channelRoutes();
    if (routes === null) return;
    const { address, port } = binding.peer;
    const until = Math.min(binding.expiresAt, this.permissionsByAddress.get(address) ?? 0);
    const routed = until > now && port !== 0 && !this.limits.self.isListener(address, port) && routes.set(binding.number, address, port, until - now);
    if (!routed) routes.delete(binding.number);
  }

  /**
   * The client's channel routes, asked for once. None for an allocation whose datagrams need a
   * check beyond permissions and channels: a bandwidth limit meters every one.
   */
  private channelRoutes(): ChannelRoutes | null {
    if (this.routes === undefined) {
      const metered = this.limits.bandwidth !== null || this.limits.sharedBandwidth !== null;
      this.routes = metered ? null : (this.client.channelRoutesFrom?.(this.relaySocket) ?? null);
    }
    return this.routes;
  }

  /** Drops permissions and channels that have run out; maps left empty go back to the shared empty ones. */
  sweep(now: number): void {
    const permissions = this.permissionsByAddress;
    if (permissions !== NO_PERMISSIONS) {
      for (const [address, expiresAt] of permissions) if (expiresAt <= now) permissions.delete(address);
      if (permissions.size === 0) this.permissionsByAddress = NO_PERMISSIONS;
    }
    const channels = this.channelMapByNumber;
    if (channels !== NO_CHANNELS_BY_NUMBER) {
      for (const [number, binding] of channels) {
        if (binding.expiresAt <= now) {
          channels.delete(number);
          this.routes?.delete(number);
          this.channelMapByPeer.delete(binding.peer.address, binding.peer.port);
        }
      }
      if (channels.size === 0) {
        this.channelMapByNumber = NO_CHANNELS_BY_NUMBER;
        this.channelMapByPeer = NO_CHANNELS_BY_PEER;
      }
    }
  }

  /** Closes the relay socket; `onClosed` runs once the port is really free. */
  close(onClosed: () => void): void {
    if (this.closed) return;
    this.closed = true;
    // Closing the socket ends its routes and what they counted since the last read: read it first.
    this.routes?.collect(this.counters);
    this.relaySocket.close(onClosed);
  }
}
