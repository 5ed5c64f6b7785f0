/**
 * The relay's UDP sockets (listeners and relayed-transport addresses), behind one small interface
 * with two implementations:
 *
 * - `native` (relay/transport/native-udp.ts): batched receive (recvmmsg) and batched sends (the
 *   sends made while a batch is handled leave together at the end of the loop turn, one sendmmsg per
 *   socket) from a small C addon, with nothing built per datagram but the sender's address text.
 *   Linux only, and only once `npm run build:native` has built it.
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
 *
 * Send queues: a send that meets a full socket buffer waits in a queue (the addon's own, or libuv's
 * under dgram) until the socket is writable. Each socket's queue holds at most its buffer size, and
 * every socket's queues together at most UDP_SEND_QUEUE_TOTAL_BYTES; past either bound a send is
 * dropped and counted (`sendCounts`, `udpSendTotals`, the relay_udp_send_* metrics), as a full
 * network would drop it. A send the kernel takes at once pays nothing for this on the native path,
 * and one getSendQueueSize() call (about 40 ns here) and two comparisons under dgram. dgram learns
 * of a backlog only at the send after the one that met the full buffer, so there each socket may
 * hold that one datagram beyond the bounds.
 */
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { lookup as dnsLookup, type LookupOneOptions } from "node:dns";
import { channelDataHeader } from "../turn/channel-data.js";
import { resolveIo } from "./io-choice.js";
import { loadNativeUdp, nativeRouteTotals, nativeSendTotals, openNativeUdpSocket, setNativeSendQueueLimit } from "./native-udp.js";
import { RelayUdpSocketBase, UDP_SEND_QUEUE_TOTAL_BYTES, type RelayUdpSocket, type SendCounts, type SendTotals } from "./relay-udp-socket.js";

export { UDP_SEND_QUEUE_TOTAL_BYTES } from "./relay-udp-socket.js";
export type { DatagramHandler, RelayUdpSocket, SendCounts, SendTotals } from "./relay-udp-socket.js";

/** Receive/send buffer of a listener socket (every client's traffic). */
export const LISTENER_BUFFER_BYTES = 4 * 1024 * 1024;
/** Receive/send buffer of one allocation's relay socket (its peers' traffic). */
export const RELAY_SOCKET_BUFFER_BYTES = 1024 * 1024;

/** How often, at most, the dgram total is re-read from every backlogged socket when it looks full. */
const DGRAM_TOTAL_REFRESH_MS = 10;

/**
 * Sets the bound on every socket's send queues together, for both implementations (bytes, >= 0);
 * meant for start-up. What waits already stays queued.
 */
export function setUdpSendQueueLimit(totalBytes: number): void {
  if (!Number.isSafeInteger(totalBytes) || totalBytes < 0) throw new RangeError(`the UDP send queue limit must be a whole number of bytes >= 0, not ${totalBytes}`);
  dgramQueues.limit = totalBytes;
  setNativeSendQueueLimit(totalBytes);
}

/**
 * Queued and dropped sends over every UDP socket of the process, closed ones included, and the bytes
 * waiting now (for dgram read again from each backlogged socket: scrapes are rare, sends are not).
 */
export function udpSendTotals(): SendTotals {
  const native = nativeSendTotals();
  for (const socket of dgramQueues.backlogged) socket.rereadQueue();
  return {
    queued: native.queued + dgramQueues.queued,
    dropped: native.dropped + dgramQueues.dropped,
    queuedBytes: native.queuedBytes + dgramQueues.bytes,
    segmented: native.segmented,
  };
}

/**
 * The channel routes (bound channels of UDP clients relayed below JavaScript; native only) now, and
 * the datagrams they relayed over the process's life, each way.
 */
export function channelRouteTotals(): { routes: number; routedToPeers: number; routedToClients: number } {
  return nativeRouteTotals();
}

/** Which implementation carries the relay's UDP (`--udp-io`); `auto` takes native when it loads. */
export type UdpIo = "auto" | "native" | "dgram";

/** Resolves which implementation `io` means on this machine; throws when `native` cannot load. */
export function resolveUdpIo(io: UdpIo): "native" | "dgram" {
  return resolveIo("--udp-io", io, "dgram", loadNativeUdp);
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

/**
 * The dgram sockets' queues together. libuv keeps a socket's unsent datagrams with no bound and
 * tells nobody when they leave, so each socket remembers what it last saw waiting (`waiting`) and
 * the total is the sum of those: exact for a socket when it sends, possibly high for one that has
 * drained since. When the total looks full it is re-read from every backlogged socket, at most
 * once per DGRAM_TOTAL_REFRESH_MS, so a send is never refused for room that has come free.
 */
const dgramQueues = {
  limit: UDP_SEND_QUEUE_TOTAL_BYTES,
  /** The sum of every backlogged socket's `waiting`. */
  bytes: 0,
  queued: 0,
  dropped: 0,
  backlogged: new Set<DgramRelaySocket>(),
  refreshedAt: 0,
};

/** Whether `length` more bytes fit in the dgram total, re-reading it when it looks full. */
function dgramTotalAdmits(length: number): boolean {
  if (dgramQueues.bytes + length <= dgramQueues.limit) return true;
  const now = Date.now();
  if (now - dgramQueues.refreshedAt < DGRAM_TOTAL_REFRESH_MS) return false;
  dgramQueues.refreshedAt = now;
  for (const socket of dgramQueues.backlogged) socket.rereadQueue();
  return dgramQueues.bytes + length <= dgramQueues.limit;
}

class DgramRelaySocket extends RelayUdpSocketBase implements RelayUdpSocket {
  readonly io = "dgram";
  /** Bytes libuv held for this socket when last looked at (plus what was admitted behind them). */
  private waiting = 0;
  private queued = 0;
  private dropped = 0;

  /** `queueLimit`: what this socket's queue may hold, its buffer size as on the native path. */
  constructor(
    private readonly socket: Socket,
    private readonly queueLimit: number,
  ) {
    super();
    socket.on("message", (data, from) => this.deliver(data, 0, data.length, from.address, from.port));
    // A send error (e.g. ICMP port unreachable surfacing as ECONNREFUSED) must not crash the relay.
    socket.on("error", () => {});
  }

  send(data: Buffer, offset: number, length: number, port: number, address: string): void {
    if (this.closed || !this.admit(length)) return;
    try {
      this.socket.send(data, offset, length, port, address);
    } catch {
      // dgram throws at once on what no datagram can reach (port 0, above 65535) or a bad slice: dropped.
    }
  }

  sendChannelData(channel: number, data: Buffer, offset: number, length: number, port: number, address: string): void {
    // A slice past the buffer would go out shorter than its header says: dropped instead.
    if (this.closed || offset + length > data.length || !this.admit(length + 4)) return;
    try {
      // A fresh header each time: a send that meets a full socket buffer keeps its buffers queued.
      this.socket.send([channelDataHeader(channel, length), offset === 0 && length === data.length ? data : data.subarray(offset, offset + length)], port, address);
    } catch {
      // As in send: a destination dgram refuses is dropped.
    }
  }

  /**
   * Whether a send of `length` bytes may go. With nothing waiting (the usual case) that is one
   * call and two comparisons; behind a queue the bounds are checked.
   */
  private admit(length: number): boolean {
    const waiting = this.socket.getSendQueueSize();
    if (waiting === 0 && this.waiting === 0) return true;
    return this.admitBehindQueue(waiting, length);
  }

  private admitBehindQueue(waiting: number, length: number): boolean {
    this.setWaiting(waiting);
    if (waiting === 0) return true;
    if (waiting + length > this.queueLimit || !dgramTotalAdmits(length)) {
      this.dropped++;
      dgramQueues.dropped++;
      return false;
    }
    // Datagrams wait already, so libuv queues this one behind them: count it now.
    this.setWaiting(waiting + length);
    this.queued++;
    dgramQueues.queued++;
    return true;
  }

  /** Re-reads what libuv holds for this socket (the total looked full). */
  rereadQueue(): void {
    this.setWaiting(this.closed ? 0 : this.socket.getSendQueueSize());
  }

  private setWaiting(bytes: number): void {
    dgramQueues.bytes += bytes - this.waiting;
    this.waiting = bytes;
    if (bytes === 0) dgramQueues.backlogged.delete(this);
    else dgramQueues.backlogged.add(this);
  }

  sendCounts(): SendCounts {
    return this.closed ? { queued: 0, dropped: 0 } : { queued: this.queued, dropped: this.dropped };
  }

  address(): { address: string; port: number } {
    return this.socket.address();
  }

  /** dgram throws on a send or close after close; the base class makes those no-ops. */
  protected release(onClosed?: () => void): void {
    // libuv drops what is still queued when the socket closes.
    this.setWaiting(0);
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
      resolve(new DgramRelaySocket(socket, bufferBytes));
    });
  });
}
