/**
 * A client reached over UDP: STUN and ChannelData go back through the listener socket it sent to,
 * one datagram per message, with no ChannelData padding (RFC 8656 §12.5 allows that on UDP).
 */
import type { ClientLink } from "../allocation/allocation.js";
import type { ChannelRoutes, RelayUdpSocket } from "./relay-udp-socket.js";

/** A listener's side of the 5-tuple as text: "192.0.2.9:3478". */
export function listenerKey(address: string, port: number): string {
  return `${address}:${port}`;
}

/** The 5-tuple as text (ClientLink.key). */
export function clientKey(transport: ClientLink["transport"], address: string, port: number, listener: string): string {
  return `${transport}:${address}:${port}@${listener}`;
}

/**
 * `listener` is the listening socket's "address:port" (listenerKey). A class, not an object of
 * closures: every allocation keeps its client's link, and three closures with their context were
 * about 200 bytes of each idle allocation.
 */
export class UdpClientLink implements ClientLink {
  readonly transport = "udp";
  readonly address: ClientLink["address"];
  readonly key: string;
  /** A datagram socket has no connection to lose. */
  readonly closed = false;

  constructor(
    private readonly socket: RelayUdpSocket,
    readonly listener: string,
    /** The client's IP and port, read by every send (the data path) without going through `address`. */
    private readonly ip: string,
    private readonly port: number,
  ) {
    this.address = { family: ip.includes(":") ? 6 : 4, address: ip, port };
    this.key = clientKey("udp", ip, port, listener);
  }

  sendStun(message: Buffer): void {
    this.socket.send(message, 0, message.length, this.port, this.ip);
  }

  /** UDP has no per-client backlog: the socket's own buffer drops what does not fit. */
  sendDataIndication(message: Buffer): void {
    this.socket.send(message, 0, message.length, this.port, this.ip);
  }

  sendChannelData(channel: number, data: Buffer, offset: number, length: number): void {
    this.socket.sendChannelData(channel, data, offset, length, this.port, this.ip);
  }

  /** Routes for the channels of this client's allocation on `relaySocket`, where the sockets can carry them (relay-udp-socket.ts). */
  channelRoutesFrom(relaySocket: RelayUdpSocket): ChannelRoutes | null {
    return relaySocket.channelRoutesTo(this.socket, this.ip, this.port);
  }
}
