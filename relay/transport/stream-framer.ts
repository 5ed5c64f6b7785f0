/**
 * Cutting a TCP or TLS byte stream into STUN messages and ChannelData frames (RFC 8656 §12.5):
 * STUN says its length in its header; ChannelData says its data length and is padded to 4 bytes.
 * Anything else means the stream is not TURN, and the connection is closed.
 */
import { stunMessageLengthFromStreamHeader } from "../stun/demultiplex.js";
import { CHANNEL_DATA_HEADER_LENGTH, channelDataStreamLength, startsChannelData } from "../turn/channel-data.js";

const EMPTY = Buffer.alloc(0);

/** A frame as cut from the stream: `bytes` holds exactly one STUN message or one ChannelData (padding dropped). */
export type FrameSink = (bytes: Buffer) => void;

export class StreamFramer {
  private pending: Buffer = EMPTY;

  constructor(private readonly onFrame: FrameSink) {}

  /** Feeds received bytes; false when the stream is not TURN and must be closed. */
  push(chunk: Buffer): boolean {
    const data = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let offset = 0;
    while (data.length - offset >= CHANNEL_DATA_HEADER_LENGTH) {
      const first = data[offset]!;
      let frameLength: number;
      let usefulLength: number;
      if (startsChannelData(first)) {
        const dataLength = data.readUInt16BE(offset + 2);
        frameLength = channelDataStreamLength(dataLength);
        usefulLength = CHANNEL_DATA_HEADER_LENGTH + dataLength;
      } else if (first <= 0x03) {
        // STUN: the header says the body length (the loop guarantees its first 4 bytes are here).
        frameLength = stunMessageLengthFromStreamHeader(data, offset)!;
        usefulLength = frameLength;
      } else {
        return false;
      }
      if (data.length - offset < frameLength) break;
      this.onFrame(data.subarray(offset, offset + usefulLength));
      offset += frameLength;
    }
    // Keep the unfinished tail; at most one frame (< 64 KiB + header) is ever held.
    this.pending = offset === data.length ? EMPTY : Buffer.from(data.subarray(offset));
    return true;
  }
}
