/**
 * A client reached over TCP or TLS: one connection is one 5-tuple. STUN goes back as is;
 * ChannelData is padded to a multiple of 4 bytes, as RFC 8656 §12.5 requires on streams.
 */
import type { Socket } from "node:net";
import type { ClientLink } from "../allocation/allocation.js";
import { CHANNEL_DATA_HEADER_LENGTH, channelDataStreamLength } from "../turn/channel-data.js";
import { clientKey, listenerKey } from "./udp.js";

export function streamClientLink(socket: Socket, transport: "tcp" | "tls"): ClientLink {
  const address = socket.remoteAddress ?? "0.0.0.0";
  const port = socket.remotePort ?? 0;
  const listener = listenerKey(socket.localAddress ?? "0.0.0.0", socket.localPort ?? 0);
  return {
    transport,
    address: { family: address.includes(":") ? 6 : 4, address, port },
    listener,
    key: clientKey(transport, address, port, listener),
    sendStun(message) {
      if (socket.writable) socket.write(message);
    },
    sendChannelData(channel, data, offset, length) {
      if (!socket.writable) return;
      // One copy into one frame: a stream write holds its buffer until flushed, and `data` may be
      // the relay's reused receive area.
      const frame = Buffer.allocUnsafe(channelDataStreamLength(length));
      frame.writeUInt16BE(channel, 0);
      frame.writeUInt16BE(length, 2);
      data.copy(frame, CHANNEL_DATA_HEADER_LENGTH, offset, offset + length);
      frame.fill(0, CHANNEL_DATA_HEADER_LENGTH + length);
      socket.write(frame);
    },
  };
}
