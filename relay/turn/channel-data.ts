/**
 * ChannelData (RFC 8656 §12.4): 2-byte channel number, 2-byte length, then the application data —
 * the compact framing clients use once a channel is bound. Over TCP and TLS each message is padded
 * to a multiple of 4 bytes; over UDP the padding may be omitted.
 */
import { MIN_CHANNEL_NUMBER } from "../stun/attributes.js";

export const CHANNEL_DATA_HEADER_LENGTH = 4;

/**
 * RFC 8656 narrowed channels to 0x4000-0x4FFF, but RFC 5766 allowed up to 0x7FFF and coturn's own
 * client still picks numbers there; coturn accepts them, and so do we, so those clients work.
 * Browsers use the low range. (`startsChannelData` in stun/demultiplex.ts follows the same rule.)
 */
export const MAX_ACCEPTED_CHANNEL_NUMBER = 0x7fff;

export function isChannelNumber(value: number): boolean {
  return value >= MIN_CHANNEL_NUMBER && value <= MAX_ACCEPTED_CHANNEL_NUMBER;
}

export { startsChannelData } from "../stun/demultiplex.js";

/** The length of the data a ChannelData message carries, or -1 when the header does not fit in `bytes`. */
export function channelDataLength(bytes: Buffer, offset = 0): number {
  return bytes.length - offset < CHANNEL_DATA_HEADER_LENGTH ? -1 : bytes.readUInt16BE(offset + 2);
}

/** Bytes one ChannelData message takes on a stream, padding included. */
export function channelDataStreamLength(dataLength: number): number {
  return CHANNEL_DATA_HEADER_LENGTH + ((dataLength + 3) & ~3);
}

/** The 4-byte header for `dataLength` bytes on `channel`. */
export function channelDataHeader(channel: number, dataLength: number): Buffer {
  const header = Buffer.allocUnsafe(CHANNEL_DATA_HEADER_LENGTH);
  header.writeUInt16BE(channel, 0);
  header.writeUInt16BE(dataLength, 2);
  return header;
}
