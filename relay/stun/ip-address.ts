/**
 * IP address text <-> bytes, for the address attributes. node:net can validate addresses but not convert them,
 * and the codec must format addresses straight from (XORed) bytes inside a received buffer.
 */
import { isIPv4, isIPv6 } from "node:net";

export const IPV4_LENGTH = 4;
export const IPV6_LENGTH = 16;

/** Writes a dotted-quad IPv4 address into `target` at `offset`; returns false if `text` is not one. */
export function writeIpv4(text: string, target: Uint8Array, offset: number): boolean {
  if (!isIPv4(text)) return false;
  const parts = text.split(".");
  for (let i = 0; i < IPV4_LENGTH; i++) target[offset + i] = Number(parts[i]);
  return true;
}

/**
 * Writes an IPv6 address (any RFC 4291 text form, including `::` and a trailing dotted quad; no zone id) into
 * `target` at `offset`; returns false if `text` is not one.
 */
export function writeIpv6(text: string, target: Uint8Array, offset: number): boolean {
  if (!isIPv6(text)) return false;
  let groups: string[];
  let tail: string[] = [];
  const doubleColon = text.indexOf("::");
  if (doubleColon === -1) {
    groups = text.split(":");
  } else {
    const head = text.slice(0, doubleColon);
    const rest = text.slice(doubleColon + 2);
    groups = head === "" ? [] : head.split(":");
    tail = rest === "" ? [] : rest.split(":");
  }
  const words: number[] = [];
  const pushGroups = (list: string[], into: number[]): void => {
    for (const group of list) {
      if (group.includes(".")) {
        const quad = group.split(".").map(Number);
        into.push(((quad[0] ?? 0) << 8) | (quad[1] ?? 0), ((quad[2] ?? 0) << 8) | (quad[3] ?? 0));
      } else {
        into.push(parseInt(group, 16));
      }
    }
  };
  const tailWords: number[] = [];
  pushGroups(groups, words);
  pushGroups(tail, tailWords);
  const zeros = 8 - words.length - tailWords.length;
  if (zeros < 0 || (doubleColon === -1 && zeros !== 0)) return false;
  for (let i = 0; i < zeros; i++) words.push(0);
  words.push(...tailWords);
  for (let i = 0; i < 8; i++) {
    const word = words[i] ?? 0;
    target[offset + 2 * i] = word >> 8;
    target[offset + 2 * i + 1] = word & 0xff;
  }
  return true;
}

/** Byte `i` of `source` at `offset`, XORed with the matching byte of `mask` when there is one. */
function maskedByte(source: Uint8Array, offset: number, mask: Uint8Array | undefined, maskOffset: number, i: number): number {
  const byte = source[offset + i] ?? 0;
  return mask === undefined ? byte : byte ^ (mask[maskOffset + i] ?? 0);
}

/**
 * Dotted quad of `source[offset, offset + 4)`, XORed with `mask[maskOffset, maskOffset + 4)` if given. The XOR
 * address attributes pass the message buffer itself as the mask: bytes 4..19 are the cookie and transaction id.
 */
export function formatIpv4(source: Uint8Array, offset: number, mask?: Uint8Array, maskOffset = 0): string {
  return (
    `${maskedByte(source, offset, mask, maskOffset, 0)}.${maskedByte(source, offset, mask, maskOffset, 1)}.` +
    `${maskedByte(source, offset, mask, maskOffset, 2)}.${maskedByte(source, offset, mask, maskOffset, 3)}`
  );
}

/**
 * RFC 5952 text of `source[offset, offset + 16)` XORed with `mask` like `formatIpv4`: lowercase, no leading
 * zeros, the longest run of two or more zero groups (the first, on a tie) shortened to `::`. One canonical form
 * lets callers compare addresses as strings, e.g. against permissions.
 */
export function formatIpv6(source: Uint8Array, offset: number, mask?: Uint8Array, maskOffset = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) {
    words.push((maskedByte(source, offset, mask, maskOffset, 2 * i) << 8) | maskedByte(source, offset, mask, maskOffset, 2 * i + 1));
  }
  let bestStart = -1;
  let bestLength = 1;
  let i = 0;
  while (i < 8) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return hexGroups(words, 0, 8);
  return `${hexGroups(words, 0, bestStart)}::${hexGroups(words, bestStart + bestLength, 8)}`;
}

function hexGroups(words: readonly number[], start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) text += (i === start ? "" : ":") + (words[i] ?? 0).toString(16);
  return text;
}
