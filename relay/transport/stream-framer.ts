/**
 * Cutting a TCP or TLS byte stream into STUN messages and ChannelData frames (RFC 8656 §12.5):
 * STUN says its length in its header; ChannelData says its data length and is padded to 4 bytes.
 * Anything else means the stream is not TURN, and the connection is closed.
 *
 * Each byte is copied at most once: frames that arrive whole inside a chunk are handed on as views
 * of that chunk (no copy), and a frame split across chunks is gathered into one buffer allocated
 * when its 4-byte header has arrived (the header says the length). Re-joining the pending bytes on
 * every chunk instead would cost O(frame²): a 60 KiB frame dribbled a byte at a time copied ~1.8 GB.
 */
import { stunMessageLengthFromStreamHeader } from "../stun/demultiplex.js";
import { CHANNEL_DATA_HEADER_LENGTH, channelDataStreamLength, startsChannelData } from "../turn/channel-data.js";

/** A frame as cut from the stream: `bytes` holds exactly one STUN message or one ChannelData (padding dropped). */
export type FrameSink = (bytes: Buffer) => void;

/** What the framer must see before it knows a frame's length: a STUN header's first 4 bytes, or ChannelData's header. */
const LENGTH_PREFIX = CHANNEL_DATA_HEADER_LENGTH;

/** STUN starts with 0b00 (first byte 0x00-0x03), ChannelData with 0b01; anything else is not TURN. */
function isTurnFirstByte(first: number): boolean {
  return first <= 0x03 || startsChannelData(first);
}

export class StreamFramer {
  /** The first 1-3 bytes of a frame whose length prefix has not all arrived. */
  private readonly prefix = Buffer.alloc(LENGTH_PREFIX);
  private prefixFilled = 0;
  /** The frame being gathered (its useful bytes, ChannelData padding left out); null between frames. */
  private frame: Buffer | null = null;
  private frameFilled = 0;
  /** Stream bytes the frame being gathered still takes, padding included. */
  private frameRemaining = 0;
  /** Frames handed on so far: lets a deadline tell whether the frame pending now is the one it saw pending before. */
  framesCompleted = 0;

  constructor(private readonly onFrame: FrameSink) {}

  /** Whether the start of a frame has arrived and its end has not (the frame deadline runs meanwhile). */
  get midFrame(): boolean {
    return this.prefixFilled > 0 || this.frame !== null;
  }

  /** Feeds received bytes; false when the stream is not TURN and must be closed. */
  push(chunk: Buffer): boolean {
    let offset = 0;
    if (this.prefixFilled > 0) {
      const take = Math.min(LENGTH_PREFIX - this.prefixFilled, chunk.length);
      chunk.copy(this.prefix, this.prefixFilled, 0, take);
      this.prefixFilled += take;
      offset = take;
      if (this.prefixFilled < LENGTH_PREFIX) return true;
      this.prefixFilled = 0;
      this.begin(this.prefix, 0);
      this.gather(this.prefix, 0);
    }
    if (this.frame !== null) {
      offset = this.gather(chunk, offset);
      if (this.frame !== null) return true;
    }
    while (chunk.length - offset >= LENGTH_PREFIX) {
      const first = chunk[offset]!;
      if (!isTurnFirstByte(first)) return false;
      const frameLength = frameLengthAt(chunk, offset);
      if (chunk.length - offset < frameLength) {
        // The frame runs past this chunk: gather it from here on.
        this.begin(chunk, offset);
        this.gather(chunk, offset);
        return true;
      }
      this.framesCompleted++;
      this.onFrame(chunk.subarray(offset, offset + usefulLengthAt(chunk, offset)));
      offset += frameLength;
    }
    if (offset < chunk.length) {
      if (!isTurnFirstByte(chunk[offset]!)) return false;
      chunk.copy(this.prefix, 0, offset);
      this.prefixFilled = chunk.length - offset;
    }
    return true;
  }

  /** Starts gathering the frame whose length prefix is at `source[offset ..]`. */
  private begin(source: Buffer, offset: number): void {
    this.frame = Buffer.allocUnsafe(usefulLengthAt(source, offset));
    this.frameFilled = 0;
    this.frameRemaining = frameLengthAt(source, offset);
  }

  /** Copies what `source[offset ..]` holds of the frame being gathered; hands it on once complete. Returns the new offset. */
  private gather(source: Buffer, offset: number): number {
    const frame = this.frame!;
    const take = Math.min(this.frameRemaining, source.length - offset);
    // Padding bytes at the end of ChannelData are consumed but not copied.
    const useful = Math.min(take, frame.length - this.frameFilled);
    if (useful > 0) source.copy(frame, this.frameFilled, offset, offset + useful);
    this.frameFilled += useful;
    this.frameRemaining -= take;
    if (this.frameRemaining === 0) {
      this.frame = null;
      this.framesCompleted++;
      this.onFrame(frame);
    }
    return offset + take;
  }
}

/** Stream bytes of the frame at `offset` (ChannelData padding included); the caller checked the first byte. */
function frameLengthAt(data: Buffer, offset: number): number {
  return startsChannelData(data[offset]!) ? channelDataStreamLength(data.readUInt16BE(offset + 2)) : stunMessageLengthFromStreamHeader(data, offset)!;
}

/** Bytes of the frame at `offset` that are handed on: ChannelData without its padding, STUN whole. */
function usefulLengthAt(data: Buffer, offset: number): number {
  return startsChannelData(data[offset]!) ? CHANNEL_DATA_HEADER_LENGTH + data.readUInt16BE(offset + 2) : stunMessageLengthFromStreamHeader(data, offset)!;
}
