/**
 * TURN over plain TCP on the native addon (native/stream-io.c, in the same addon as the batched UDP
 * I/O): a listener and its connections with just the members the relay uses (stream-socket.ts), so
 * the rest of the relay serves them as it serves Node's sockets.
 *
 * What it saves, per read: Node's 64 KiB allocation, its Readable state machine and a MakeCallback;
 * per write: a write request and the Writable state machine (stream-io.c says more). The bytes of a
 * read lie in the addon's receive area and are valid only during the 'data' call, as a native UDP
 * datagram is: whatever outlives the call must be copied (the relay copies requests, which wait for
 * authentication; relayed data is sent on at once).
 *
 * Loading never throws: without the addon (or with one built before it had these functions)
 * `--tcp-io=auto` uses Node's net.
 */
import { EventEmitter } from "node:events";
import { getSystemErrorName } from "node:util";
import { resolveIo } from "./io-choice.js";
import { loadNativeUdp } from "./native-udp.js";
import type { ChannelRoutes, NativeStreamConnection, RelayUdpSocket } from "./relay-udp-socket.js";
import type { RoutedBacklog, StreamListener, StreamSocket } from "./stream-socket.js";

/** The addon's stream functions (stream-io.c, "JavaScript entry points"). */
interface StreamAddon {
  setStreamHandlers(
    onConnection: (this: NativeStreamServer, handle: StreamHandle, remoteAddress: string, remotePort: number, localAddress: string, localPort: number) => void,
    onData: (this: NativeStreamSocket, length: number) => void,
    onEnd: (this: NativeStreamSocket, errno: number) => void,
    onRouteDrop: (this: NativeStreamSocket) => void,
  ): void;
  streamReceiveArea(): Buffer;
  listenStream(family: 4 | 6, address: string, port: number, backlog: number, receiver: NativeStreamServer, reusePort?: boolean): StreamHandle;
  startStream(handle: StreamHandle, receiver: NativeStreamSocket): void;
  /** The bytes queued after the write, or -errno. */
  writeStream(handle: StreamHandle, data: Buffer, offset: number, length: number): number;
  streamQueued(handle: StreamHandle): number;
  /** Lets channel routes write peers' data to the connection while its queue stays within `bytes`; 0: not at all. */
  setStreamRouteBacklog(handle: StreamHandle, bytes: number): void;
  /** Bytes written so far, queued ones included, by JavaScript and by routes; answers after close too. */
  streamWritten(handle: StreamHandle): number;
  streamLocalAddress(handle: StreamHandle): [string, number];
  /** Closes the descriptor at once (a listener's port is free when it returns). */
  closeStream(handle: StreamHandle): void;
}
/** A listener's or connection's handle in the addon; a connection's is what its channel routes name. */
type StreamHandle = NativeStreamConnection;

export type NativeStreamLoad = { ok: true; addon: StreamAddon } | { ok: false; reason: string };

/** Connections a listener lets wait for accept(), as Node's listeners do. */
const LISTEN_BACKLOG = 511;

let loaded: NativeStreamLoad | null = null;

export function loadNativeStream(): NativeStreamLoad {
  if (loaded !== null) return loaded;
  const native = loadNativeUdp();
  if (!native.ok) return (loaded = native);
  const addon = native.addon as unknown as StreamAddon;
  if (typeof addon.listenStream !== "function") {
    return (loaded = { ok: false, reason: "the addon was built before it had TCP streams; rebuild it with `npm run build:native`" });
  }
  const area = addon.streamReceiveArea();
  // One handler each for every listener and connection, called with it as `this` (no closure per connection).
  addon.setStreamHandlers(
    function (handle, remoteAddress, remotePort, localAddress, localPort) {
      this.accepted(addon, handle, remoteAddress, remotePort, localAddress, localPort);
    },
    function (length) {
      this.received(area.subarray(0, length));
    },
    function (errno) {
      this.ended(errno);
    },
    function () {
      this.routeDropped();
    },
  );
  return (loaded = { ok: true, addon });
}

/** Which implementation carries the relay's TURN over TCP (`--tcp-io`); `auto` takes native when it loads. */
export type TcpIo = "auto" | "native" | "net";

/** Resolves which implementation `io` means on this machine; throws when `native` cannot load. */
export function resolveTcpIo(io: TcpIo): "native" | "net" {
  return resolveIo("--tcp-io", io, "net", loadNativeStream);
}

/** A Node-style error for an errno the addon reported (EPIPE, ECONNRESET, ...). */
function errnoError(errno: number, what: string): NodeJS.ErrnoException {
  const code = errno > 0 ? getSystemErrorName(-errno) : "EIO";
  return Object.assign(new Error(`${what}: ${code}`), { code, errno: -errno, syscall: what });
}

export class NativeStreamSocket extends EventEmitter implements StreamSocket {
  readonly encrypted = false;
  readonly holdsWrittenBuffers = false;
  destroyed = false;
  /** Told when a channel route drops a peer's data for lack of backlog room (set with the routes). */
  private routedBacklog: RoutedBacklog | null = null;
  /** What the addon's queue held after the last write: 0 means nothing can be queued, so no call is needed to ask. */
  private lastQueued = 0;
  /** Set by every read and write; the idle check clears it. */
  private active = false;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleCallback: (() => void) | null = null;

  constructor(
    private readonly addon: StreamAddon,
    private readonly handle: StreamHandle,
    readonly remoteAddress: string,
    readonly remotePort: number,
    readonly localAddress: string,
    readonly localPort: number,
  ) {
    super();
    addon.startStream(handle, this);
  }

  get writable(): boolean {
    return !this.destroyed;
  }

  /** Counted by the addon, which also writes what channel routes relay to the client. */
  get bytesWritten(): number {
    return this.addon.streamWritten(this.handle);
  }

  get writableLength(): number {
    // Routes queue what the kernel does not take of their writes too: a routed connection always asks.
    if ((this.lastQueued === 0 && this.routedBacklog === null) || this.destroyed) return 0;
    return (this.lastQueued = this.addon.streamQueued(this.handle));
  }

  write(data: Buffer): boolean {
    if (this.destroyed) return false;
    const queued = this.addon.writeStream(this.handle, data, 0, data.length);
    if (queued < 0) {
      this.destroyWith(errnoError(-queued, "write"));
      return false;
    }
    this.lastQueued = queued;
    this.active = true;
    return queued === 0;
  }

  destroy(): void {
    this.destroyWith(undefined);
  }

  /**
   * Routes for this connection's client, in C, when the relay socket is the addon's too
   * (native-udp.ts): both ways, the peer's data written here within `backlog.bytes` of queue.
   */
  channelRoutesFrom(relaySocket: RelayUdpSocket, backlog: RoutedBacklog): ChannelRoutes | null {
    if (this.destroyed) return null;
    const routes = relaySocket.channelRoutesFromStream(this.handle);
    if (routes !== null) {
      this.routedBacklog = backlog;
      this.addon.setStreamRouteBacklog(this.handle, backlog.bytes);
    }
    return routes;
  }

  /** A route dropped a peer's data (stream-io.c's onRouteDrop): the backlog rules count and watch it. */
  routeDropped(): void {
    this.routedBacklog?.dropped();
  }

  /** Nagle is off on every native connection from the start (stream-io.c). */
  setNoDelay(): this {
    return this;
  }

  /**
   * Calls `callback` each time `ms` pass without a read or a write (checked every `ms`, so after
   * between one and two periods of silence). One timer per connection, refreshed, never re-made.
   */
  setTimeout(ms: number, callback: () => void): this {
    this.idleCallback = callback;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = this.destroyed ? null : setTimeout(() => this.checkIdle(), ms);
    return this;
  }

  /** A read (stream-io.c's onData): `chunk` is valid only during this call. */
  received(chunk: Buffer): void {
    this.active = true;
    this.emit("data", chunk);
  }

  /** The peer's end of stream (0) or a read error: the connection closes, as Node's does without allowHalfOpen. */
  ended(errno: number): void {
    this.destroyWith(errno === 0 ? undefined : errnoError(errno, "read"));
  }

  private checkIdle(): void {
    if (this.destroyed || this.idleTimer === null) return;
    const idle = !this.active;
    this.active = false;
    this.idleTimer.refresh();
    if (idle) this.idleCallback?.();
  }

  private destroyWith(error: NodeJS.ErrnoException | undefined): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.addon.closeStream(this.handle);
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    // As Node's sockets do: 'error' (when there was one) and 'close' come on the next tick, never inside destroy().
    process.nextTick(() => {
      if (error !== undefined && this.listenerCount("error") > 0) this.emit("error", error);
      this.emit("close", error !== undefined);
    });
  }
}

/** A native TCP listener: 'connection' with a NativeStreamSocket for each accepted connection, as net.Server does. */
export class NativeStreamServer extends EventEmitter implements StreamListener {
  maxConnections = Number.POSITIVE_INFINITY;
  private connections = 0;
  private closed = false;
  private readonly handle: StreamHandle;
  private readonly bound: { address: string; port: number; family: string };

  /** Binds and listens at once; throws the error (with `code`, e.g. EADDRINUSE) when it cannot. */
  constructor(
    private readonly addon: StreamAddon,
    ip: string,
    port: number,
    reusePort = false,
  ) {
    super();
    const family = ip.includes(":") ? 6 : 4;
    this.handle = addon.listenStream(family, ip, port, LISTEN_BACKLOG, this, reusePort);
    const [address, boundPort] = addon.streamLocalAddress(this.handle);
    this.bound = { address, port: boundPort, family: family === 6 ? "IPv6" : "IPv4" };
  }

  address(): { address: string; port: number; family: string } {
    return this.bound;
  }

  /** Stops accepting; open connections stay, as with net.Server. */
  close(callback?: (error?: Error) => void): this {
    if (this.closed) {
      if (callback !== undefined) process.nextTick(callback, Object.assign(new Error("the listener is not open"), { code: "ERR_SERVER_NOT_RUNNING" }));
      return this;
    }
    this.closed = true;
    this.addon.closeStream(this.handle);
    // The port is free already; the callback and 'close' still come later, as net.Server's do.
    process.nextTick(() => {
      callback?.();
      this.emit("close");
    });
    return this;
  }

  /** A connection accepted (stream-io.c's onConnection): one past maxConnections is closed at once, as net.Server closes it. */
  accepted(addon: StreamAddon, handle: StreamHandle, remoteAddress: string, remotePort: number, localAddress: string, localPort: number): void {
    if (this.connections >= this.maxConnections) return; // not started: the addon closes it
    const socket = new NativeStreamSocket(addon, handle, remoteAddress, remotePort, localAddress, localPort);
    this.connections++;
    socket.once("close", () => this.connections--);
    this.emit("connection", socket);
  }
}

/** A native TCP listener on `ip`:`port` (0: any free port); throws the bind error, or when the addon is missing. */
export function listenNativeStream(ip: string, port: number, reusePort = false): NativeStreamServer {
  const native = loadNativeStream();
  if (!native.ok) throw new Error(native.reason);
  return new NativeStreamServer(native.addon, ip, port, reusePort);
}
