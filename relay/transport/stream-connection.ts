/**
 * One TCP or TLS client connection from the moment it is served until it closes: the bounds that
 * keep a hostile or broken client from holding it (idle, allocate and frame-completion deadlines),
 * the framing, and the hooks back into the server. Every timer is per connection; per chunk the cost
 * is the framer's push and a flag read.
 */
import type { StreamSocket } from "./stream-socket.js";
import { StreamFramer } from "./stream-framer.js";
import { StreamClientLink, type StreamBacklogLimits, type StreamCloseReason, type StreamCounters } from "./stream.js";

/** A TCP/TLS connection with no allocation and no traffic for this long is closed. */
export const IDLE_STREAM_TIMEOUT_MS = 60_000;
/**
 * A STUN message or ChannelData frame whose first byte has arrived must be complete within this
 * time, or the connection is closed: a frame is at most ~64 KiB, which any link that can carry a
 * call delivers in well under a second, and a frame that never completes would otherwise hold the
 * connection (and reset the idle timer with every dribbled byte) for as long as the sender likes.
 * One timer per connection checks it, so a frame may get up to twice this (never less).
 */
export const FRAME_COMPLETION_TIMEOUT_MS = 10_000;

/** The bounds each TCP/TLS connection is held to (the constants above and in stream.ts). */
export interface StreamConnectionLimits extends StreamBacklogLimits {
  readonly frameTimeoutMs: number;
}

/** What the server does for a connection: the connection itself knows nothing of allocations. */
export interface StreamConnectionHooks {
  /** Whether this client holds an allocation: a connection with one is neither idle nor late. */
  hasAllocation(link: StreamClientLink): boolean;
  /** One whole STUN message or ChannelData frame (padding dropped). */
  onFrame(link: StreamClientLink, frame: Buffer): void;
  /** The connection has closed, whatever closed it; no frame follows. */
  onClose(link: StreamClientLink): void;
}

/**
 * Serves `socket` (a TCP connection, or a TLS one whose handshake is done). `allocateTimeoutMs` is
 * coturn's max-allocate-timeout: a connection is for an allocation, not for holding a file
 * descriptor with Bindings (RFC 8656 clients allocate within a round trip of connecting, and
 * browsers send STUN-only Bindings over UDP, not over a TURN server's TCP port).
 */
export function serveStreamConnection(
  socket: StreamSocket,
  transport: "tcp" | "tls",
  limits: StreamConnectionLimits,
  allocateTimeoutMs: number,
  counters: StreamCounters,
  hooks: StreamConnectionHooks,
): StreamClientLink {
  const link = new StreamClientLink(socket, transport, limits, counters);
  const hangUp = (reason: StreamCloseReason) => {
    if (socket.destroyed) return;
    counters.streamClosed[reason]++;
    socket.destroy();
  };
  socket.setNoDelay(true);
  socket.setTimeout(IDLE_STREAM_TIMEOUT_MS, () => {
    if (!hooks.hasAllocation(link)) hangUp("idle");
  });
  const allocateTimer = setTimeout(() => {
    if (!hooks.hasAllocation(link)) hangUp("allocate_timeout");
  }, allocateTimeoutMs);
  const framer = new StreamFramer((frame) => hooks.onFrame(link, frame));
  // The frame deadline: armed when a chunk leaves a frame unfinished and none is armed; when it
  // fires, the same unfinished frame closes the connection, and a newer one gets its own period.
  let frameTimer: NodeJS.Timeout | null = null;
  let framesAtArming = 0;
  const checkFrame = () => {
    frameTimer = null;
    if (!framer.midFrame) return;
    if (framer.framesCompleted === framesAtArming) return hangUp("frame_timeout");
    framesAtArming = framer.framesCompleted;
    frameTimer = setTimeout(checkFrame, limits.frameTimeoutMs);
  };
  socket.on("data", (chunk: Buffer) => {
    if (!framer.push(chunk)) return hangUp("not_turn");
    if (frameTimer === null && framer.midFrame && !socket.destroyed) {
      framesAtArming = framer.framesCompleted;
      frameTimer = setTimeout(checkFrame, limits.frameTimeoutMs);
    }
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    clearTimeout(allocateTimer);
    if (frameTimer !== null) clearTimeout(frameTimer);
    link.dispose();
    hooks.onClose(link);
  });
  return link;
}
