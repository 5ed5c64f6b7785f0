/**
 * A client reached over UDP: STUN and ChannelData go back through the listener socket it sent to,
 * one datagram per message, with no ChannelData padding (RFC 8656 §12.5 allows that on UDP).
 */
import type { ClientLink } from "../allocation/allocation.js";
import type { RelayUdpSocket } from "./udp-socket.js";

export function udpClientLink(socket: RelayUdpSocket, address: string, port: number): ClientLink {
  return {
    transport: "udp",
    address: { family: address.includes(":") ? 6 : 4, address, port },
    key: `udp:${address}:${port}`,
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
