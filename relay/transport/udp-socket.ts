/**
 * How the relay makes its UDP sockets (listeners and relayed-transport addresses), tuned for a
 * data path that only ever sends to IP literals, in bursts.
 *
 * - Buffers: the kernel default (about 208 KB here) overflows when many clients burst at once
 *   (turnutils_uclient sends up to 50 messages per client per tick) and datagrams are lost before the
 *   relay reads them. Listeners carry every client, so they get more than each relay socket. Linux
 *   caps the request at net.core.rmem_max / wmem_max; raise those on a busy host.
 * - Lookup: dgram resolves every destination through dns.lookup, which for an IP literal still costs
 *   a regular-expression check and a deferred callback per datagram. Every address the relay sends
 *   to is already an IP literal (from the packet or from XOR-PEER-ADDRESS, formatted by our codec),
 *   so a destination that looks like one (a colon, or a digit first) is answered at once, in the
 *   socket's family; anything else goes to dns.lookup as before.
 */
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { lookup as dnsLookup, type LookupOneOptions } from "node:dns";

/** Receive/send buffer of a listener socket (every client's traffic). */
export const LISTENER_BUFFER_BYTES = 4 * 1024 * 1024;
/** Receive/send buffer of one allocation's relay socket (its peers' traffic). */
export const RELAY_SOCKET_BUFFER_BYTES = 1024 * 1024;

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * dgram's `lookup` option: IP literals answered synchronously, names through dns.lookup. The check
 * is the cheapest that tells our literals from names; a name that starts with a digit is not one the
 * relay ever sends to.
 */
export function ipLiteralLookup(hostname: string, options: LookupOneOptions | number, callback: LookupCallback): void {
  const first = hostname.charCodeAt(0);
  if (first >= 0x30 && first <= 0x39 && !hostname.includes(":")) return callback(null, hostname, 4);
  if (hostname.includes(":")) return callback(null, hostname, 6);
  dnsLookup(hostname, typeof options === "number" ? { family: options } : options, callback);
}

export function createRelayUdpSocket(family: 4 | 6, bufferBytes: number): Socket {
  return createSocket({
    type: family === 6 ? "udp6" : "udp4",
    ipv6Only: family === 6,
    recvBufferSize: bufferBytes,
    sendBufferSize: bufferBytes,
    lookup: ipLiteralLookup as SocketOptions["lookup"],
  });
}
