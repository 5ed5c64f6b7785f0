/**
 * Which peer addresses the relay may send to (CreatePermission, ChannelBind, and the sources it accepts data
 * from). A public relay that relays anywhere is an open proxy into its own network: loopback services, the
 * cloud metadata endpoint at 169.254.169.254, private ranges. Pure: text in, a compiled filter out, no I/O.
 *
 * The rules, in the order `isAllowed(address)` applies them (coturn's option names in brackets):
 * 1. Text that is not an IPv4 or IPv6 address is refused. IPv6 text may carry a zone id (`fe80::1%eth0`, as
 *    Node reports link-local sources); the zone is ignored and the address judged.
 * 2. The unspecified addresses 0.0.0.0 and :: are ALWAYS refused, whatever the policy: the kernel sends to
 *    them on loopback (CVE-2020-26262).
 * 3. Loopback (127.0.0.0/8, ::1) is refused unless `allowLoopback` [allow-loopback-peers], even if
 *    `allowedPeers` covers it. `allowLoopback` is meant for local development and tests; it allows loopback
 *    as if 127.0.0.0/8 and ::1/128 were in `allowedPeers` (so it wins over `deniedPeers` too).
 * 4. An address in `allowedPeers` [allowed-peer-ip] is allowed, even if a denied range covers it: the
 *    operator's explicit allow wins, as in coturn (e.g. allow 10.1.0.0/16 for an internal media server).
 * 5. An address in `DEFAULT_DENIED_PEER_RANGES` or `deniedPeers` [denied-peer-ip] is refused.
 * 6. Anything else is allowed.
 * An IPv6 address that carries an IPv4 address is judged twice, as the IPv4 address (rules 2-6 with the IPv4
 * ranges) and as itself (rules 2-6 with the IPv6 ranges), and allowed only if both allow it. That covers
 * IPv4-mapped `::ffff:a.b.c.d` (how dual-stack sockets reach IPv4; `::ffff:127.0.0.1` bypassed coturn's deny
 * list, CVE-2026-27624), IPv4-compatible `::a.b.c.d` (other than :: and ::1) and the NAT64 well-known prefix
 * `64:ff9b::a.b.c.d` (RFC 6052; denied by default, and if an operator allows it, 64:ff9b::10.0.0.1 still
 * counts as 10.0.0.1). The NAT64 local-use prefix 64:ff9b:1::/48, 6to4 (2002::/16) and Teredo (2001::/32)
 * embed IPv4 at positions the filter cannot know or trust; they are denied by default and judged only as IPv6.
 * A range written IPv4-mapped in the policy (`::ffff:10.0.0.0/104`) also applies to the IPv4 range it names
 * (10.0.0.0/8), so an IPv4 peer is the same peer however it is written.
 */
import { formatIpv4, formatIpv6 } from "../stun/ip-address.js";
import { IPV6_GROUPS, parseIpAddress, readIpv4, readIpv6 } from "./ip-text.js";

/**
 * Peer ranges refused by default: eturnal's "recommended" list (after Enable Security's advice): IANA special
 * purpose ranges (RFC 6890), private and shared address space, documentation, benchmarking, 6to4/Teredo
 * relays, multicast and reserved. `allowedPeers` can open any of them except unspecified and loopback.
 */
export const DEFAULT_DENIED_PEER_RANGES: readonly string[] = Object.freeze([
  "0.0.0.0/8", // "this network"; 0.0.0.0 reaches loopback (always refused, see above)
  "10.0.0.0/8", // private (RFC 1918)
  "100.64.0.0/10", // shared address space, carrier-grade NAT (RFC 6598)
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local, including the cloud metadata endpoint 169.254.169.254
  "172.16.0.0/12", // private (RFC 1918)
  "192.0.0.0/24", // IETF protocol assignments
  "192.0.2.0/24", // documentation TEST-NET-1
  "192.88.99.0/24", // 6to4 relay anycast (deprecated)
  "192.168.0.0/16", // private (RFC 1918)
  "198.18.0.0/15", // benchmarking
  "198.51.100.0/24", // documentation TEST-NET-2
  "203.0.113.0/24", // documentation TEST-NET-3
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, including broadcast 255.255.255.255
  "::/128", // unspecified (always refused)
  "::1/128", // loopback
  "64:ff9b::/96", // NAT64 well-known prefix
  "64:ff9b:1::/48", // NAT64 local-use prefix
  "100::/64", // discard-only
  "2001::/23", // IETF protocol assignments, including Teredo 2001::/32
  "2001:db8::/32", // documentation
  "2002::/16", // 6to4
  "fc00::/7", // unique local
  "fe80::/10", // link-local
  "ff00::/8", // multicast
]);

/** A parsed address range: the network address (host bits zero) and its prefix length. */
export interface Cidr {
  readonly family: 4 | 6;
  /** Network address, 4 or 16 bytes, network order, host bits zero. */
  readonly bytes: Uint8Array;
  /** 0-32 for IPv4, 0-128 for IPv6. */
  readonly prefixLength: number;
  /** Canonical text: dotted quad or RFC 5952 IPv6, then `/prefixLength`. */
  readonly text: string;
}

export type CidrParseResult = { readonly ok: true; readonly cidr: Cidr } | { readonly ok: false; readonly reason: string };

function formatNetwork(family: 4 | 6, bytes: Uint8Array): string {
  return family === 4 ? formatIpv4(bytes, 0) : formatIpv6(bytes, 0);
}

/** Zeroes the bits of `bytes` after the first `prefixLength`; returns whether any were set. */
function clearHostBits(bytes: Uint8Array, prefixLength: number): boolean {
  let hadHostBits = false;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLength - 8 * i));
    const mask = keep === 0 ? 0 : (0xff << (8 - keep)) & 0xff;
    const byte = bytes[i] ?? 0;
    if ((byte & ~mask & 0xff) !== 0) hadHostBits = true;
    bytes[i] = byte & mask;
  }
  return hadHostBits;
}

/**
 * Parses an address range: `a.b.c.d/n` (n 0-32) or IPv6 `x::y/n` (n 0-128, any RFC 4291 text form including
 * `::ffff:1.2.3.4/128`). A bare address is a single host (/32 or /128). Bits set after the prefix are refused
 * (`10.1.2.3/8`), since they usually mean a typo in the address or the length; the reason suggests the range.
 */
export function parseCidr(text: string): CidrParseResult {
  const fail = (reason: string): CidrParseResult => ({ ok: false, reason: `${JSON.stringify(text)}: ${reason}` });
  if (text.length === 0) return fail("empty; expected an address range like 10.0.0.0/8 or fc00::/7");
  if (text.trim() !== text) return fail("has leading or trailing whitespace");
  if (text.includes("%")) return fail("has a zone id (%...); ranges are written without one");
  const slash = text.indexOf("/");
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const parsed = parseIpAddress(addressText);
  if (!parsed.ok) return fail(parsed.reason);
  const maxPrefix = parsed.family === 4 ? 32 : 128;
  let prefixLength = maxPrefix;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (prefixText.length === 0) return fail("missing prefix length after '/'");
    if (!/^[0-9]{1,3}$/.test(prefixText)) return fail(`prefix length ${JSON.stringify(prefixText)} is not a number 0-${maxPrefix}`);
    if (prefixText.length > 1 && prefixText.startsWith("0")) return fail(`prefix length "${prefixText}" has a leading zero`);
    prefixLength = Number(prefixText);
    if (prefixLength > maxPrefix) return fail(`prefix length ${prefixLength} is over ${maxPrefix} for IPv${parsed.family}`);
  }
  const bytes = parsed.bytes;
  if (clearHostBits(bytes, prefixLength)) {
    return fail(`has bits set after the /${prefixLength} prefix; did you mean ${formatNetwork(parsed.family, bytes)}/${prefixLength}?`);
  }
  return { ok: true, cidr: { family: parsed.family, bytes, prefixLength, text: `${formatNetwork(parsed.family, bytes)}/${prefixLength}` } };
}

/** Peer policy; the defaults are secure: only public unicast addresses are allowed. */
export interface PeerPolicy {
  /** Allow loopback peers (127.0.0.0/8, ::1) [coturn: allow-loopback-peers]. For local development and tests. */
  readonly allowLoopback?: boolean;
  /** Ranges allowed even if denied by default or by `deniedPeers` [coturn: allowed-peer-ip]. */
  readonly allowedPeers?: readonly string[];
  /** Ranges refused in addition to `DEFAULT_DENIED_PEER_RANGES` [coturn: denied-peer-ip]. */
  readonly deniedPeers?: readonly string[];
}

export interface PeerFilterDescription {
  readonly allowLoopback: boolean;
  /** Canonical ranges from `allowedPeers`, then loopback if `allowLoopback`. */
  readonly allowed: readonly string[];
  /** Canonical ranges: the defaults, then `deniedPeers`. */
  readonly denied: readonly string[];
  /** Refused whatever the policy. */
  readonly alwaysRefused: readonly string[];
}

export interface PeerFilter {
  /** Whether the relay may exchange data with `address` (IPv4 or IPv6 text as Node reports it, no port). */
  isAllowed(address: string): boolean;
  /** The compiled policy, for a startup log line or a status endpoint. */
  describe(): PeerFilterDescription;
}

/**
 * Problems with a policy's ranges, one line each naming the option (empty if it is valid). Lets a config
 * loader report every mistake at once instead of catching `compilePeerFilter`'s error.
 */
export function checkPeerPolicy(policy: PeerPolicy): string[] {
  const problems: string[] = [];
  for (const [option, coturnName, list] of [
    ["allowedPeers", "allowed-peer-ip", policy.allowedPeers],
    ["deniedPeers", "denied-peer-ip", policy.deniedPeers],
  ] as const) {
    if (list === undefined) continue;
    list.forEach((entry, index) => {
      const result = typeof entry === "string" ? parseCidr(entry) : { ok: false as const, reason: `${typeof entry} is not a string` };
      if (!result.ok) problems.push(`${option}[${index}] (coturn ${coturnName}): ${result.reason}`);
    });
  }
  return problems;
}

/** IPv4 ranges as parallel arrays of network and mask, unsigned 32-bit. */
interface Ipv4Ranges {
  readonly networks: Uint32Array;
  readonly masks: Uint32Array;
}
/** IPv6 ranges as 8 unsigned 32-bit numbers each: the network's 4 words, then the mask's 4 words. */
type Ipv6Ranges = Uint32Array;

function ipv4Mask(prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

function word(bytes: Uint8Array, offset: number): number {
  return (((bytes[offset] ?? 0) << 24) | ((bytes[offset + 1] ?? 0) << 16) | ((bytes[offset + 2] ?? 0) << 8) | (bytes[offset + 3] ?? 0)) >>> 0;
}

/** The IPv4 range an IPv4-mapped IPv6 range (inside ::ffff:0:0/96) stands for, if it is one. */
function mappedIpv4Range(cidr: Cidr): Cidr | undefined {
  if (cidr.family !== 6 || cidr.prefixLength < 96) return undefined;
  if (word(cidr.bytes, 0) !== 0 || word(cidr.bytes, 4) !== 0 || word(cidr.bytes, 8) !== 0x0000ffff) return undefined;
  const bytes = cidr.bytes.slice(12);
  const prefixLength = cidr.prefixLength - 96;
  return { family: 4, bytes, prefixLength, text: `${formatIpv4(bytes, 0)}/${prefixLength}` };
}

function compileRanges(cidrs: readonly Cidr[]): { v4: Ipv4Ranges; v6: Ipv6Ranges } {
  const expanded: Cidr[] = [];
  for (const cidr of cidrs) {
    expanded.push(cidr);
    const mapped = mappedIpv4Range(cidr);
    if (mapped !== undefined) expanded.push(mapped);
  }
  const v4 = expanded.filter((cidr) => cidr.family === 4);
  const v6 = expanded.filter((cidr) => cidr.family === 6);
  const networks = new Uint32Array(v4.length);
  const masks = new Uint32Array(v4.length);
  v4.forEach((cidr, i) => {
    masks[i] = ipv4Mask(cidr.prefixLength);
    networks[i] = word(cidr.bytes, 0);
  });
  const v6Ranges = new Uint32Array(8 * v6.length);
  v6.forEach((cidr, i) => {
    for (let k = 0; k < 4; k++) {
      v6Ranges[8 * i + k] = word(cidr.bytes, 4 * k);
      v6Ranges[8 * i + 4 + k] = ipv4Mask(Math.max(0, Math.min(32, cidr.prefixLength - 32 * k)));
    }
  });
  return { v4: { networks, masks }, v6: v6Ranges };
}

function inIpv4Ranges(ranges: Ipv4Ranges, address: number): boolean {
  const { networks, masks } = ranges;
  for (let i = 0; i < networks.length; i++) {
    if (((address & (masks[i] ?? 0)) >>> 0) === networks[i]) return true;
  }
  return false;
}

function inIpv6Ranges(ranges: Ipv6Ranges, w0: number, w1: number, w2: number, w3: number): boolean {
  for (let i = 0; i < ranges.length; i += 8) {
    if (
      ((w0 & (ranges[i + 4] ?? 0)) >>> 0) === ranges[i] &&
      ((w1 & (ranges[i + 5] ?? 0)) >>> 0) === ranges[i + 1] &&
      ((w2 & (ranges[i + 6] ?? 0)) >>> 0) === ranges[i + 2] &&
      ((w3 & (ranges[i + 7] ?? 0)) >>> 0) === ranges[i + 3]
    ) {
      return true;
    }
  }
  return false;
}

function parseAll(list: readonly string[]): Cidr[] {
  return list.map((entry) => {
    const result = parseCidr(entry);
    if (!result.ok) throw new RangeError(result.reason); // unreachable: checkPeerPolicy ran first
    return result.cidr;
  });
}

const NAT64_WELL_KNOWN_PREFIX = 0x0064ff9b;

/**
 * Compiles a peer policy (see the rules at the top of this file). Throws a RangeError listing every invalid
 * range, naming its option, so a relay refuses to start on a policy it cannot apply.
 */
export function compilePeerFilter(policy: PeerPolicy = {}): PeerFilter {
  const problems = checkPeerPolicy(policy);
  if (problems.length > 0) throw new RangeError(`invalid peer policy:\n  ${problems.join("\n  ")}`);
  const allowLoopback = policy.allowLoopback === true;
  const allowedCidrs = parseAll(policy.allowedPeers ?? []);
  const deniedCidrs = parseAll([...DEFAULT_DENIED_PEER_RANGES, ...(policy.deniedPeers ?? [])]);
  const allowed = compileRanges(allowedCidrs);
  const denied = compileRanges(deniedCidrs);
  /** Scratch for the IPv6 parser; `isAllowed` never re-enters, so one per filter is enough. */
  const groups = new Uint16Array(IPV6_GROUPS);

  function ipv4Allowed(address: number): boolean {
    if (address === 0) return false;
    if (address >>> 24 === 127) return allowLoopback;
    if (inIpv4Ranges(allowed.v4, address)) return true;
    return !inIpv4Ranges(denied.v4, address);
  }

  function ipv6Allowed(w0: number, w1: number, w2: number, w3: number): boolean {
    if (w0 === 0 && w1 === 0 && w2 === 0 && w3 <= 1) return w3 === 1 && allowLoopback;
    if (inIpv6Ranges(allowed.v6, w0, w1, w2, w3)) return true;
    return !inIpv6Ranges(denied.v6, w0, w1, w2, w3);
  }

  function isAllowed(address: string): boolean {
    if (typeof address !== "string") return false;
    if (address.indexOf(":") === -1) {
      const value = readIpv4(address);
      return typeof value === "number" && ipv4Allowed(value);
    }
    const percent = address.indexOf("%");
    if (percent === 0 || percent === address.length - 1) return false;
    if (readIpv6(address, groups, 0, percent === -1 ? address.length : percent) !== undefined) return false;
    const w0 = (((groups[0] ?? 0) << 16) | (groups[1] ?? 0)) >>> 0;
    const w1 = (((groups[2] ?? 0) << 16) | (groups[3] ?? 0)) >>> 0;
    const w2 = (((groups[4] ?? 0) << 16) | (groups[5] ?? 0)) >>> 0;
    const w3 = (((groups[6] ?? 0) << 16) | (groups[7] ?? 0)) >>> 0;
    if (!ipv6Allowed(w0, w1, w2, w3)) return false;
    const embedsIpv4 =
      w1 === 0 &&
      ((w0 === 0 && (w2 === 0x0000ffff || (w2 === 0 && w3 > 1))) || // IPv4-mapped, IPv4-compatible
        (w0 === NAT64_WELL_KNOWN_PREFIX && w2 === 0)); // NAT64 64:ff9b::/96
    return !embedsIpv4 || ipv4Allowed(w3);
  }

  const description: PeerFilterDescription = Object.freeze({
    allowLoopback,
    allowed: Object.freeze([...allowedCidrs.map((cidr) => cidr.text), ...(allowLoopback ? ["127.0.0.0/8", "::1/128"] : [])]),
    denied: Object.freeze(deniedCidrs.map((cidr) => cidr.text)),
    alwaysRefused: Object.freeze(["0.0.0.0/32", "::/128", ...(allowLoopback ? [] : ["127.0.0.0/8", "::1/128"])]),
  });

  return { isAllowed, describe: () => description };
}
