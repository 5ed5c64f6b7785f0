/**
 * A client reached over TCP or TLS: one connection is one 5-tuple. STUN goes back as is;
 * ChannelData is padded to a multiple of 4 bytes, as RFC 8656 §12.5 requires on streams.
 */
import type { Socket } from "node:net";
import type { ClientLink } from "../allocation/allocation.js";
import { channelDataHeader } from "../turn/channel-data.js";

const PADDING = Buffer.alloc(3);

export function streamClientLink(socket: Socket, transport: "tcp" | "tls"): ClientLink {
  const address = socket.remoteAddress ?? "0.0.0.0";
  const port = socket.remotePort ?? 0;
  return {
    transport,
    address: { family: address.includes(":") ? 6 : 4, address, port },
    key: `${transport}:${address}:${port}`,
    sendStun(message) {
      if (socket.writable) socket.write(message);
    },
    sendChannelData(channel, data) {
      if (!socket.writable) return;
      const padding = (4 - (data.length % 4)) % 4;
      socket.cork();
      socket.write(channelDataHeader(channel, data.length));
      socket.write(data);
      if (padding > 0) socket.write(PADDING.subarray(0, padding));
      socket.uncork();
    },
  };
}
