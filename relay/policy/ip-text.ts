/**
 * IP address text -> numbers and bytes, written for the peer filter: no node:net, no regular expressions, no
 * `split`, so the hot path (`readIpv4`, `readIpv6`) allocates nothing for a valid address. Errors come back as a
 * reason string (never thrown), so untrusted text can be judged without try/catch.
 *
 * Accepted text:
 * - IPv4: exactly four decimal octets 0-255 separated by dots. A leading zero ("010") is refused: some parsers
 *   (inet_aton) read it as octal, so "010.0.0.1" would name a different host for them than for us.
 * - IPv6: RFC 4291 §2.2: eight groups of 1-4 hex digits (any case); one `::` standing for one or more zero
 *   groups; a dotted quad as the last 32 bits (`::ffff:1.2.3.4`, `64:ff9b::10.0.0.1`). No zone id (`%eth0`),
 *   no brackets, no surrounding whitespace: the callers decide what to do with those.
 */
import { formatIpv4, formatIpv6 } from "../stun/ip-address.js";

const DOT = 0x2e;
const COLON = 0x3a;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** Number of 16-bit groups in an IPv6 address. */
export const IPV6_GROUPS = 8;

function describeCharacter(text: string, index: number): string {
  return JSON.stringify(text.charAt(index));
}

/** Value of a hex digit's character code, or -1. */
function hexValue(code: number): number {
  if (code >= DIGIT_0 && code <= DIGIT_9) return code - DIGIT_0;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * Reads the dotted-quad IPv4 address in `text[start, end)`: its value as an unsigned 32-bit number
 * (`a.b.c.d` = a * 2^24 + b * 2^16 + c * 2^8 + d), or a reason string if it is not one.
 */
export function readIpv4(text: string, start = 0, end = text.length): number | string {
  if (start >= end) return "empty address";
  let value = 0;
  let octets = 0;
  let i = start;
  for (;;) {
    const from = i;
    let octet = 0;
    while (i < end) {
      const code = text.charCodeAt(i);
      if (code < DIGIT_0 || code > DIGIT_9) break;
      octet = octet * 10 + (code - DIGIT_0);
      i++;
      if (i - from > 3) return `IPv4 octet "${text.slice(from, i)}..." has more than 3 digits`;
    }
    if (i === from) {
      if (i === end) return octets === 0 ? "empty address" : "IPv4 address ends with a '.'";
      return text.charCodeAt(i) === DOT ? "IPv4 address has an empty octet" : `unexpected character ${describeCharacter(text, i)} in IPv4 address`;
    }
    if (i - from > 1 && text.charCodeAt(from) === DIGIT_0) {
      return `IPv4 octet "${text.slice(from, i)}" has a leading zero (some parsers read it as octal); write it without`;
    }
    if (octet > 255) return `IPv4 octet ${octet} is over 255`;
    value = value * 256 + octet;
    octets++;
    if (i === end) break;
    if (text.charCodeAt(i) !== DOT) return `unexpected character ${describeCharacter(text, i)} in IPv4 address`;
    if (octets === 4) return "IPv4 address has more than 4 octets";
    i++;
  }
  if (octets !== 4) return `IPv4 address has ${octets} octet${octets === 1 ? "" : "s"}; it needs 4 (a.b.c.d)`;
  return value;
}

/**
 * Reads the IPv6 address in `text[start, end)` into `groups[0..8)` (16-bit values, most significant first);
 * returns undefined on success or a reason string (then `groups` holds garbage).
 */
export function readIpv6(text: string, groups: Uint16Array, start = 0, end = text.length): string | undefined {
  if (start >= end) return "empty address";
  let count = 0;
  /** Index in `groups` where `::` stands, or -1. */
  let gap = -1;
  let i = start;
  if (text.charCodeAt(i) === COLON) {
    if (i + 1 >= end || text.charCodeAt(i + 1) !== COLON) return "IPv6 address starts with a single ':' (write '::' or a group)";
    gap = 0;
    i += 2;
  }
  while (i < end) {
    if (count === IPV6_GROUPS) return "IPv6 address has more than 8 groups";
    let value = 0;
    let j = i;
    while (j < end) {
      const digit = hexValue(text.charCodeAt(j));
      if (digit < 0) break;
      value = value * 16 + digit;
      j++;
    }
    if (j < end && text.charCodeAt(j) === DOT) {
      // A dotted quad: the rest of the text, and the last 32 bits of the address.
      if (count > IPV6_GROUPS - 2) return "the dotted quad in an IPv6 address must be its last 32 bits";
      const v4 = readIpv4(text, i, end);
      if (typeof v4 === "string") return `embedded ${v4}`;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (j === i) {
      if (j < end && text.charCodeAt(j) === COLON) return "IPv6 address has ':::' or an empty group";
      return `unexpected character ${describeCharacter(text, j)} in IPv6 address`;
    }
    if (j - i > 4) return `IPv6 group "${text.slice(i, j)}" has more than 4 hex digits`;
    groups[count++] = value;
    if (j === end) {
      i = end;
      break;
    }
    if (text.charCodeAt(j) !== COLON) return `unexpected character ${describeCharacter(text, j)} in IPv6 address`;
    j++;
    if (j < end && text.charCodeAt(j) === COLON) {
      if (gap !== -1) return "IPv6 address has '::' more than once";
      gap = count;
      j++;
    } else if (j === end) {
      return "IPv6 address ends with a single ':' (write '::' or a group)";
    }
    i = j;
  }
  if (gap === -1) {
    if (count !== IPV6_GROUPS) return `IPv6 address has ${count} group${count === 1 ? "" : "s"}; it needs 8, or '::' for a run of zeros`;
    return undefined;
  }
  if (count === IPV6_GROUPS) return "IPv6 address has 8 groups and a '::', which must stand for at least one zero group";
  // Move the groups after `::` to the end and zero the run it stands for.
  const tail = count - gap;
  for (let k = 1; k <= tail; k++) groups[IPV6_GROUPS - k] = groups[count - k] ?? 0;
  for (let k = gap; k < IPV6_GROUPS - tail; k++) groups[k] = 0;
  return undefined;
}

export type IpAddressParseResult =
  | { readonly ok: true; readonly family: 4 | 6; readonly bytes: Uint8Array }
  | { readonly ok: false; readonly reason: string };

/**
 * Parses IPv4 or IPv6 address text (no zone id, no prefix) into 4 or 16 bytes, network order. Text with a ':'
 * is read as IPv6, anything else as IPv4.
 */
export function parseIpAddress(text: string): IpAddressParseResult {
  if (text.includes(":")) {
    const groups = new Uint16Array(IPV6_GROUPS);
    const reason = readIpv6(text, groups);
    if (reason !== undefined) return { ok: false, reason };
    const bytes = new Uint8Array(16);
    for (let k = 0; k < IPV6_GROUPS; k++) {
      const group = groups[k] ?? 0;
      bytes[2 * k] = group >>> 8;
      bytes[2 * k + 1] = group & 0xff;
    }
    return { ok: true, family: 6, bytes };
  }
  const value = readIpv4(text);
  if (typeof value === "string") return { ok: false, reason: value };
  return { ok: true, family: 4, bytes: Uint8Array.of(value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff) };
}

/**
 * One text per address, whatever spelling it came in: IPv4 as a dotted quad, IPv6 as RFC 5952 text
 * (lowercase, no leading zeros, the longest zero run as `::`, as the codec formats what it reads off
 * the wire), and an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it stands for:
 * a dual-stack socket sends to the one as to the other. Null when `text` is no address.
 */
export function canonicalIp(text: string): string | null {
  const parsed = parseIpAddress(text);
  if (!parsed.ok) return null;
  const bytes = parsed.bytes;
  if (parsed.family === 4) return formatIpv4(bytes, 0);
  if (isIpv4Mapped(bytes)) return formatIpv4(bytes, 12);
  return formatIpv6(bytes, 0);
}

/** ::ffff:0:0/96. */
function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}
