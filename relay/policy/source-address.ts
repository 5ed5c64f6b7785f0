/**
 * What the per-source limits (--max-allocations-per-ip, --max-connections-per-ip) count a client
 * against: its IPv4 address, or its IPv6 /64. A /64 is one site's subnet, and any host in it may
 * pick any of its 2^64 addresses, so counting IPv6 per address would be no cap at all. An
 * IPv4-mapped IPv6 address counts as the IPv4 address it stands for.
 */
import { IPV6_GROUPS, canonicalIp, readIpv6 } from "./ip-text.js";

export function sourceOf(ip: string): string {
  const canonical = canonicalIp(ip);
  // Not an address (sockets only report addresses): counted under its own text.
  if (canonical === null) return ip;
  if (!canonical.includes(":")) return canonical;
  const groups = new Uint16Array(IPV6_GROUPS);
  readIpv6(canonical, groups);
  return `${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}:${groups[3]!.toString(16)}::/64`;
}
