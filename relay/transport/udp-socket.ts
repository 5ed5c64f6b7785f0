/**
 * The relay's UDP sockets (listeners and relayed-transport addresses), behind one small interface
 * with two implementations:
 *
 * - `native` (relay/transport/native-udp.ts): batched receive (recvmmsg) and direct sends from a
 *   small C addon, with nothing built per datagram but the sender's address text. Linux only, and
 *   only once `npm run build:native` has built it.
 * - `dgram`: Node's own sockets, everywhere, at about 1.4 × the native path's relay CPU (README,
 *   Benchmarks, says where that goes).
 *
 * Either way a datagram is handed over as (data, offset, length, address, port). `data` is only
 * valid during the call: the native receive area is reused for the next batch, so whatever outlives
 * the call (a request waiting for authentication) must be copied.
 *
 * Buffers: the kernel default (about 208 KB here) overflows when many clients burst at once
 * (turnutils_uclient sends up to 50 messages per client per tick) and datagrams are lost before the
 * relay reads them. Listeners carry every client, so they get more than each relay socket. Linux
 * caps the request at net.core.rmem_max / wmem_max; raise those on a busy host.
 */
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { lookup as dnsLookup, type LookupOneOptions } from "node:dns";
import { channelDataHeader } from "../turn/channel-data.js";
import { loadNativeUdp, openNativeUdpSocket } from "./native-udp.js";
import { RelayUdpSocketBase, type RelayUdpSocket } from "./relay-udp-socket.js";

export type { DatagramHandler, RelayUdpSocket } from "./relay-udp-socket.js";

/** Receive/send buffer of a listener socket (every client's traffic). */
export const LISTENER_BUFFER_BYTES = 4 * 1024 * 1024;
/** Receive/send buffer of one allocation's relay socket (its peers' traffic). */
export const RELAY_SOCKET_BUFFER_BYTES = 1024 * 1024;

/** Which implementation carries the relay's UDP (`--udp-io`); `auto` takes native when it loads. */
export type UdpIo = "auto" | "native" | "dgram";

/** Resolves which implementation `io` means on this machine; throws when `native` cannot load. */
export function resolveUdpIo(io: UdpIo): "native" | "dgram" {
  if (io === "dgram") return "dgram";
  const native = loadNativeUdp();
  if (native.ok) return "native";
  if (io === "native") throw new Error(`--udp-io=native: ${native.reason}`);
  return "dgram";
}

/** Opens and binds a UDP socket; rejects with the bind error (its `code`, e.g. EADDRINUSE). */
export function openRelayUdpSocket(io: "native" | "dgram", family: 4 | 6, ip: string, port: number, bufferBytes: number): Promise<RelayUdpSocket> {
  return io === "native" ? Promise.resolve().then(() => openNativeUdpSocket(family, ip, port, bufferBytes)) : openDgramSocket(family, ip, port, bufferBytes);
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * dgram's `lookup` option. dgram resolves every destination through dns.lookup, which for an IP
 * literal still costs a regular-expression check and a deferred callback per datagram. Every address
 * the relay sends to is already an IP literal (from the packet or from XOR-PEER-ADDRESS, formatted by
 * our codec), so one that looks like one (a colon, or a digit first) is answered at once, in the
 * socket's family; a name that starts with a digit is not one the relay ever sends to.
 */
export function ipLiteralLookup(hostname: string, options: LookupOneOptions | number, callback: LookupCallback): void {
  const first = hostname.charCodeAt(0);
  if (first >= 0x30 && first <= 0x39 && !hostname.includes(":")) return callback(null, hostname, 4);
  if (hostname.includes(":")) return callback(null, hostname, 6);
  dnsLookup(hostname, typeof options === "number" ? { family: options } : options, callback);
}

export function createDgramSocket(family: 4 | 6, bufferBytes: number): Socket {
  return createSocket({
    type: family === 6 ? "udp6" : "udp4",
    ipv6Only: family === 6,
    recvBufferSize: bufferBytes,
    sendBufferSize: bufferBytes,
    lookup: ipLiteralLookup as SocketOptions["lookup"],
  });
}

class DgramRelaySocket extends RelayUdpSocketBase implements RelayUdpSocket {
  readonly io = "dgram";

  constructor(private readonly socket: Socket) {
    super();
    socket.on("message", (data, from) => this.onDatagram(data, 0, data.length, from.address, from.port));
    // A send error (e.g. ICMP port unreachable surfacing as ECONNREFUSED) must not crash the relay.
    socket.on("error", () => {});
  }

  send(data: Buffer, offset: number, length: number, port: number, address: string): void {
    if (!this.closed) this.socket.send(data, offset, length, port, address);
  }

  sendChannelData(channel: number, data: Buffer, offset: number, length: number, port: number, address: string): void {
    if (this.closed) return;
    // A fresh header each time: a send that meets a full socket buffer keeps its buffers queued.
    this.socket.send([channelDataHeader(channel, length), offset === 0 && length === data.length ? data : data.subarray(offset, offset + length)], port, address);
  }

  address(): { address: string; port: number } {
    return this.socket.address();
  }

  /** dgram throws on a send or close after close; the base class makes those no-ops. */
  protected release(onClosed?: () => void): void {
    this.socket.close(onClosed);
  }
}

function openDgramSocket(family: 4 | 6, ip: string, port: number, bufferBytes: number): Promise<RelayUdpSocket> {
  const socket = createDgramSocket(family, bufferBytes);
  return new Promise((resolve, reject) => {
    socket.once("error", (error) => {
      socket.close();
      reject(error);
    });
    socket.bind(port, ip, () => {
      socket.removeAllListeners("error");
      resolve(new DgramRelaySocket(socket));
    });
  });
}
