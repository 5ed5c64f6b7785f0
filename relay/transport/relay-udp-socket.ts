/**
 * What the relay needs of a UDP socket, whichever implementation carries it (udp-socket.ts picks:
 * the native batched addon in native-udp.ts, or Node's dgram), and the part both share: a handler
 * that drops until it is set, and a close that happens once.
 */

/** One datagram: `data[offset .. offset + length)`, valid only during the call. */
export type DatagramHandler = (data: Buffer, offset: number, length: number, address: string, port: number) => void;

export interface RelayUdpSocket {
  /** Which implementation this is. */
  readonly io: "native" | "dgram";
  /** Where received datagrams go; until it is set they are dropped. */
  onDatagram: DatagramHandler;
  /** Sends `data[offset .. offset + length)`; errors (a refused or unreachable destination) drop it. */
  send(data: Buffer, offset: number, length: number, port: number, address: string): void;
  /** Sends a ChannelData message: the 4-byte header, then `data[offset .. offset + length)`. */
  sendChannelData(channel: number, data: Buffer, offset: number, length: number, port: number, address: string): void;
  address(): { address: string; port: number };
  /** Stops receiving at once; `onClosed` runs once the port is free for another bind. */
  close(onClosed?: () => void): void;
}

const dropDatagram: DatagramHandler = () => {};

/** The shared part of both implementations; a send or close after close is a no-op, not a throw. */
export abstract class RelayUdpSocketBase {
  onDatagram: DatagramHandler = dropDatagram;
  protected closed = false;

  close(onClosed?: () => void): void {
    if (this.closed) {
      if (onClosed !== undefined) setImmediate(onClosed);
      return;
    }
    this.closed = true;
    this.onDatagram = dropDatagram;
    this.release(onClosed);
  }

  /** Closes the underlying socket, once; `onClosed` runs when its port is free. */
  protected abstract release(onClosed?: () => void): void;
}
