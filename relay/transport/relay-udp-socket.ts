/**
 * What the relay needs of a UDP socket, whichever implementation carries it (udp-socket.ts picks:
 * the native batched addon in native-udp.ts, or Node's dgram), and the part both share: a handler
 * that drops until it is set, and a close that happens once.
 */

/**
 * What every UDP socket's send queue may hold together, in bytes (each socket's own bound is its
 * buffer size): without it 10,000 allocations could each queue 1 MB behind a slow network. The
 * addon (udp-batch.c, DEFAULT_TOTAL_QUEUE_BYTES) starts with the same figure.
 */
export const UDP_SEND_QUEUE_TOTAL_BYTES = 64 * 1024 * 1024;

/**
 * A socket's sends that met a full socket buffer and waited in a queue (`queued`), and those dropped
 * because that queue, or every socket's queues together, was already at its bound (`dropped`).
 */
export interface SendCounts {
  queued: number;
  dropped: number;
}

/** The same over every socket of one implementation, closed ones included, and the bytes waiting now. */
export interface SendTotals extends SendCounts {
  queuedBytes: number;
  /** Datagrams that left in segmented sends (UDP_SEGMENT: a run to one destination in one send; native only). */
  segmented: number;
}

/** What relayed data counts, in the names the allocation's traffic counters use. */
export interface RelayedCounts {
  packetsToPeers: number;
  bytesToPeers: number;
  packetsToClient: number;
  bytesToClient: number;
}

/**
 * One allocation's bound channels, relayed below JavaScript (the native addon's channel routes,
 * native/channel-routes.h): a ChannelData from the client goes to the channel's peer, and a
 * datagram from that peer to the client as ChannelData, without a call into JavaScript either way.
 * The allocation decides what is routed and for how long; whatever no live route matches comes to
 * JavaScript as before.
 */
export interface ChannelRoutes {
  /**
   * Relays `channel` to and from the peer for `lifetimeMs` from now (a new route, or a new
   * lifetime); false when it cannot be routed, and JavaScript relays it.
   */
  set(channel: number, peerAddress: string, peerPort: number, lifetimeMs: number): boolean;
  /** Stops routing `channel` (nothing when it is not routed). */
  delete(channel: number): void;
  /** Adds what the routes relayed since the last call to `counts`. */
  collect(counts: RelayedCounts): void;
}

declare const nativeStreamConnection: unique symbol;
/** A TCP connection of the native addon (native-stream.ts), as the addon names it to route its client's channels. */
export type NativeStreamConnection = { readonly [nativeStreamConnection]: true };

/** One datagram: `data[offset .. offset + length)`, valid only during the call. */
export type DatagramHandler = (data: Buffer, offset: number, length: number, address: string, port: number) => void;

/**
 * What takes a socket's datagrams as a method of an object it already has (an allocation takes its
 * relay socket's): a closure per socket was ~100 bytes of every idle allocation (issue 16).
 */
export interface DatagramReceiver {
  receiveDatagram(data: Buffer, offset: number, length: number, address: string, port: number): void;
}

export interface RelayUdpSocket {
  /** Which implementation this is. */
  readonly io: "native" | "dgram";
  /** Where received datagrams go, unless `receiver` is set; until either is set they are dropped. */
  onDatagram: DatagramHandler;
  /** Where received datagrams go when set, instead of `onDatagram`. */
  receiver: DatagramReceiver | null;
  /**
   * Sends `data[offset .. offset + length)`. Never throws: errors (a refused or unreachable
   * destination, port 0, a slice past the buffer, a closed socket) drop it, and so does a full queue.
   */
  send(data: Buffer, offset: number, length: number, port: number, address: string): void;
  /** Sends a ChannelData message: the 4-byte header, then `data[offset .. offset + length)`; never throws either. */
  sendChannelData(channel: number, data: Buffer, offset: number, length: number, port: number, address: string): void;
  /**
   * This socket's (an allocation's relay socket's) channel routes to a UDP client on `listener`, or
   * null when the implementation has none (dgram) or cannot reach that listener.
   */
  channelRoutesTo(listener: RelayUdpSocket, clientAddress: string, clientPort: number): ChannelRoutes | null;
  /**
   * This socket's channel routes for a TCP client on the addon's connection `stream`, or null when
   * the implementation has none (dgram): ChannelData the client sends goes to the peer below
   * JavaScript, and the peer's datagrams to the client once the connection has its backlog bound
   * (stream.ts, through the connection's own `channelRoutesFrom`).
   */
  channelRoutesFromStream(stream: NativeStreamConnection): ChannelRoutes | null;
  /** This socket's queued and dropped sends so far; zeros after close. */
  sendCounts(): SendCounts;
  address(): { address: string; port: number };
  /** Stops receiving at once; `onClosed` runs once the port is free for another bind. */
  close(onClosed?: () => void): void;
}

const dropDatagram: DatagramHandler = () => {};

/** The shared part of both implementations; a send or close after close is a no-op, not a throw. */
export abstract class RelayUdpSocketBase {
  onDatagram: DatagramHandler = dropDatagram;
  receiver: DatagramReceiver | null = null;
  protected closed = false;

  /** No routes by default: every datagram goes through JavaScript. */
  channelRoutesTo(_listener: RelayUdpSocket, _clientAddress: string, _clientPort: number): ChannelRoutes | null {
    return null;
  }

  channelRoutesFromStream(_stream: NativeStreamConnection): ChannelRoutes | null {
    return null;
  }

  /** Hands a received datagram to the receiver, or else the handler: the implementations call it for each one. */
  deliver(data: Buffer, offset: number, length: number, address: string, port: number): void {
    const receiver = this.receiver;
    if (receiver !== null) receiver.receiveDatagram(data, offset, length, address, port);
    else this.onDatagram(data, offset, length, address, port);
  }

  close(onClosed?: () => void): void {
    if (this.closed) {
      if (onClosed !== undefined) setImmediate(onClosed);
      return;
    }
    this.closed = true;
    this.onDatagram = dropDatagram;
    this.receiver = null;
    this.release(onClosed);
  }

  /** Closes the underlying socket, once; `onClosed` runs when its port is free. */
  protected abstract release(onClosed?: () => void): void;
}
