/**
 * The native implementation of `RelayUdpSocket` (udp-socket.ts): a thin layer over the C addon in
 * native/udp-batch.c, which `npm run build:native` (scripts/build-native-udp.mjs) compiles to
 * native/build/udp-batch.node. The bundled relay (scripts/build-relay.mjs) carries the same file at
 * the same path beside relay.mjs.
 *
 * Loading never throws: a machine without the built addon (or not Linux) gets a reason, and
 * `--udp-io=auto` falls back to dgram.
 */
import { createRequire } from "node:module";
import { isIPv4 } from "node:net";
import { fileURLToPath } from "node:url";
import {
  RelayUdpSocketBase,
  UDP_SEND_QUEUE_TOTAL_BYTES,
  type ChannelRoutes,
  type NativeStreamConnection,
  type RelayedCounts,
  type RelayUdpSocket,
  type SendCounts,
  type SendTotals,
} from "./relay-udp-socket.js";

/** The addon's functions (udp-batch.c, "JavaScript entry points"). */
interface UdpBatchAddon {
  /** The one handler of every socket, called with the socket's handle. */
  setDatagramHandler(handler: (handle: NativeHandle, offset: number, length: number, address: string, port: number) => void): void;
  open(family: 4 | 6, address: string, port: number, bufferBytes: number, reusePort?: boolean): NativeHandle;
  /** A bound SO_REUSEPORT socket this process holds without reading it, for another process to adopt: its fd and port. */
  bindShared(family: 4 | 6, address: string, port: number, bufferBytes: number): [fd: number, port: number];
  closeShared(fd: number): void;
  /** Receives on a bound UDP socket this process was given (the handle owns `fd` from then on). */
  adopt(fd: number, bufferBytes: number): NativeHandle;
  receiveArea(): Buffer;
  localAddress(handle: NativeHandle): [string, number];
  send(handle: NativeHandle, data: Buffer, offset: number, length: number, port: number, address: string, channel?: number): number;
  sendCounts(handle: NativeHandle): [queued: number, dropped: number];
  sendTotals(): [queued: number, dropped: number, queuedBytes: number, segmented: number];
  setSendQueueLimit(totalBytes: number): void;
  close(handle: NativeHandle, onClosed?: () => void): void;
  /** Routes `channel` between the client on `listener` and the peer of the `relay` socket (native/channel-routes.h); false when it cannot. */
  routeChannel(relay: NativeHandle, listener: NativeHandle, clientAddress: string, clientPort: number, channel: number, peerAddress: string, peerPort: number, lifetimeMs: number): boolean;
  routeStreamChannel(relay: NativeHandle, stream: NativeStreamConnection, channel: number, peerAddress: string, peerPort: number, lifetimeMs: number): boolean;
  unrouteChannel(relay: NativeHandle, channel: number): void;
  /** Adds what the relay socket's routes relayed since the last call to `counts` [packets and bytes to peers, to the client]; false when it has none. */
  collectRouted(relay: NativeHandle, counts: Float64Array): boolean;
  routeTotals(): [routes: number, routedToPeers: number, routedToClients: number];
  /** glibc's malloc_trim(0): the C heap's free pages back to the system; true when any went. */
  trimMemory(): boolean;
}
/**
 * A socket as the addon names it: a small integer, valid from open until close, whose low
 * HANDLE_INDEX_BITS index a table of the addon's (and `receivers` here).
 */
type NativeHandle = number & { readonly nativeHandle: true };
/** As udp-batch.c's HANDLE_INDEX_BITS. */
const HANDLE_INDEX_MASK = (1 << 20) - 1;

/**
 * The socket of every open handle, by its index: the addon calls the one handler with the handle,
 * and this finds the socket to deliver to. A reference from C to each socket object and a handle
 * object each were ~240 bytes of every idle allocation (issue 16).
 */
const receivers: (NativeRelaySocket | undefined)[] = [];

export type NativeUdpLoad = { ok: true; addon: UdpBatchAddon } | { ok: false; reason: string };

/** Where the addon lies, relative to this module in the source tree and in the bundle alike. */
export const NATIVE_UDP_ADDON_PATH = fileURLToPath(new URL("./native/build/udp-batch.node", import.meta.url));

let loaded: NativeUdpLoad | null = null;
/** The addon's bound on every socket's send queue together (udp-socket.ts sets it), applied when it loads. */
let totalQueueLimit = UDP_SEND_QUEUE_TOTAL_BYTES;

/** Sets the bound on what every native socket's send queue holds together (bytes). */
export function setNativeSendQueueLimit(totalBytes: number): void {
  totalQueueLimit = totalBytes;
  if (loaded?.ok) loaded.addon.setSendQueueLimit(totalBytes);
}

/** What the native sockets' queues did, over every socket, closed ones included; zeros when the addon is not loaded. */
export function nativeSendTotals(): SendTotals {
  if (!loaded?.ok) return { queued: 0, dropped: 0, queuedBytes: 0, segmented: 0 };
  const [queued, dropped, queuedBytes, segmented] = loaded.addon.sendTotals();
  return { queued, dropped, queuedBytes, segmented };
}

/** The channel routes now, and the datagrams they relayed over the process's life, each way; zeros when the addon is not loaded. */
export function nativeRouteTotals(): { routes: number; routedToPeers: number; routedToClients: number } {
  if (!loaded?.ok) return { routes: 0, routedToPeers: 0, routedToClients: 0 };
  const [routes, routedToPeers, routedToClients] = loaded.addon.routeTotals();
  return { routes, routedToPeers, routedToClients };
}

/**
 * Gives the C heap's free pages back to the system (malloc_trim, through the addon); false when
 * none went, or the addon is not loaded.
 */
export function trimFreedNativeMemory(): boolean {
  return loaded?.ok === true && loaded.addon.trimMemory();
}

export function loadNativeUdp(): NativeUdpLoad {
  if (loaded !== null) return loaded;
  if (process.platform !== "linux") {
    loaded = { ok: false, reason: `batched UDP I/O needs Linux (recvmmsg); this is ${process.platform}` };
    return loaded;
  }
  try {
    const addon = createRequire(import.meta.url)(NATIVE_UDP_ADDON_PATH) as UdpBatchAddon;
    addon.setSendQueueLimit(totalQueueLimit);
    const area = addon.receiveArea();
    // One call per datagram from C, into the area every socket shares (reads are synchronous). One
    // handler for all sockets, not a closure each: 10,000 idle allocations are 10,000 sockets.
    addon.setDatagramHandler((handle, offset, length, address, port) => {
      receivers[handle & HANDLE_INDEX_MASK]?.deliver(area, offset, length, address, port);
    });
    loaded = { ok: true, addon };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    loaded = {
      ok: false,
      reason: code === "MODULE_NOT_FOUND"
        ? `the addon is not built (${NATIVE_UDP_ADDON_PATH}); run \`npm run build:native\` (needs gcc and Node's headers)`
        : `the addon at ${NATIVE_UDP_ADDON_PATH} does not load (${(error as Error).message}); rebuild it with \`npm run build:native\``,
    };
  }
  return loaded;
}

/** What collectRouted fills, reused: read and cleared synchronously. */
const routedCounts = new Float64Array(4);

/**
 * One relay socket's channel routes to one client (made once per allocation, and only for one that
 * can use them): the relay socket's routes are deleted and collected alike, whoever the client is.
 */
abstract class RelaySocketRoutes implements ChannelRoutes {
  constructor(
    protected readonly addon: UdpBatchAddon,
    protected readonly relay: NativeHandle,
  ) {}

  abstract set(channel: number, peerAddress: string, peerPort: number, lifetimeMs: number): boolean;

  delete(channel: number): void {
    this.addon.unrouteChannel(this.relay, channel);
  }

  collect(counts: RelayedCounts): void {
    routedCounts.fill(0);
    if (!this.addon.collectRouted(this.relay, routedCounts)) return;
    counts.packetsToPeers += routedCounts[0]!;
    counts.bytesToPeers += routedCounts[1]!;
    counts.packetsToClient += routedCounts[2]!;
    counts.bytesToClient += routedCounts[3]!;
  }
}

/** Routes to and from a UDP client on another native socket, both ways. */
class UdpClientRoutes extends RelaySocketRoutes {
  constructor(
    addon: UdpBatchAddon,
    relay: NativeHandle,
    private readonly listener: NativeHandle,
    private readonly clientAddress: string,
    private readonly clientPort: number,
  ) {
    super(addon, relay);
  }

  set(channel: number, peerAddress: string, peerPort: number, lifetimeMs: number): boolean {
    return this.addon.routeChannel(this.relay, this.listener, this.clientAddress, this.clientPort, channel, peerAddress, peerPort, lifetimeMs);
  }
}

/** Routes for a TCP client on a native connection, both ways (stream-io.c). */
class StreamClientRoutes extends RelaySocketRoutes {
  constructor(
    addon: UdpBatchAddon,
    relay: NativeHandle,
    private readonly stream: NativeStreamConnection,
  ) {
    super(addon, relay);
  }

  set(channel: number, peerAddress: string, peerPort: number, lifetimeMs: number): boolean {
    return this.addon.routeStreamChannel(this.relay, this.stream, channel, peerAddress, peerPort, lifetimeMs);
  }
}

class NativeRelaySocket extends RelayUdpSocketBase implements RelayUdpSocket {
  readonly io = "native";
  readonly handle: NativeHandle;
  /**
   * Read once at bind: the port stays the same, and the handle cannot answer after close. The
   * address is the `ip` it was asked to bind whenever the kernel spells it the same way, so 10,000
   * relay sockets share the relay address's one string instead of holding a copy each.
   */
  private readonly localAddress: string;
  private readonly localPort: number;

  /** `handle`, the addon's for this socket (from open or adopt); `ip` and `port`, the address it was asked to bind, if any. */
  constructor(
    private readonly addon: UdpBatchAddon,
    handle: NativeHandle,
    ip?: string,
    port?: number,
  ) {
    super();
    // Datagrams arrive through the addon's one handler (loadNativeUdp), which finds this socket here.
    this.handle = handle;
    receivers[handle & HANDLE_INDEX_MASK] = this;
    if (ip !== undefined && port !== undefined && port > 0 && isIPv4(ip)) {
      // A dotted quad the kernel bound as given (isIPv4 takes no other spelling): no getsockname per
      // allocation. IPv6 text has many spellings, and port 0 is the kernel's choice: both are asked.
      this.localAddress = ip;
      this.localPort = port;
    } else {
      const [address, boundPort] = addon.localAddress(this.handle);
      this.localAddress = address === ip ? ip : address;
      this.localPort = boundPort;
    }
  }

  /** The addon answers every problem (closed, bad port or address, slice past the buffer) with an errno, never a throw. */
  send(data: Buffer, offset: number, length: number, port: number, address: string): void {
    if (!this.closed) this.addon.send(this.handle, data, offset, length, port, address);
  }

  sendChannelData(channel: number, data: Buffer, offset: number, length: number, port: number, address: string): void {
    if (!this.closed) this.addon.send(this.handle, data, offset, length, port, address, channel);
  }

  /** Routes to a client on another native socket; none to a dgram listener, which C cannot send from. */
  override channelRoutesTo(listener: RelayUdpSocket, clientAddress: string, clientPort: number): ChannelRoutes | null {
    return listener instanceof NativeRelaySocket ? new UdpClientRoutes(this.addon, this.handle, listener.handle, clientAddress, clientPort) : null;
  }

  override channelRoutesFromStream(stream: NativeStreamConnection): ChannelRoutes | null {
    return new StreamClientRoutes(this.addon, this.handle, stream);
  }

  /** Read when the socket is bound and when it ends, never per datagram: a fresh object each time is fine. */
  address(): { address: string; port: number } {
    return { address: this.localAddress, port: this.localPort };
  }

  /** Sends that met a full socket buffer and waited in the addon's queue; those dropped as it (or all queues together) was full too. */
  sendCounts(): SendCounts {
    if (this.closed) return { queued: 0, dropped: 0 };
    const [queued, dropped] = this.addon.sendCounts(this.handle);
    return { queued, dropped };
  }

  protected release(onClosed?: () => void): void {
    // The addon delivers nothing to a closed handle, and may give its index to a later socket.
    if (receivers[this.handle & HANDLE_INDEX_MASK] === this) receivers[this.handle & HANDLE_INDEX_MASK] = undefined;
    this.addon.close(this.handle, onClosed);
  }
}

/**
 * Opens and binds a native socket; throws the bind error (with `code`) or when the addon is missing.
 * `reusePort`: join the address's SO_REUSEPORT group, where the kernel keeps each source on one member.
 */
export function openNativeUdpSocket(family: 4 | 6, ip: string, port: number, bufferBytes: number, reusePort = false): RelayUdpSocket {
  const addon = loadedAddon();
  return new NativeRelaySocket(addon, addon.open(family, ip, port, bufferBytes, reusePort), ip, port);
}

/**
 * Binds a socket into the SO_REUSEPORT group of `ip`:`port` and returns its file descriptor (and the
 * port it got, for port 0). This process holds it without reading it: for a worker process to
 * inherit and adopt. While the holder keeps it open, the group keeps its members, so replacing a
 * worker moves no other worker's clients.
 */
export function bindSharedUdpSocket(family: 4 | 6, ip: string, port: number, bufferBytes: number): { fd: number; port: number } {
  const [fd, boundPort] = loadedAddon().bindShared(family, ip, port, bufferBytes);
  return { fd, port: boundPort };
}

/** Closes a socket bindSharedUdpSocket made. */
export function closeSharedUdpSocket(fd: number): void {
  loadedAddon().closeShared(fd);
}

/** Receives on a bound UDP socket `fd` this process inherited (one bindSharedUdpSocket made in the process that started it); the socket owns it. */
export function adoptNativeUdpSocket(fd: number, bufferBytes: number): RelayUdpSocket {
  const addon = loadedAddon();
  return new NativeRelaySocket(addon, addon.adopt(fd, bufferBytes));
}

function loadedAddon(): UdpBatchAddon {
  const native = loadNativeUdp();
  if (!native.ok) throw new Error(native.reason);
  return native.addon;
}
