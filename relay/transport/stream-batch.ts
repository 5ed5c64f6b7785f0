/**
 * Frames bound for one TCP/TLS connection, gathered into one buffer while a batch of datagrams is
 * delivered (or an event-loop turn runs) and written once, at its end. Each `socket.write` costs a
 * pass through Node's stream machinery and a `write` syscall (over TLS also one record, with its own
 * header, MAC and padding); relayed data arrives a datagram at a time, so a peer's burst would
 * otherwise cost one of each per packet. Frames keep their order: everything written to the connection goes through the batch
 * (stream.ts flushes it before a STUN answer).
 *
 * The flush runs once for every connection with something pending, at the StreamFlushPoint below, so
 * no frame waits for a later turn of the event loop and a connection sees one write per batch at most
 * (plus one per STREAM_BATCH_BYTES).
 */
import type { StreamSocket } from "./stream-socket.js";
import { CHANNEL_DATA_HEADER_LENGTH } from "../turn/channel-data.js";

/**
 * The most one connection gathers before it is written out; a frame that does not fit flushes what
 * is gathered first, and a frame larger than this is written on its own. 16 KiB is TLS's largest
 * record, so one flush fills at most one record; it is 160 ChannelData frames of 100 bytes.
 */
export const STREAM_BATCH_BYTES = 16 * 1024;
/**
 * Batch buffers kept for reuse between turns, shared by every connection: a connection holds one
 * only during a turn in which it has frames, so idle connections cost none, and 64 (1 MiB) serve
 * 64 busy connections per turn without allocating.
 */
export const SPARE_BATCH_BUFFERS = 64;
const spare: Buffer[] = [];

/**
 * When gathered frames go out. "callback": once the callback that gathered them returns
 * (`process.nextTick`). The native UDP addon hands JavaScript a socket's whole receive batch in one
 * callback, so that is one write per batch, and a tick costs less than an immediate (no loop handle
 * to start and stop, no second entry into JavaScript): with one message per millisecond per client,
 * where every batch holds one frame, turnutils_uclient's TCP load took 9 % less CPU (see the commit).
 * "turn": at the end of the event-loop turn (`setImmediate`), for Node's dgram, which makes every
 * datagram a callback of its own, so only the turn gathers several.
 */
export type StreamFlushPoint = "callback" | "turn";
let flushPoint: StreamFlushPoint = "callback";

/** Sets when gathered frames go out; the server picks it by its UDP I/O (native: "callback", dgram: "turn"). */
export function setStreamFlushPoint(point: StreamFlushPoint): void {
  flushPoint = point;
}

/** Connections with gathered bytes, flushed together. */
const dirty: StreamBatch[] = [];
let flushScheduled = false;

function flushDirty(): void {
  flushScheduled = false;
  // A flush cannot add to `dirty` (only appends do), so the list is walked once and emptied.
  for (let i = 0; i < dirty.length; i++) dirty[i]!.endTurn();
  dirty.length = 0;
}

export class StreamBatch {
  /** The buffer being filled, taken from `spare` by the turn's first frame and given back at its end. */
  private buffer: Buffer | null = null;
  private filled = 0;
  private queued = false;
  /** Set once a write was not taken at once: the socket may hold what it is given, so flushes copy. */
  private socketHoldsWrites = false;

  /**
   * Over TLS every frame is written at once, one TLS record per frame, as coturn does: coturn's own
   * TLS client (`turnutils_uclient -S`) takes one TURN message from each record it reads and drops
   * the rest, so a batch of two frames in one record lost a message (seen in relay-uclient.test.ts;
   * the relay had written all 20 frames, the client counted 19). Plain TCP batches: every stream
   * reader there cuts frames out of the byte stream.
   */
  private readonly writeAtOnce: boolean;

  constructor(private readonly socket: StreamSocket) {
    this.writeAtOnce = socket.encrypted === true;
  }

  /** Bytes gathered and not yet handed to the socket. */
  get pendingBytes(): number {
    return this.filled;
  }

  /** Appends one ChannelData frame, padded to 4 bytes (RFC 8656 §12.5); `frameLength` includes header and padding. */
  appendChannelData(channel: number, data: Buffer, offset: number, length: number, frameLength: number): void {
    const buffer = this.writeAtOnce ? null : this.room(frameLength);
    if (buffer === null) {
      // Over TLS, or larger than a batch: one frame, one write, as before batching.
      const frame = Buffer.allocUnsafe(frameLength);
      writeChannelData(frame, 0, channel, data, offset, length, frameLength);
      this.socket.write(frame);
      return;
    }
    writeChannelData(buffer, this.filled, channel, data, offset, length, frameLength);
    this.filled += frameLength;
  }

  /** Appends a whole message (a Data indication) as it is. */
  append(message: Buffer): void {
    const buffer = this.writeAtOnce ? null : this.room(message.length);
    if (buffer === null) {
      this.socket.write(message);
      return;
    }
    message.copy(buffer, this.filled);
    this.filled += message.length;
  }

  /** The turn's flush (flushDirty). */
  endTurn(): void {
    this.queued = false;
    this.flush();
    if (this.buffer !== null && spare.length < SPARE_BATCH_BUFFERS) spare.push(this.buffer);
    this.buffer = null;
  }

  /** Writes what is gathered to the socket (dropped if the socket can no longer be written). */
  flush(): void {
    const filled = this.filled;
    if (filled === 0) return;
    const buffer = this.buffer!;
    this.filled = 0;
    const socket = this.socket;
    if (!socket.writable) return;
    if (this.socketHoldsWrites) {
      // A right-sized copy (from Node's pool when small) goes to the socket; the batch buffer stays ours.
      const copy = Buffer.allocUnsafe(filled);
      buffer.copy(copy, 0, 0, filled);
      socket.write(copy);
      return;
    }
    socket.write(buffer.subarray(0, filled));
    // An empty queue after the write means the kernel took the bytes at once and the buffer is free
    // to refill. Otherwise a Node socket holds it until sent: TLS always does (its writes complete
    // later), TCP when the kernel's buffer is full. Such a socket gets copies from then on, rather
    // than a fresh batch buffer per flush. A native connection copies what it queues itself.
    if (socket.holdsWrittenBuffers !== false && socket.writableLength !== 0) {
      this.buffer = null;
      this.socketHoldsWrites = true;
    }
  }

  /** The buffer with room for `length` more bytes at `filled`, flushing first if needed; null when `length` exceeds a batch (flushed too). */
  private room(length: number): Buffer | null {
    if (this.filled + length > STREAM_BATCH_BYTES) {
      this.flush();
      if (length > STREAM_BATCH_BYTES) return null;
    }
    if (!this.queued) {
      this.queued = true;
      dirty.push(this);
      if (!flushScheduled) {
        flushScheduled = true;
        if (flushPoint === "callback") process.nextTick(flushDirty);
        else setImmediate(flushDirty);
      }
    }
    return (this.buffer ??= spare.pop() ?? Buffer.allocUnsafe(STREAM_BATCH_BYTES));
  }
}

/** ChannelData at `target[at ..]`: header, data, zeroed padding up to `frameLength`. */
function writeChannelData(target: Buffer, at: number, channel: number, data: Buffer, offset: number, length: number, frameLength: number): void {
  target[at] = channel >>> 8;
  target[at + 1] = channel & 0xff;
  target[at + 2] = length >>> 8;
  target[at + 3] = length & 0xff;
  data.copy(target, at + CHANNEL_DATA_HEADER_LENGTH, offset, offset + length);
  // Padding goes out as zeros, never as whatever the reused buffer held before.
  for (let i = at + CHANNEL_DATA_HEADER_LENGTH + length; i < at + frameLength; i++) target[i] = 0;
}
