/**
 * The relay: listeners in, one handler per STUN method, allocations out. It owns every socket it
 * opens and closes every one of them on `stop()`, so no relay port outlives its allocation.
 */
import { readFileSync } from "node:fs";
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from "node:net";
import { createSecureContext, createServer as createTlsServer, type Server as TlsServer } from "node:tls";
import { FLEET_LIMITS, type Revocation } from "../../shared/fleet/protocol.js";
import { TurnKeyring } from "../../shared/turn/credentials.js";
import { Allocation, type AllocationLimits, type AllocationOwner, type ClientLink } from "../allocation/allocation.js";
import { AllocationTable } from "../allocation/allocation-table.js";
import { PortPool } from "../allocation/port-pool.js";
import { RESERVATION_LIFETIME_MS, ReservationTable, type ReservedPort } from "../allocation/reservations.js";
import { RevocationList } from "../allocation/revocations.js";
import { LongTermAuthenticator, type AuthSuccess } from "../auth/long-term.js";
import { NonceIssuer, newNonceSecret } from "../auth/nonce.js";
import { CoarseClock } from "../clock.js";
import type { RelayConfig } from "../config.js";
import { compilePeerFilter } from "../policy/peer-filter.js";
import { LiveCounts } from "../policy/live-counts.js";
import { sourceOf } from "../policy/source-address.js";
import { ByteBucket } from "../policy/bandwidth.js";
import { SourceRateLimiter } from "../policy/rate-limit.js";
import { INTERFACE_REFRESH_MS, SelfGuard } from "../policy/self-guard.js";
import { AttributeType, StunClass, StunMethod } from "../stun/constants.js";
import { encodeText, encodeUnknownAttributes, readLifetime, type TransportAddress } from "../stun/attributes.js";
import { verifyFingerprint } from "../stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../stun/message.js";
import { CHANNEL_DATA_HEADER_LENGTH, channelDataLength, startsChannelData } from "../turn/channel-data.js";
import { isSendIndication } from "../turn/indications.js";
import type { AllocationRequest, TurnContext } from "./context.js";
import { allocateSuccess, handleAllocate, quotaAnswer, reservationRefused } from "./handlers/allocate.js";
import { handleBinding } from "./handlers/binding.js";
import { handleChannelBind } from "./handlers/channel-bind.js";
import { handleCreatePermission } from "./handlers/create-permission.js";
import { handleRefresh } from "./handlers/refresh.js";
import { handleSendIndication } from "./handlers/send.js";
import { buildResponse, failure, refused, type Answer } from "./responses.js";
import { RelayStats } from "./stats.js";
import { requestDigest, TransactionCache, transactionKey as transactionKeyOf } from "./transaction-cache.js";
import { FreedMemoryReturn } from "../ops/freed-memory.js";
import { STREAM_BACKLOG_BYTES, STREAM_BACKLOG_HARD_BYTES, STREAM_BACKLOG_TIMEOUT_MS } from "../transport/stream.js";
import { listenNativeStream, resolveTcpIo } from "../transport/native-stream.js";
import { FRAME_COMPLETION_TIMEOUT_MS, serveStreamConnection, type StreamConnectionLimits } from "../transport/stream-connection.js";
import type { StreamListener, StreamSocket } from "../transport/stream-socket.js";
import { setStreamFlushPoint } from "../transport/stream-batch.js";
import { clientKey, listenerKey, UdpClientLink } from "../transport/udp.js";
import type { AddressPortMap } from "../allocation/peer-map.js";
import type { MeteredAllocation } from "../fleet/usage-ledger.js";
import { adoptNativeUdpSocket, trimFreedNativeMemory } from "../transport/native-udp.js";
import type { LentPort, PrimaryLink, WorkerSeat } from "../cluster/seat.js";
import { LISTENER_BUFFER_BYTES, openRelayUdpSocket, RELAY_SOCKET_BUFFER_BYTES, resolveUdpIo, type RelayUdpSocket } from "../transport/udp-socket.js";

/** How often expired allocations, permissions and channels are swept: one timer for all of them. */
export const SWEEP_INTERVAL_MS = 1_000;
/**
 * While draining, an allocation that relays fewer than DRAIN_QUIET_PACKETS packets (both ways
 * together) in DRAIN_QUIET_MS carries no call: its call moved to another relay (browsers keep the old
 * allocation refreshed for a while after an ICE restart) or never started. It is ended, so the relay
 * can exit as soon as its calls have left instead of at --drain-timeout. Audio alone is ~50 packets
 * a second; what stays under the bar is ICE's keepalives (a few packets in 5 s).
 */
export const DRAIN_QUIET_MS = 5_000;
export const DRAIN_QUIET_PACKETS = 25;
/** Tries at a shared UDP+TCP port when the listening port is 0 (tests). */
const PORT_ZERO_ATTEMPTS = 5;
/** Ports tried before an Allocate gives up with 508 when ports in the range are taken by other programs. */
const BIND_ATTEMPTS = 8;

export interface RelayEvent {
  event: "allocation-start" | "allocation-end" | "request-failed";
  [field: string]: unknown;
}

export interface ListenerAddress {
  transport: "udp" | "tcp" | "tls";
  address: string;
  port: number;
}

/** What /readyz reports: ready, or why not. */
export interface Readiness {
  ready: boolean;
  /** Empty when ready; otherwise what an operator should look at. */
  problems: string[];
}

/** What SIGHUP re-reads: the secrets and the TLS files (the paths may have changed too). */
export interface ReloadableSettings {
  secrets: readonly string[];
  certFile: string | null;
  keyFile: string | null;
}

/** What `revoke()` did with a batch of revocations (the fleet logs it). */
export interface RevokeOutcome {
  /** Revocations now held (new, or a later `until` for a target held already). */
  held: number;
  /** Revocations whose `until` had passed: nothing to do. */
  past: number;
  /** Revocations not held: the list was full (FLEET_LIMITS.maxRevocations live ones). */
  full: number;
  /** Allocations ended because a revocation covers their credential. */
  ended: number;
}

/**
 * Told of every allocation's start and end, in the same tick it joins or leaves the table (the
 * fleet's usage ledger, relay/fleet/usage-ledger.ts). Never called per packet.
 */
export interface AllocationMeter {
  opened(allocation: MeteredAllocation): void;
  /** `endedAt`: the Date.now() the end is logged with, so the lifetime counted is the one logged. */
  ended(allocation: MeteredAllocation, endedAt: number): void;
}

/** The answer to any TURN request made with a revoked credential. */
const REVOKED_REASON = "Forbidden: this credential was revoked; the app must issue a new one";

/** Connections a stream listener accepts at once; each costs a file descriptor. */
export const MAX_STREAM_CONNECTIONS = 10_000;
/** A TLS handshake must finish within this (Node's default is 120 s, long enough to hold a socket per silent client). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The bounds each TCP/TLS connection is held to (transport/stream.ts, transport/stream-connection.ts, and above). */
export interface StreamLimits extends StreamConnectionLimits {
  backlogBytes: number;
  backlogHardBytes: number;
  backlogTimeoutMs: number;
  frameTimeoutMs: number;
  /** Read when the TLS listener is created (`start()`). */
  tlsHandshakeTimeoutMs: number;
}

export class RelayServer implements TurnContext {
  readonly table = new AllocationTable();
  readonly clock = new CoarseClock();
  readonly peers;
  private readonly ports: PortPool;
  /** Ports held for RESERVATION-TOKENs (EVEN-PORT with the R bit); each counts in the pool until used or expired. */
  readonly reservations: ReservationTable<ReservedPort>;
  private readonly auth: LongTermAuthenticator;
  private readonly transactions = new TransactionCache();
  /** Gives the C heap's freed pages back once a burst of allocations has settled. */
  private readonly freedMemory = new FreedMemoryReturn(trimFreedNativeMemory);
  private readonly listeners: RelayUdpSocket[] = [];
  /** What carries UDP, resolved from --udp-io when the relay starts. */
  private udpIo: "native" | "dgram" = "dgram";
  /** What carries TURN over plain TCP, resolved from --tcp-io when the relay starts (a cluster worker's is net). */
  private tcpIo: "native" | "net" = "net";
  private readonly streamListeners: StreamListener[] = [];
  /** The TURN connections (TCP sockets, TLS sockets once their handshake is done). */
  private readonly connections = new Set<StreamSocket>();
  /** Every accepted TCP connection, TLS handshakes under way included: `stop()` ends them all. */
  private readonly acceptedSockets = new Set<StreamSocket>();
  /** Open TCP/TLS connections by source (`sourceOf`), for --max-connections-per-ip; a source leaves the map at 0. */
  private readonly connectionsPerIp = new LiveCounts();
  /**
   * Per-connection bounds on TCP/TLS: the named constants, in a field so tests can shorten the times
   * (before `start()` for the TLS handshake).
   */
  readonly streamLimits: StreamLimits = {
    backlogBytes: STREAM_BACKLOG_BYTES,
    backlogHardBytes: STREAM_BACKLOG_HARD_BYTES,
    backlogTimeoutMs: STREAM_BACKLOG_TIMEOUT_MS,
    frameTimeoutMs: FRAME_COMPLETION_TIMEOUT_MS,
    tlsHandshakeTimeoutMs: TLS_HANDSHAKE_TIMEOUT_MS,
  };
  private readonly tlsServers: TlsServer[] = [];
  private sweepTimer: NodeJS.Timeout | null = null;
  private started = false;
  private stopped = false;
  /** Set by `drain()`: new allocations are refused, live ones carry on while they carry a call. */
  private draining = false;
  /** While draining: each allocation's packet count when it was last seen busy, and when. */
  private readonly drainMarks = new WeakMap<Allocation, { packets: number; at: number }>();
  /** Called whenever an allocation ends while someone waits for the table to empty. */
  private readonly idleWaiters = new Set<() => void>();
  /** Counters for the metrics; plain integers, nothing per packet. */
  readonly stats = new RelayStats();
  /**
   * Credentials the fleet revoked, each until the credentials it covers expire: checked on every
   * authenticated TURN request and once per allocation when a revocation arrives, never per packet.
   */
  readonly revocations: RevocationList;
  /** Answers to requests without a valid credential, per source IP: the relay is no amplifier. */
  private readonly unauthenticated: SourceRateLimiter;
  /** bps-capacity: all allocations together; null when unlimited. */
  private readonly bandwidth: ByteBucket | null;
  /** Set once the listeners are bound and their ports known; refreshed by the sweep (interfaces change). */
  private self = new SelfGuard([], [], []);
  /** The limits every allocation without a --max-bps bucket of its own shares (limitsForNewAllocation). */
  private unmeteredLimits: AllocationLimits | undefined;
  private interfacesReadAt = Date.now();
  private meter: AllocationMeter | null = null;
  /** In a worker process: each allocation's hold in the primary's cross-worker quotas, given back when it ends. */
  private readonly quotaHolds = new Map<Allocation, number>();
  /** In a worker process: each reservation's hold in the primary's per-user count of reservations. */
  private readonly reservationHolds = new Map<ReservedPort, number>();
  /** In a worker process: ports of this worker's range lent to another (a reservation used there), until given back. */
  private readonly lentPorts = new Set<number>();
  /** In a worker process: ports this worker borrowed (bound here, from another worker's range) → the lender's slot. */
  private readonly borrowedPorts = new Map<number, number>();

  /**
   * `worker`: set in a worker process of a relay with several (relay/cluster/worker.ts): its seat
   * (inherited UDP listeners, its slice of the port range, which `config` must already carry) and the
   * primary: its quotas, asked before every allocation, and other workers' reservations. Null: the
   * relay is this one process.
   */
  constructor(
    readonly config: RelayConfig,
    private readonly onEvent: (event: RelayEvent) => void = () => {},
    private readonly worker: { seat: WorkerSeat; primary: PrimaryLink } | null = null,
  ) {
    this.peers = compilePeerFilter({
      allowLoopback: config.allowLoopbackPeers,
      allowedPeers: config.allowedPeerIps,
      deniedPeers: config.deniedPeerIps,
    });
    this.ports = new PortPool(config.minPort, config.maxPort);
    this.reservations = new ReservationTable({
      lifetimeMs: RESERVATION_LIFETIME_MS,
      perUser: config.userQuota,
      ...(worker !== null && { tokenFirstByte: worker.seat.slot }),
    });
    this.unauthenticated = new SourceRateLimiter({ ratePerSecond: config.unauthenticatedRate, burst: config.unauthenticatedBurst });
    this.bandwidth = config.bpsCapacity > 0 ? new ByteBucket(config.bpsCapacity) : null;
    this.revocations = new RevocationList(FLEET_LIMITS.maxRevocations, config.maxCredentialTtl + config.credentialClockSkew);
    this.auth = new LongTermAuthenticator({
      keyring: new TurnKeyring(config.secrets),
      realm: config.realm,
      clockSkewSeconds: config.credentialClockSkew,
      maxTtlSeconds: config.maxCredentialTtl,
      nonces: new NonceIssuer({ secret: worker === null ? newNonceSecret() : Buffer.from(worker.seat.nonceSecret, "hex"), lifetimeSeconds: config.staleNonceSeconds }),
    });
  }

  get allocationCount(): number {
    return this.table.size;
  }

  get freePorts(): number {
    return this.ports.available;
  }

  /** Binds every listener; resolves with their addresses (port 0 in the config picks a free one). */
  async start(): Promise<ListenerAddress[]> {
    // First, so --udp-io=native without the addon fails before anything is bound.
    this.udpIo = resolveUdpIo(this.config.udpIo);
    // A worker's TCP comes through the cluster's shared handle, which only Node's net can take.
    this.tcpIo = this.worker !== null ? "net" : resolveTcpIo(this.config.tcpIo);
    setStreamFlushPoint(this.udpIo === "native" ? "callback" : "turn");
    this.clock.start();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    const bound: ListenerAddress[] = [];
    const tls = this.config.certFile !== null && this.config.keyFile !== null
      ? { cert: readFileSync(this.config.certFile), key: readFileSync(this.config.keyFile) }
      : null;
    for (const ip of this.config.listeningIps) {
      bound.push(...(await this.listenUdpAndTcp(ip)));
      if (tls !== null && this.config.tlsListeningPort !== null) {
        const server = createTlsServer({ ...tls, handshakeTimeout: this.streamLimits.tlsHandshakeTimeoutMs });
        bound.push(await this.listenStream(server, "tls", ip, this.config.tlsListeningPort));
        this.tlsServers.push(server);
      }
    }
    this.started = true;
    this.self = new SelfGuard(
      bound.map((listener) => listener.port),
      this.config.listeningIps,
      this.config.externalIps.map((external) => external.public),
    );
    this.unmeteredLimits = undefined; // made again with this guard
    return bound;
  }

  /** What carries the relay's UDP (after `start()`): the batched native addon or Node's dgram. */
  get udpImplementation(): "native" | "dgram" {
    return this.udpIo;
  }

  /** What carries the relay's TURN over TCP (after `start()`): the native addon or Node's net. */
  get tcpImplementation(): "native" | "net" {
    return this.tcpIo;
  }

  /** Whether `address:port` is one of this relay's listeners (no peer may be). */
  isOwnListener(address: string, port: number): boolean {
    return this.self.isListener(address, port);
  }

  /**
   * UDP and TCP on the same port. With port 0 (tests) UDP picks a free port and TCP takes the same
   * number, which another program may hold on TCP alone: then both are tried again elsewhere.
   */
  private async listenUdpAndTcp(ip: string): Promise<ListenerAddress[]> {
    if (this.worker !== null) return this.listenAsWorker(ip, this.worker.seat);
    const attempts = this.config.listeningPort === 0 && this.config.udp && this.config.tcp ? PORT_ZERO_ATTEMPTS : 1;
    for (let attempt = 1; ; attempt++) {
      const bound: ListenerAddress[] = [];
      let port = this.config.listeningPort;
      if (this.config.udp) {
        const address = await this.listenUdp(ip, port);
        port = address.port;
        bound.push(address);
      }
      if (!this.config.tcp) return bound;
      try {
        bound.push(await this.listenTcp(ip, port));
        return bound;
      } catch (error) {
        if (attempt >= attempts || (error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
        const udp = this.listeners.pop()!;
        await new Promise<void>((resolve) => udp.close(() => resolve()));
      }
    }
  }

  /**
   * A worker's listeners: its member of the UDP listener's SO_REUSEPORT group, which the primary
   * bound and handed down, and TCP on the same port through the cluster's shared handle (the
   * primary accepts; connections are dealt round-robin to the workers).
   */
  private async listenAsWorker(ip: string, seat: WorkerSeat): Promise<ListenerAddress[]> {
    const bound: ListenerAddress[] = [];
    const udp = seat.udp.find((listener) => listener.ip === ip);
    if (this.config.udp) {
      if (udp === undefined) throw new Error(`the primary handed this worker no UDP socket for ${ip}`);
      bound.push(this.serveUdp(adoptNativeUdpSocket(udp.fd, LISTENER_BUFFER_BYTES), udp.ip, udp.port));
    }
    if (this.config.tcp) bound.push(await this.listenStream(createNetServer(), "tcp", ip, seat.streamPorts[ip] ?? this.config.listeningPort));
    return bound;
  }

  private async listenUdp(ip: string, port: number): Promise<ListenerAddress> {
    const socket = await openRelayUdpSocket(this.udpIo, ip.includes(":") ? 6 : 4, ip, port, LISTENER_BUFFER_BYTES);
    const bound = socket.address();
    return this.serveUdp(socket, bound.address, bound.port);
  }

  /** Serves the UDP listener `socket`, bound to `boundIp`:`port`. */
  private serveUdp(socket: RelayUdpSocket, boundIp: string, port: number): ListenerAddress {
    const listener = listenerKey(boundIp, port);
    const clients = this.table.udpClientsAt(listener);
    socket.onDatagram = (data, offset, length, address, fromPort) => {
      try {
        this.fromUdpClient(socket, listener, clients, data, offset, length, address, fromPort);
      } catch (error) {
        // No datagram may take the relay down; one that trips an unforeseen error is dropped and reported.
        this.requestFailed(clientKey("udp", address, fromPort, listener), error);
      }
    };
    this.listeners.push(socket);
    return { transport: "udp", address: boundIp, port };
  }

  /** The TURN-over-TCP listener on `ip`:`port`, on the native addon or on Node's net (--tcp-io). */
  private async listenTcp(ip: string, port: number): Promise<ListenerAddress> {
    if (this.tcpIo === "net") return this.listenStream(createNetServer(), "tcp", ip, port);
    const server = listenNativeStream(ip, port);
    this.serveStreamListener(server, "tcp");
    const address = server.address();
    return { transport: "tcp", address: address.address, port: address.port };
  }

  /** Admits and serves what `server` accepts, and keeps it among the listeners `stop()` closes. */
  private serveStreamListener(server: StreamListener, transport: "tcp" | "tls"): void {
    server.maxConnections = MAX_STREAM_CONNECTIONS;
    if (transport === "tls") {
      // Counted per address on the raw TCP connection, before any handshake work is spent on it.
      server.prependListener("connection", (socket: StreamSocket) => this.admitStream(socket));
      server.on("secureConnection", (socket: StreamSocket) => this.fromStreamClient(socket, transport));
    } else {
      server.on("connection", (socket: StreamSocket) => {
        if (this.admitStream(socket)) this.fromStreamClient(socket, transport);
      });
    }
    // A failed TLS handshake or a reset before it must not crash the relay.
    server.on("tlsClientError", (error: NodeJS.ErrnoException, socket: StreamSocket) => {
      if (error.code === "ERR_TLS_HANDSHAKE_TIMEOUT") this.stats.streamClosed.tls_handshake++;
      socket.destroy();
    });
    server.on("error", () => {});
    this.streamListeners.push(server);
  }

  /** Binds Node's `server` (TCP, or TLS) on `ip`:`port` and serves it. */
  private async listenStream(server: NetServer, transport: "tcp" | "tls", ip: string, port: number): Promise<ListenerAddress> {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ port, host: ip, ipv6Only: ip.includes(":") }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.serveStreamListener(server, transport);
    const address = server.address() as AddressInfo;
    return { transport, address: address.address, port: address.port };
  }

  /** Whether the relay is serving and taking new allocations, or what stands in the way (/readyz). */
  readiness(): Readiness {
    const problems: string[] = [];
    if (!this.started) problems.push("the listeners are not bound yet");
    if (this.draining) problems.push("draining: new allocations are refused");
    if (this.stopped) problems.push("stopped");
    if (this.auth.secretCount === 0) problems.push("no secret loaded");
    return { ready: problems.length === 0, problems };
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Stops taking new allocations (an Allocate is answered 508, so clients move on to another relay)
   * while live allocations carry on relaying until they end, or until they go quiet (DRAIN_QUIET_MS).
   * Listeners stay open: a UDP client's Refresh, permissions and data come through them.
   */
  drain(): void {
    this.draining = true;
  }

  /**
   * Takes revocations from the fleet: each is held until its `until`, and every live allocation
   * whose credential one covers ends at once (reason "revoked"): its relay port closes, data stops,
   * and any later request with that credential, Allocate included, is answered 403. One walk of the
   * allocation table per batch.
   */
  revoke(revocations: readonly Revocation[]): RevokeOutcome {
    const nowSeconds = Math.floor(Date.now() / 1000);
    const outcome: RevokeOutcome = { held: 0, past: 0, full: 0, ended: 0 };
    for (const revocation of revocations) {
      const added = this.revocations.add(revocation, nowSeconds);
      if (added === "past") outcome.past++;
      else if (added === "full") outcome.full++;
      else outcome.held++;
    }
    if (outcome.held === 0) return outcome;
    for (const allocation of [...this.table.values()]) {
      if (!this.revocations.covers(allocation.owner, nowSeconds)) continue;
      this.stats.allocationsRevoked[allocation.client.transport]++;
      this.closeAllocation(allocation, "revoked");
      outcome.ended++;
    }
    return outcome;
  }

  /**
   * Sets what is told of allocations starting and ending (null: nothing). The allocations live now
   * are handed to it as opened, so it misses none made before it was set.
   */
  setAllocationMeter(meter: AllocationMeter | null): void {
    this.meter = meter;
    if (meter !== null) for (const allocation of this.table.values()) meter.opened(allocation);
  }

  /** Resolves true once no allocation is left, or false after `timeoutMs` with some still live. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.table.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let settled = false;
      const finish = (idle: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.idleWaiters.delete(check);
        resolve(idle);
      };
      // The last allocation often ends inside a request (a Refresh with LIFETIME 0): its answer is
      // sent later in this tick, so the waiter is told on the next turn, before anything stops.
      const check = () => {
        if (this.table.size === 0) setImmediate(() => finish(this.table.size === 0));
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.idleWaiters.add(check);
    });
  }

  /**
   * Takes new secrets and TLS files without touching live allocations (SIGHUP). Everything is read
   * and checked first, so a bad file throws and leaves the running settings as they were.
   */
  reload(settings: ReloadableSettings): { secrets: number; tls: boolean } {
    const keyring = new TurnKeyring(settings.secrets);
    const context = readReloadedTls(settings, this.tlsServers.length > 0);
    this.auth.replaceKeyring(keyring);
    if (context !== null) for (const server of this.tlsServers) server.setSecureContext(context);
    return { secrets: keyring.secrets.length, tls: context !== null };
  }

  /** Closes every allocation (their ports go back to the pool) and every listener. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.clock.stop();
    const closing = [...this.table.values()].map((allocation) => new Promise<void>((resolve) => this.closeAllocation(allocation, "relay stopping", resolve)));
    closing.push(...this.reservations.clear().map((held) => new Promise<void>((resolve) => this.releaseReserved(this.reservationLeft(held)!, resolve))));
    closing.push(...this.listeners.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
    closing.push(...this.streamListeners.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const connection of this.connections) connection.destroy();
    for (const socket of this.acceptedSockets) socket.destroy();
    this.listeners.length = 0;
    this.streamListeners.length = 0;
    this.tlsServers.length = 0;
    await Promise.all(closing);
  }

  // ---------------------------------------------------------------------------------------------
  // Transports in

  /**
   * A datagram to the listener `socket` (its "address:port" is `listener`; `clients` its UDP clients'
   * allocations). `data[offset .. offset + length)` is only valid during the call (udp-socket.ts).
   */
  private fromUdpClient(
    socket: RelayUdpSocket,
    listener: string,
    clients: AddressPortMap<Allocation>,
    data: Buffer,
    offset: number,
    length: number,
    address: string,
    port: number,
  ): void {
    // Port 0 is no address an answer or relayed data can reach (dgram throws on it): a forged or
    // broken sender. Dropped before anything is decoded; one integer comparison on the data path.
    if (port === 0) {
      this.stats.udpSourcePortZero++;
      return;
    }
    if (length === 0) return;
    const first = data[offset]!;
    if (startsChannelData(first)) {
      // ChannelData: the hot path. Look up, check, send; nothing built.
      const allocation = clients.get(address, port);
      const dataLength = length < CHANNEL_DATA_HEADER_LENGTH ? -1 : channelDataLength(data, offset);
      if (allocation === undefined || dataLength < 0 || CHANNEL_DATA_HEADER_LENGTH + dataLength > length) return;
      allocation.toChannel(data.readUInt16BE(offset), data, offset + CHANNEL_DATA_HEADER_LENGTH, dataLength);
      return;
    }
    if (first > 0x03) return; // neither STUN nor ChannelData
    const datagram = data.subarray(offset, offset + length);
    const allocation = clients.get(address, port);
    if (this.relaySendIndication(datagram, allocation)) return;
    // A request outlives this call (authentication is asynchronous): it gets its own copy.
    const request = this.decodeRequest(Buffer.from(datagram));
    if (request !== null) this.answer(new UdpClientLink(socket, listener, address, port), request);
  }

  /** A Send indication is relayed at once (data path); true when `data` was one, relayed or dropped. */
  private relaySendIndication(data: Buffer, allocation: Allocation | undefined): boolean {
    if (!isSendIndication(data)) return false;
    if (allocation !== undefined) handleSendIndication(allocation, data, this.clock.now);
    return true;
  }

  /**
   * A STUN request to answer, or null for anything else (dropped). A request that carries
   * FINGERPRINT must carry the right one (RFC 8489 §7.3: otherwise it is silently discarded): a
   * wrong one means the bytes were damaged or are not STUN at all (another protocol on the port).
   */
  private decodeRequest(data: Buffer): StunMessage | null {
    const decoded = decodeStunMessage(data);
    if (!decoded.ok || decoded.message.messageClass !== StunClass.Request) return null;
    if (decoded.message.fingerprint !== undefined && !verifyFingerprint(decoded.message)) {
      this.stats.badFingerprints++;
      return null;
    }
    return decoded.message;
  }

  /**
   * A new TCP connection (for TLS: before its handshake), counted against --max-connections-per-ip
   * until it closes; false when it was refused and closed. The count is taken and given back on the
   * raw socket, whose 'close' comes exactly once whatever ends it.
   */
  private admitStream(socket: StreamSocket): boolean {
    const address = socket.remoteAddress;
    if (address === undefined) {
      // Reset before it could be looked at: nothing to serve.
      socket.destroy();
      return false;
    }
    const ip = sourceOf(address);
    const cap = this.config.maxConnectionsPerIp;
    if (cap > 0 && this.connectionsPerIp.get(ip) >= cap) {
      this.stats.streamClosed.per_ip_limit++;
      socket.destroy();
      return false;
    }
    this.connectionsPerIp.add(ip);
    this.acceptedSockets.add(socket);
    socket.once("close", () => {
      this.acceptedSockets.delete(socket);
      this.connectionsPerIp.remove(ip);
    });
    if (cap > 0 && this.worker !== null) this.admitStreamAcrossWorkers(socket, address);
    return true;
  }

  /**
   * In a worker: the cap counts every worker's connections from the source, so the primary is asked
   * too. The connection is served meanwhile (a round trip between processes); when the primary
   * refuses it, it is closed then, so the source never holds more than the cap for longer than that.
   */
  private admitStreamAcrossWorkers(socket: StreamSocket, address: string): void {
    const primary = this.worker!.primary;
    void primary.admitConnection(address).then((answer) => {
      if (answer === "refused") {
        this.stats.streamClosed.per_ip_limit++;
        socket.destroy();
      } else if (answer !== null) {
        if (socket.destroyed) primary.releaseConnection(answer);
        else socket.once("close", () => primary.releaseConnection(answer));
      }
    });
  }

  /** Open TCP and TLS connections from `ip` (from its /64 for IPv6), as --max-connections-per-ip counts them. */
  connectionsFrom(ip: string): number {
    return this.connectionsPerIp.get(sourceOf(ip));
  }

  private fromStreamClient(socket: StreamSocket, transport: "tcp" | "tls"): void {
    // Gone before it was served (a reset during the TLS handshake): its 5-tuple is unknown.
    if (socket.destroyed || socket.remoteAddress === undefined) {
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    serveStreamConnection(socket, transport, this.streamLimits, this.config.maxAllocateTimeoutSeconds * 1000, this.stats, {
      hasAllocation: (link) => this.table.byKey(link.key) !== undefined,
      onFrame: (link, frame) => {
        try {
          this.fromStreamFrame(link, frame);
        } catch (error) {
          this.requestFailed(link.key, error);
        }
      },
      onClose: (link) => {
        this.connections.delete(socket);
        // Over TCP and TLS the connection is the 5-tuple: when it goes, so does the allocation. None can
        // be added after this: admission refuses a closed link (openAllocation).
        const allocation = this.table.byKey(link.key);
        if (allocation !== undefined && allocation.client === link) this.closeAllocation(allocation, "client connection closed");
      },
    });
  }

  /** One STUN message or ChannelData frame cut from a TCP/TLS stream. */
  private fromStreamFrame(link: ClientLink, frame: Buffer): void {
    if (startsChannelData(frame[0]!)) {
      this.table.byKey(link.key)?.toChannel(frame.readUInt16BE(0), frame, CHANNEL_DATA_HEADER_LENGTH, frame.length - CHANNEL_DATA_HEADER_LENGTH);
      return;
    }
    if (this.relaySendIndication(frame, this.table.byKey(link.key))) return;
    // A request outlives this call (authentication is asynchronous), and a native connection's
    // frame lies in the addon's reused receive area: it gets its own copy.
    const request = this.decodeRequest(Buffer.from(frame));
    if (request !== null) this.answer(link, request);
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  /** Answers `message` in the background: what handleRequest does not catch itself (an answer that cannot be sent) is reported, never left to reject. */
  private answer(link: ClientLink, message: StunMessage): void {
    this.handleRequest(link, message).catch((error: unknown) => this.requestFailed(link.key, error));
  }

  /** A datagram, frame or request that tripped an unforeseen error: dropped, and reported. */
  private requestFailed(client: string, error: unknown): void {
    this.onEvent({ event: "request-failed", client, error: String(error) });
  }

  private async handleRequest(link: ClientLink, message: StunMessage): Promise<void> {
    const now = Date.now();

    const respond = (answer: Answer, auth?: AuthSuccess) => {
      this.stats.countAnswer(message.method, answer);
      return buildResponse(message, answer, { software: this.config.software, ...(auth !== undefined && { signature: auth }) });
    };
    const answerUnauthenticated = (answer: () => Answer) => this.sendUnauthenticated(link, now, () => respond(answer()));

    if (message.unknownComprehensionRequired.length > 0) {
      return answerUnauthenticated(() => failure(420, "Unknown Attribute", [encodeUnknownAttributes(message.unknownComprehensionRequired)]));
    }
    if (message.method === StunMethod.Binding) return answerUnauthenticated(() => handleBinding(message, link));
    if (!TURN_METHODS.has(message.method)) return answerUnauthenticated(() => failure(400, "Bad Request: unknown method"));

    const transactionId = message.transactionId.toString("hex");
    const transactionKey = transactionKeyOf(link.key, transactionId);
    const digest = requestDigest(message);
    const cached = this.transactions.lookup(transactionKey, digest, now);
    if (cached === "pending" || cached === "ended") return;
    if (cached === "mismatch") {
      this.stats.transactionMismatches++;
      return;
    }
    // A resend is not authenticated again, so it is limited like any unauthenticated answer.
    if (cached !== undefined) return this.sendUnauthenticated(link, now, () => cached);
    // The transaction that made this client's allocation is remembered by the allocation, not the
    // cache (an entry there was ~450 bytes of every fresh allocation for 40 s, issue 16): a copy of
    // it is answered again (RFC 8656 §7.2), anything else under its id is no retransmission.
    const made = this.table.byKey(link.key);
    if (made !== undefined && made.allocateTransactionId === transactionId) {
      if (made.allocateDigest !== digest) {
        this.stats.transactionMismatches++;
        return;
      }
      return this.sendUnauthenticated(link, now, () => this.answerAllocateCopy(made, message, now));
    }

    this.transactions.markPending(transactionKey, digest, now);
    let answer: Answer;
    let response: Buffer;
    try {
      // Like coturn, an allocation outlives its credential while it is refreshed; --strict-expiry ends that.
      // A client may always delete its own allocation, strict or not.
      const acceptExpiredCredential =
        message.method !== StunMethod.Allocate &&
        this.table.byKey(link.key) !== undefined &&
        (!this.config.strictExpiry || isDeletion(message));
      const auth = await this.auth.authenticate(message, link.key, now, { acceptExpiredCredential });
      if (!auth.ok) {
        this.stats.countAuthFailure(auth.kind);
        this.transactions.forget(transactionKey);
        return answerUnauthenticated(() => failure(auth.code, auth.reason, auth.code === 400 ? [] : this.challengeAttributes(link.key, now)));
      }
      // A revoked credential gets nothing more: no allocation, refresh, permission or channel.
      const revoked = this.revocations.covers({ username: auth.username, userId: auth.userId, credentialExpiresAt: auth.expiresAt }, Math.floor(now / 1000));
      answer = revoked ? refused("revoked", 403, REVOKED_REASON) : await this.dispatch(link, message, auth, now, transactionId, digest);
      response = respond(answer, auth);
    } catch (error) {
      this.transactions.forget(transactionKey);
      this.onEvent({ event: "request-failed", method: message.method, error: String(error) });
      return link.sendStun(respond(failure(500, "Server Error")));
    }
    // A new allocation answers copies of its Allocate itself (above); closeAllocation marks the
    // transaction ended when it goes.
    if (message.method === StunMethod.Allocate && answer.ok) this.transactions.forget(transactionKey);
    else this.transactions.store(transactionKey, response, Date.now());
    link.sendStun(response);
  }

  /** The answer to a copy of the Allocate that made `allocation`, signed as the first one was. */
  private answerAllocateCopy(allocation: Allocation, copy: StunMessage, now: number): Buffer {
    const integrity = copy.messageIntegritySha256 !== undefined ? "message-integrity-sha256" : "message-integrity";
    return buildResponse(copy, allocateSuccess(this, allocation, copy.transactionId, now), {
      software: this.config.software,
      signature: { key: allocation.owner.key, integrity },
    });
  }

  /**
   * Sends an answer that was not earned by a valid credential in this request: over UDP the source
   * may be a spoofed victim, so such answers are rate-limited per source IP. The answer is built
   * only once the limit allows it, so a throttled flood costs no work.
   */
  private sendUnauthenticated(link: ClientLink, now: number, answer: () => Buffer): void {
    if (link.transport !== "udp" || this.unauthenticated.allow(link.address.address, now)) link.sendStun(answer());
    else this.stats.rateLimitedAnswers++;
  }

  private challengeAttributes(clientKey: string, now: number) {
    const { realm, nonce } = this.auth.challenge(clientKey, now);
    return [encodeText(AttributeType.Realm, realm), encodeText(AttributeType.Nonce, nonce)];
  }

  private dispatch(link: ClientLink, message: StunMessage, auth: AuthSuccess, now: number, transactionId: string, digest: string): Answer | Promise<Answer> {
    const request = { message, link, auth, now, transactionId, digest };
    switch (message.method) {
      case StunMethod.Allocate:
        return handleAllocate(this, request);
      case StunMethod.Refresh:
        return handleRefresh(this, request);
      case StunMethod.CreatePermission:
        return handleCreatePermission(this, request);
      default:
        return handleChannelBind(this, request);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Allocations

  async openAllocation(link: ClientLink, owner: AllocationOwner, request: AllocationRequest): Promise<Allocation | Answer> {
    // The allocation's bound port and, with the R bit, P+1 bound too, to be held under a new token.
    let bound: ReservedPort | undefined;
    let next: ReservedPort | undefined;
    if (request.reservationToken !== null) {
      // A reservation is a socket already bound: taking it is synchronous, so no other request can take it too.
      bound = this.reservationLeft(this.reservations.take(request.reservationToken, Date.now())) ?? (this.worker === null ? undefined : await this.borrowReserved(request.reservationToken));
      if (bound === undefined) return failure(508, "Insufficient Capacity: the RESERVATION-TOKEN is unknown, already used or expired; allocate without it");
      this.stats.reservations.used++;
    } else {
      const family = request.family;
      const relayIp = this.config.relayIps.find((ip) => (ip.includes(":") ? 6 : 4) === family);
      if (relayIp === undefined) return failure(440, `Address Family not Supported: this relay has no IPv${family} relay address`);
      const bind = (port: number) => openRelayUdpSocket(this.udpIo, family, relayIp, port, RELAY_SOCKET_BUFFER_BYTES).then((socket) => ({ socket, relayIp, port, family }), () => undefined);
      // Ports another program holds are skipped for this request and go back to the pool afterwards.
      const busy: number[] = [];
      try {
        for (let attempt = 0; attempt < BIND_ATTEMPTS && bound === undefined; attempt++) {
          if (this.draining) return refused("draining", 508, "Insufficient Capacity: the relay is draining; use another relay");
          const port = request.reserveNextPort ? this.ports.takePair() : this.ports.take(request.evenPort);
          if (port === null) {
            return refused("no-relay-port", 508, request.reserveNextPort ? "Insufficient Capacity: no even relay port with a free next port is left; allocate without the R bit" : "Insufficient Capacity: no relay port is free");
          }
          const held = await bind(port);
          if (held === undefined) {
            busy.push(port);
            if (request.reserveNextPort) busy.push(port + 1);
            continue;
          }
          if (request.reserveNextPort) {
            next = await bind(port + 1);
            if (next === undefined) {
              busy.push(port + 1);
              this.releaseReserved(held);
              continue;
            }
          }
          bound = held;
        }
      } finally {
        for (const port of busy) this.ports.release(port);
      }
      if (bound === undefined) return refused("no-relay-port", 508, "Insufficient Capacity: could not bind a relay port");
    }

    // In a worker process, the quotas of all workers together: the primary holds one more allocation
    // for this user and source, or says which quota it would exceed.
    // With the R bit, the user's reservations are counted over all workers too (--user-quota).
    let hold: number | undefined;
    let reservationHold: number | undefined;
    if (this.worker !== null) {
      const primary = this.worker.primary;
      const admission = await primary.admit(owner.userId, link.address.address);
      const reservation = admission?.ok === true && next !== undefined ? await primary.admitReservation(owner.userId) : undefined;
      if (admission === null || !admission.ok || reservation === null || reservation?.ok === false) {
        this.releaseReserved(bound);
        if (next !== undefined) this.releaseReserved(next);
        if (admission?.ok === true) primary.release(admission.hold);
        if (admission === null || reservation === null) return failure(508, "Insufficient Capacity: the relay could not check its quotas in time; try again");
        return admission.ok ? reservationRefused() : quotaAnswer(admission.refusal);
      }
      hold = admission.hold;
      reservationHold = reservation?.hold;
    }

    // Checked again after the bind: a drain or another request may have come meanwhile. And the
    // client's connection may have closed while the request was authenticated or the port bound: an
    // allocation admitted now would outlive it, holding its port and quota until it expired. Nothing
    // awaits between this check and `table.add`, so a close cannot slip in between.
    const refusal = link.closed
      ? failure(508, "Insufficient Capacity: the client's connection closed before the allocation was made")
      : this.stopped
        ? failure(508, "Insufficient Capacity: the relay is stopping")
        : this.draining
          ? refused("draining", 508, "Insufficient Capacity: the relay is draining; use another relay")
          : // A revocation may have come while the port was bound: it walked the table without this one.
            this.revocations.covers(owner, Math.floor(Date.now() / 1000))
            ? refused("revoked", 403, REVOKED_REASON)
            : request.admit();
    if (refusal !== null) {
      // Whatever this request bound or took goes back: a used token is spent, its port is not kept.
      this.releaseReserved(bound);
      if (next !== undefined) this.releaseReserved(next);
      if (hold !== undefined) this.worker!.primary.release(hold);
      if (reservationHold !== undefined) this.worker!.primary.releaseReservation(reservationHold);
      return refusal;
    }
    const allocation = new Allocation(link, owner, bound.socket, this.advertised(bound.relayIp, bound.port, bound.family), this.limitsForNewAllocation(), request, request.lifetimeMs);
    this.table.add(allocation);
    if (hold !== undefined) this.quotaHolds.set(allocation, hold);
    this.meter?.opened(allocation);
    this.stats.allocationsOpened[link.transport]++;
    this.freedMemory.changed();
    if (next !== undefined) {
      this.reservations.add(next, owner.userId, allocation, Date.now());
      if (reservationHold !== undefined) this.reservationHolds.set(next, reservationHold);
      this.stats.reservations.issued++;
    }
    this.onEvent({ event: "allocation-start", client: link.key, relayed: `${allocation.relayedAddress.address}:${bound.port}`, user: owner.userId });
    return allocation;
  }

  /** Closes a bound port no allocation took (a reservation that ended, or a refused request's); it rejoins the pool once closed. */
  private releaseReserved(held: ReservedPort, onClosed?: () => void): void {
    held.socket.close(() => {
      this.releasePort(held.port);
      onClosed?.();
    });
  }

  /** A reservation left the table (taken, expired, or the relay stops): its hold in the primary goes back. Returns it. */
  private reservationLeft(held: ReservedPort | undefined): ReservedPort | undefined {
    const hold = held === undefined ? undefined : this.reservationHolds.get(held);
    if (hold !== undefined) {
      this.reservationHolds.delete(held!);
      this.worker!.primary.releaseReservation(hold);
    }
    return held;
  }

  /** A relay port whose socket has closed: back to the pool, or to the worker that lent it. */
  private releasePort(port: number): void {
    const lender = this.borrowedPorts.get(port);
    if (lender === undefined) return this.ports.release(port);
    this.borrowedPorts.delete(port);
    this.worker!.primary.giveBack({ lender, port });
  }

  /**
   * In a worker: the port another worker reserved under `token`, lent through the primary and bound
   * here; undefined when no worker holds the token (or the port could not be bound: it goes back).
   */
  private async borrowReserved(token: Buffer): Promise<ReservedPort | undefined> {
    const lent = await this.worker!.primary.borrowReserved(token);
    if (lent === null) return undefined;
    try {
      const socket = await openRelayUdpSocket(this.udpIo, lent.family, lent.relayIp, lent.port, RELAY_SOCKET_BUFFER_BYTES);
      this.borrowedPorts.set(lent.port, lent.lender);
      return { socket, relayIp: lent.relayIp, port: lent.port, family: lent.family };
    } catch {
      this.worker!.primary.giveBack(lent);
      return undefined;
    }
  }

  /**
   * In a worker: hands the reservation under `token` to another worker. Its socket is closed here
   * (the borrower binds the port once this resolves); the port stays out of this worker's pool until
   * `portGivenBack`. Null when this worker holds no such reservation.
   */
  async lendReserved(token: Buffer): Promise<Omit<LentPort, "lender"> | null> {
    const held = this.reservationLeft(this.reservations.take(token, Date.now()));
    if (held === undefined) return null;
    this.lentPorts.add(held.port);
    await new Promise<void>((resolve) => held.socket.close(() => resolve()));
    return { relayIp: held.relayIp, port: held.port, family: held.family };
  }

  /** A port this worker lent is free again (the borrower closed it, or died). */
  portGivenBack(port: number): void {
    if (this.lentPorts.delete(port)) this.ports.release(port);
  }

  /**
   * What a new allocation's datagrams are checked against: with --max-bps a bucket of its own, else
   * one object for every allocation (one each was 56 bytes of every idle allocation, issue 16).
   */
  private limitsForNewAllocation(): AllocationLimits {
    if (this.config.maxBps > 0) return { clock: this.clock, self: this.self, bandwidth: new ByteBucket(this.config.maxBps), sharedBandwidth: this.bandwidth };
    this.unmeteredLimits ??= { clock: this.clock, self: this.self, bandwidth: null, sharedBandwidth: this.bandwidth };
    return this.unmeteredLimits;
  }

  closeAllocation(allocation: Allocation, reason: string, onClosed?: () => void): void {
    if (allocation.closed) return onClosed?.();
    // Every way an allocation ends comes through here: its counters join the totals in the same
    // tick it leaves the table, and a room member's join its usage with the lifetime logged below.
    const endedAt = Date.now();
    this.table.remove(allocation);
    const hold = this.quotaHolds.get(allocation);
    if (hold !== undefined) {
      this.quotaHolds.delete(allocation);
      this.worker!.primary.release(hold);
    }
    // A copy of its Allocate still on its way must not make a new allocation (TCP and TLS clients never resend).
    if (allocation.client.transport === "udp") {
      this.transactions.markEnded(transactionKeyOf(allocation.client.key, allocation.allocateTransactionId), allocation.createdAt, endedAt);
    }
    this.stats.addEndedTraffic(allocation.traffic);
    this.freedMemory.changed();
    this.meter?.ended(allocation, endedAt);
    const port = allocation.relaySocket.address().port;
    allocation.close(() => {
      this.releasePort(port);
      onClosed?.();
    });
    const { room, peerId } = allocation.owner;
    this.onEvent({
      event: "allocation-end",
      client: allocation.client.key,
      user: allocation.owner.userId,
      reason,
      seconds: Math.round((endedAt - allocation.createdAt) / 1000),
      ...(room !== undefined && peerId !== undefined && { room, peerId, lifetimeMs: Math.max(0, endedAt - allocation.createdAt) }),
      ...allocation.traffic,
    });
    for (const waiter of [...this.idleWaiters]) waiter();
  }

  /**
   * Under --strict-expiry an allocation lives no longer than the credential that made it: once the
   * relay would refuse that credential (its expiry plus the allowed clock skew has passed), the
   * allocation ends, so a revoked or expired user stops relaying within a sweep. Without it, an
   * allocation lives while it is refreshed, as in coturn.
   */
  private credentialHasRunOut(allocation: Allocation, now: number): boolean {
    // The same whole-second comparison the credential check makes (shared/turn/credentials.ts).
    return this.config.strictExpiry && allocation.owner.credentialExpiresAt + this.config.credentialClockSkew < Math.floor(now / 1000);
  }

  /** True once a draining relay has seen this allocation relay under DRAIN_QUIET_PACKETS for DRAIN_QUIET_MS. */
  private quietWhileDraining(allocation: Allocation, now: number): boolean {
    const packets = allocation.traffic.packetsToPeers + allocation.traffic.packetsToClient;
    const mark = this.drainMarks.get(allocation);
    if (mark === undefined || packets - mark.packets >= DRAIN_QUIET_PACKETS) {
      this.drainMarks.set(allocation, { packets, at: now });
      return false;
    }
    return now - mark.at >= DRAIN_QUIET_MS;
  }

  /** The relayed address clients are told: the bound one, or its external-ip mapping. */
  private advertised(relayIp: string, port: number, family: 4 | 6): TransportAddress {
    const mapping = this.config.externalIps.find((external) =>
      external.private !== undefined ? external.private === relayIp : (external.public.includes(":") ? 6 : 4) === family,
    );
    const address = mapping?.public ?? relayIp;
    return { family, address, port };
  }

  private sweep(): void {
    const now = Date.now();
    for (const held of this.reservations.sweep(now)) {
      this.reservationLeft(held);
      this.stats.reservations.expired++;
      this.releaseReserved(held);
    }
    for (const allocation of this.table.values()) {
      if (allocation.expiresAt <= now) this.closeAllocation(allocation, "expired");
      else if (this.credentialHasRunOut(allocation, now)) this.closeAllocation(allocation, "credential expired");
      else if (this.draining && this.quietWhileDraining(allocation, now)) this.closeAllocation(allocation, "drained: carried no call");
      else allocation.sweep(now);
    }
    this.transactions.prune(now);
    this.revocations.prune(Math.floor(now / 1000));
    this.freedMemory.tick(now);
    if (now - this.interfacesReadAt >= INTERFACE_REFRESH_MS) {
      this.interfacesReadAt = now;
      this.self.refresh();
    }
  }
}

/**
 * The TLS files a reload takes, read and checked (the key must match the certificate), or null when
 * TLS is not listening. Throws, before anything is swapped, what the operator must fix.
 */
export function readReloadedTls(settings: ReloadableSettings, tlsListening: boolean): { cert: Buffer; key: Buffer } | null {
  if (!tlsListening) return null;
  if (settings.certFile === null || settings.keyFile === null) throw new Error("TLS is listening, so --cert and --pkey cannot be taken away by a reload; restart the relay to turn TLS off");
  const files = { cert: readFileSync(settings.certFile), key: readFileSync(settings.keyFile) };
  createSecureContext(files);
  return files;
}

/** A Refresh with LIFETIME 0. */
function isDeletion(message: StunMessage): boolean {
  if (message.method !== StunMethod.Refresh) return false;
  const attribute = findAttribute(message, AttributeType.Lifetime);
  if (attribute === undefined) return false;
  const lifetime = readLifetime(message, attribute);
  return lifetime.ok && lifetime.value === 0;
}

const TURN_METHODS: ReadonlySet<number> = new Set([StunMethod.Allocate, StunMethod.Refresh, StunMethod.CreatePermission, StunMethod.ChannelBind]);
