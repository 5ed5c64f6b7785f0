/**
 * A client reached over UDP: STUN and ChannelData go back through the listener socket it sent to,
 * one datagram per message, with no ChannelData padding (RFC 8656 §12.5 allows that on UDP).
 */
import type { Socket } from "node:dgram";
import type { ClientLink } from "../allocation/allocation.js";
import { channelDataHeader } from "../turn/channel-data.js";

export function udpClientLink(socket: Socket, address: string, port: number): ClientLink {
  return {
    transport: "udp",
    address: { family: address.includes(":") ? 6 : 4, address, port },
    key: `udp:${address}:${port}`,
    sendStun(message) {
      socket.send(message, port, address);
    },
    sendChannelData(channel, data) {
      socket.send([channelDataHeader(channel, data.length), data], port, address);
    },
  };
}
