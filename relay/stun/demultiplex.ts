/**
 * Telling packets apart on a TURN port before decoding them, and cutting STUN messages out of a byte stream.
 * A TURN server's port carries STUN messages and ChannelData (RFC 8656 §12); RFC 7983 assigns them
 * disjoint first-byte ranges, so one byte decides which parser runs.
 */
import { MAGIC_COOKIE, STUN_HEADER_LENGTH } from "./constants.js";

export const PacketKind = {
  Stun: "stun",
  ChannelData: "channel-data",
  Other: "other",
} as const;
export type PacketKind = (typeof PacketKind)[keyof typeof PacketKind];

/**
 * ChannelData's first byte: RFC 8656 and RFC 7983 give it 64..79 (channels 0x4000..0x4FFF), but RFC
 * 5766 allowed channels up to 0x7FFF and coturn's own client still uses them; coturn accepts them and
 * so does this relay, so 64..127 is ChannelData here.
 */
export function startsChannelData(firstByte: number): boolean {
  return firstByte >= 0x40 && firstByte <= 0x7f;
}

/** STUN's first byte is 0..3: the top two bits are zero. */
export function classifyFirstByte(firstByte: number): PacketKind {
  if (firstByte >= 0 && firstByte <= 3) return PacketKind.Stun;
  if (startsChannelData(firstByte)) return PacketKind.ChannelData;
  return PacketKind.Other;
}

/** Classifies a datagram by its first byte; an empty one is `other`. */
export function classifyPacket(packet: Uint8Array): PacketKind {
  const firstByte = packet[0];
  return firstByte === undefined ? PacketKind.Other : classifyFirstByte(firstByte);
}

/**
 * A cheap check that a datagram is shaped like a STUN message: top two bits zero, the magic cookie, a body
 * length that is a multiple of 4 and matches the datagram. It looks at the header only; `decodeStunMessage`
 * still has to validate the attributes.
 */
export function isStunMessage(packet: Buffer): boolean {
  if (packet.length < STUN_HEADER_LENGTH) return false;
  if ((packet.readUInt8(0) & 0xc0) !== 0) return false;
  if (packet.readUInt32BE(4) !== MAGIC_COOKIE) return false;
  const bodyLength = packet.readUInt16BE(2);
  return bodyLength % 4 === 0 && bodyLength === packet.length - STUN_HEADER_LENGTH;
}

/**
 * Over TCP or TLS, messages arrive back to back with no framing beyond their own header. Given the start of one,
 * returns its total length (header plus body) once the 4 bytes holding the length field have arrived, or
 * `undefined` while fewer are buffered. It does not check the cookie: call this after `classifyFirstByte`
 * said STUN, and let `decodeStunMessage` reject a bad frame.
 */
export function stunMessageLengthFromStreamHeader(stream: Buffer, start = 0): number | undefined {
  if (start < 0 || stream.length - start < 4) return undefined;
  return STUN_HEADER_LENGTH + stream.readUInt16BE(start + 2);
}
