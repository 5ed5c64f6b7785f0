/**
 * The `turn:`/`turns:` URLs a relay registers with the fleet: the operator's --public-url list, or,
 * without one, URLs derived from the address clients reach the relay at and the listeners it bound:
 *
 *   turn:HOST:PORT?transport=udp     the UDP listener
 *   turn:HOST:PORT?transport=tcp     the TCP listener
 *   turns:HOST:TLSPORT?transport=tcp the TLS listener
 *
 * HOST is the first --external-ip (its public side: what clients reach behind 1:1 NAT), else the
 * first listening IP that is not a wildcard; an IPv6 HOST is written in brackets. Pure.
 */
import { isIP } from "node:net";

export interface ListenerLike {
  transport: "udp" | "tcp" | "tls";
  port: number;
}

export interface PublicAddressSources {
  /** --external-ip (or what --external-ip-stun-server found), in order. */
  externalIps: readonly { public: string }[];
  listeningIps: readonly string[];
}

function isWildcard(ip: string): boolean {
  return ip === "0.0.0.0" || ip === "::";
}

/** The host clients should reach, or null when the relay only knows wildcards (then --public-url is needed). */
export function publicHost(sources: PublicAddressSources): string | null {
  const ip = sources.externalIps[0]?.public ?? sources.listeningIps.find((candidate) => !isWildcard(candidate));
  if (ip === undefined) return null;
  return isIP(ip) === 6 ? `[${ip}]` : ip;
}

/** One URL per transport the relay listens on, each with the first listener's port of that transport. */
export function derivePublicUrls(host: string, listeners: readonly ListenerLike[]): string[] {
  const portOf = (transport: ListenerLike["transport"]) => listeners.find((listener) => listener.transport === transport)?.port;
  const urls: string[] = [];
  const udp = portOf("udp");
  const tcp = portOf("tcp");
  const tls = portOf("tls");
  if (udp !== undefined) urls.push(`turn:${host}:${udp}?transport=udp`);
  if (tcp !== undefined) urls.push(`turn:${host}:${tcp}?transport=tcp`);
  if (tls !== undefined) urls.push(`turns:${host}:${tls}?transport=tcp`);
  return urls;
}
