/**
 * A client reached over TCP or TLS: one connection is one 5-tuple. STUN goes back as is;
 * ChannelData is padded to a multiple of 4 bytes, as RFC 8656 §12.5 requires on streams.
 *
 * A client that stops reading must not make the relay queue without end (a paused TCP or TLS reader
 * under a 96 MB flood once cost 119-135 MB of RSS). So relayed data (ChannelData, Data indications)
 * goes out only while the connection's user-space backlog (`socket.writableLength` and the turn's
 * batch, on top of what the kernel already buffers) has room for it, and is dropped otherwise, as a
 * full UDP socket would drop it. Relayed frames of one turn are written together at its end
 * (stream-batch.ts). STUN answers are never dropped: they are queued up to a hard bound, past which the
 * connection is closed. A backlog that does not drain within a bound closes the connection too.
 * Per packet this costs one getter read, an addition and a comparison; the only timer is armed by a
 * drop, at most one per connection.
 */
import type { StreamSocket } from "./stream-socket.js";
import type { ClientLink } from "../allocation/allocation.js";
import type { ChannelRoutes, RelayUdpSocket } from "./relay-udp-socket.js";
import type { TransportAddress } from "../stun/attributes.js";
import { channelDataStreamLength } from "../turn/channel-data.js";
import { StreamBatch } from "./stream-batch.js";
import { clientKey, listenerKey } from "./udp.js";

/**
 * Relayed bytes one TCP/TLS connection may have queued in the relay (beyond the kernel's socket
 * buffer) before further relayed data is dropped. 256 KiB is about 0.8 s of a 2.5 Mbit/s video
 * stream: more delay than real-time media survives, so nothing useful is lost by dropping past it,
 * while a short stall of a healthy reader is absorbed. It bounds memory: the 500 connections one
 * address may hold by default (--max-connections-per-ip) queue at most ~160 MB.
 */
export const STREAM_BACKLOG_BYTES = 256 * 1024;
/**
 * The most a connection may have queued when a STUN answer must go out. Answers are never dropped;
 * past this bound the connection is closed instead. The margin above STREAM_BACKLOG_BYTES lets a
 * client whose data backlog is full still get its Refresh and ChannelBind answers (each < 1 KiB).
 */
export const STREAM_BACKLOG_HARD_BYTES = STREAM_BACKLOG_BYTES + 64 * 1024;
/**
 * Once relayed data has been dropped for lack of room, the backlog queued at that moment must have
 * reached the client within this time, or the connection is closed (and its allocation ends): the
 * client is not reading. 15 s outlasts a TCP retransmission burst on a bad link; a reader that slow
 * has no working call left.
 */
export const STREAM_BACKLOG_TIMEOUT_MS = 15_000;

export interface StreamBacklogLimits {
  readonly backlogBytes: number;
  readonly backlogHardBytes: number;
  readonly backlogTimeoutMs: number;
}

/** Why the relay closed a TCP/TLS connection itself (metric label values, snake_case). */
export const STREAM_CLOSE_REASONS = [
  /** Its backlog did not drain within STREAM_BACKLOG_TIMEOUT_MS. */
  "backlog",
  /** A STUN answer found the backlog past STREAM_BACKLOG_HARD_BYTES. */
  "response_backlog",
  /** A frame did not complete within FRAME_COMPLETION_TIMEOUT_MS. */
  "frame_timeout",
  /** No allocation within --max-allocate-timeout. */
  "allocate_timeout",
  /** No allocation and no traffic for IDLE_STREAM_TIMEOUT_MS. */
  "idle",
  /** Bytes that are neither STUN nor ChannelData. */
  "not_turn",
  /** The TLS handshake did not finish within TLS_HANDSHAKE_TIMEOUT_MS. */
  "tls_handshake",
  /** Refused on arrival: its source address already held --max-connections-per-ip connections. */
  "per_ip_limit",
] as const;
export type StreamCloseReason = (typeof STREAM_CLOSE_REASONS)[number];

/** Where a stream link counts what it drops and why it closes (RelayStats). */
export interface StreamCounters {
  streamBacklogDropped: number;
  readonly streamClosed: Record<StreamCloseReason, number>;
}

export class StreamClientLink implements ClientLink {
  readonly address: TransportAddress;
  readonly listener: string;
  readonly key: string;
  /** Armed by the first drop while none is armed: checks that the backlog drained in time. */
  private backlogTimer: NodeJS.Timeout | null = null;
  /** The stream position (bytes flushed to the kernel) the backlog must have reached when the timer fires. */
  private backlogTarget = 0;
  /** Relayed frames of this turn, written together at its end (stream-batch.ts). */
  private readonly batch: StreamBatch;

  constructor(
    private readonly socket: StreamSocket,
    readonly transport: "tcp" | "tls",
    private readonly limits: StreamBacklogLimits,
    private readonly counters: StreamCounters,
  ) {
    const address = socket.remoteAddress ?? "0.0.0.0";
    const port = socket.remotePort ?? 0;
    this.address = { family: address.includes(":") ? 6 : 4, address, port };
    this.listener = listenerKey(socket.localAddress ?? "0.0.0.0", socket.localPort ?? 0);
    this.key = clientKey(transport, address, port, this.listener);
    this.batch = new StreamBatch(socket);
  }

  /**
   * Set as soon as the connection is being torn down (`destroy()`, a reset, an error), before its
   * 'close' event: an allocation that finishes authenticating after that is refused, so none can be
   * added once the 'close' handler has looked for it.
   */
  get closed(): boolean {
    return this.socket.destroyed;
  }

  sendStun(message: Buffer): void {
    const socket = this.socket;
    if (!socket.writable) return;
    // Behind the data gathered this turn, in order; answers are few, so each goes out at once.
    this.batch.flush();
    if (socket.writableLength + message.length > this.limits.backlogHardBytes) {
      // An answer is never dropped silently: a client this far behind is hung up on.
      this.hangUp("response_backlog");
      return;
    }
    socket.write(message);
  }

  sendDataIndication(message: Buffer): void {
    const socket = this.socket;
    if (!socket.writable) return;
    if (!this.hasRoom(message.length)) return this.drop();
    this.batch.append(message);
  }

  sendChannelData(channel: number, data: Buffer, offset: number, length: number): void {
    const socket = this.socket;
    if (!socket.writable) return;
    const frameLength = channelDataStreamLength(length);
    if (!this.hasRoom(frameLength)) return this.drop();
    // Copied into the turn's batch at once: `data` may be the relay's reused receive area.
    this.batch.appendChannelData(channel, data, offset, length, frameLength);
  }

  /**
   * Routes for the channels of this client's allocation on `relaySocket`, where the connection can
   * carry them (a native TCP connection). What they write to the client keeps the backlog rules
   * above: they drop past `backlogBytes` of queue, and each drop is counted and watched here.
   */
  channelRoutesFrom(relaySocket: RelayUdpSocket): ChannelRoutes | null {
    return this.socket.channelRoutesFrom?.(relaySocket, { bytes: this.limits.backlogBytes, dropped: () => this.drop() }) ?? null;
  }

  /**
   * Whether `length` more relayed bytes fit in the backlog. What the batch holds counts; when it
   * alone makes the difference it is written out first, so a frame is dropped only when the kernel
   * does not take the bytes, as without batching.
   */
  private hasRoom(length: number): boolean {
    const limit = this.limits.backlogBytes - length;
    const batch = this.batch;
    if (this.socket.writableLength + batch.pendingBytes <= limit) return true;
    if (batch.pendingBytes === 0) return false;
    batch.flush();
    return this.socket.writableLength <= limit;
  }

  /** Stops the backlog timer; called when the connection closes. */
  dispose(): void {
    if (this.backlogTimer !== null) clearTimeout(this.backlogTimer);
    this.backlogTimer = null;
  }

  private drop(): void {
    this.counters.streamBacklogDropped++;
    if (this.backlogTimer !== null) return;
    this.backlogTarget = flushedBytes(this.socket) + this.socket.writableLength + this.batch.pendingBytes;
    this.backlogTimer = setTimeout(() => this.checkBacklog(), this.limits.backlogTimeoutMs);
  }

  /** The backlog queued at the first drop has reached the client by now, or the client is not reading. */
  private checkBacklog(): void {
    this.backlogTimer = null;
    if (this.socket.destroyed) return;
    // Drained: a slow reader that keeps up with some of the flow keeps its call; the next drop watches again.
    if (flushedBytes(this.socket) >= this.backlogTarget) return;
    this.hangUp("backlog");
  }

  private hangUp(reason: StreamCloseReason): void {
    if (this.socket.destroyed) return;
    this.counters.streamClosed[reason]++;
    this.socket.destroy();
  }
}

/** Bytes written to this socket that have left the relay's queue (bytesWritten counts the queued ones too). */
function flushedBytes(socket: StreamSocket): number {
  return socket.bytesWritten - socket.writableLength;
}
