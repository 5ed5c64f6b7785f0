/**
 * The relay must not relay to its own listeners: a permission for its own address would let a
 * client bounce requests off the relay at itself (loops, and answers sent where they were never
 * asked for). Relaying to its own relay ports stays allowed: two peers on one relay talk that way.
 *
 * Judged by transport address, on every datagram to a peer: a Set lookup of the port, and only when
 * the port is a listener's does the address get looked at. Addresses are compared in one canonical
 * text (policy/ip-text.ts), so no spelling of a listener's address (`0:0:0:0:0:0:0:1`, upper case,
 * leading zeros, `::ffff:127.0.0.1`) gets past the guard.
 *
 * What counts as the relay's own address:
 * - every listening and external IP it was given;
 * - the unspecified address (0.0.0.0, ::): the kernel delivers a datagram sent there locally;
 * - with a wildcard listener (0.0.0.0 or ::), every address of every local interface, and all of
 *   127.0.0.0/8 (the whole block is local, not just 127.0.0.1). Interfaces come and go (a VPN, DHCP
 *   on a second NIC), so the server calls `refresh()` now and then to read them again.
 */
import { networkInterfaces } from "node:os";
import { canonicalIp, readIpv4 } from "./ip-text.js";

/** How often the server re-reads the local interfaces for a wildcard listener. */
export const INTERFACE_REFRESH_MS = 10_000;

/** The local interface addresses, as os.networkInterfaces() reports them (injectable for tests). */
export type InterfaceReader = () => readonly string[];

export function localInterfaceAddresses(): string[] {
  return Object.values(networkInterfaces()).flatMap((addresses) => (addresses ?? []).map((address) => address.address));
}

const IPV4_LOOPBACK_NETWORK = 127;

export class SelfGuard {
  private readonly ports: Set<number>;
  /** Canonical listening and external IPs, and the unspecified addresses. */
  private readonly configured: Set<string>;
  /** Canonical local interface addresses; filled only for a wildcard listener. */
  private local = new Set<string>();
  private readonly wildcardV4: boolean;
  private readonly wildcard: boolean;

  constructor(
    listenerPorts: readonly number[],
    listenerIps: readonly string[],
    externalIps: readonly string[],
    private readonly readInterfaces: InterfaceReader = localInterfaceAddresses,
  ) {
    this.ports = new Set(listenerPorts);
    this.configured = new Set(["0.0.0.0", "::"]);
    for (const ip of [...listenerIps, ...externalIps]) {
      const canonical = canonicalIp(ip);
      if (canonical !== null) this.configured.add(canonical);
    }
    const listeners = listenerIps.map(canonicalIp);
    this.wildcardV4 = listeners.includes("0.0.0.0");
    this.wildcard = this.wildcardV4 || listeners.includes("::");
    this.refresh();
  }

  /** Reads the local interfaces again (a wildcard listener is reachable on each of them). */
  refresh(): void {
    if (!this.wildcard) return;
    const local = new Set<string>();
    for (const address of this.readInterfaces()) {
      // Link-local IPv6 addresses come with a zone ("fe80::1%eth0"); a peer address never does.
      const canonical = canonicalIp(address.split("%", 1)[0]!);
      if (canonical !== null) local.add(canonical);
    }
    this.local = local;
  }

  /** Whether `address:port` is one of the relay's own STUN/TURN listeners. */
  isListener(address: string, port: number): boolean {
    if (!this.ports.has(port)) return false;
    const canonical = canonicalIp(address);
    // Text that is no address cannot be told apart from ours: refuse it.
    if (canonical === null) return true;
    if (this.configured.has(canonical) || this.local.has(canonical)) return true;
    return this.wildcardV4 && isIpv4Loopback(canonical);
  }
}

function isIpv4Loopback(canonical: string): boolean {
  if (canonical.includes(":")) return false;
  const value = readIpv4(canonical);
  return typeof value === "number" && value >>> 24 === IPV4_LOOPBACK_NETWORK;
}
