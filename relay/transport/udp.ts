/**
 * A client reached over UDP: STUN and ChannelData go back through the listener socket it sent to,
 * one datagram per message, with no ChannelData padding (RFC 8656 §12.5 allows that on UDP).
 */
import type { ClientLink } from "../allocation/allocation.js";
import type { RelayUdpSocket } from "./udp-socket.js";

/** A listener's side of the 5-tuple as text: "192.0.2.9:3478". */
export function listenerKey(address: string, port: number): string {
  return `${address}:${port}`;
}

/** The 5-tuple as text (ClientLink.key). */
export function clientKey(transport: ClientLink["transport"], address: string, port: number, listener: string): string {
  return `${transport}:${address}:${port}@${listener}`;
}

/** `listener` is the listening socket's "address:port" (listenerKey). */
export function udpClientLink(socket: RelayUdpSocket, listener: string, address: string, port: number): ClientLink {
  return {
    transport: "udp",
    address: { family: address.includes(":") ? 6 : 4, address, port },
    listener,
    key: clientKey("udp", address, port, listener),
    // A datagram socket has no connection to lose.
    closed: false,
    sendStun(message) {
      socket.send(message, 0, message.length, port, address);
    },
    // UDP has no per-client backlog: the socket's own buffer drops what does not fit.
    sendDataIndication(message) {
      socket.send(message, 0, message.length, port, address);
    },
    sendChannelData(channel, data, offset, length) {
      socket.sendChannelData(channel, data, offset, length, port, address);
    },
  };
}
