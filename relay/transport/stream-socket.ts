/**
 * What the relay needs of a TURN client's TCP or TLS connection, and of the listener that accepts
 * them. Node's `net.Socket`, `tls.TLSSocket` and their servers have these members; so do the native
 * TCP connections of native-stream.ts (`--tcp-io=native`), which implement only these.
 */
import type { EventEmitter } from "node:events";
import type { ChannelRoutes, RelayUdpSocket } from "./relay-udp-socket.js";

export interface StreamSocket extends EventEmitter {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  /** True once the connection is being torn down (destroy, reset, error), before its 'close'. */
  readonly destroyed: boolean;
  readonly writable: boolean;
  /** Bytes written and not yet taken by the kernel. */
  readonly writableLength: number;
  /** Bytes handed to write() so far, the queued ones included. */
  readonly bytesWritten: number;
  /** TLS: true. */
  readonly encrypted?: boolean;
  /**
   * False when write() is done with the buffer it was given by the time it returns (the kernel took
   * the bytes, or they were copied aside), so the caller may refill it at once. Node's sockets keep
   * a written buffer until it is sent (left undefined there).
   */
  readonly holdsWrittenBuffers?: boolean;
  write(data: Buffer): boolean;
  destroy(): void;
  setNoDelay(noDelay?: boolean): unknown;
  /** Calls `callback` after `ms` without reads or writes; the connection stays open. */
  setTimeout(ms: number, callback: () => void): unknown;
  /**
   * The channel routes of an allocation on `relaySocket` for this connection's client, where the
   * connection and the socket can carry them (both the native addon's); absent or null otherwise.
   */
  channelRoutesFrom?(relaySocket: RelayUdpSocket, backlog: RoutedBacklog): ChannelRoutes | null;
}

/** The backlog rule channel routes keep when they write a peer's data to a connection (stream.ts). */
export interface RoutedBacklog {
  /** The most the connection's queue may hold with the frame; past it the frame is dropped. */
  readonly bytes: number;
  /** Called for each frame dropped so. */
  dropped(): void;
}

/** A listener of TURN connections over TCP or TLS. */
export interface StreamListener extends EventEmitter {
  maxConnections: number;
  /** Stops accepting; `callback` runs once the port is free. Open connections stay. */
  close(callback?: (error?: Error) => void): unknown;
}
