/**
 * The relay must not relay to its own listeners: a permission for its own address would let a
 * client bounce requests off the relay at itself (loops, and answers sent where they were never
 * asked for). Relaying to its own relay ports stays allowed: two peers on one relay talk that way.
 * Judged by transport address, on every datagram to a peer, so it is two Set lookups.
 */
import { networkInterfaces } from "node:os";

export class SelfGuard {
  private readonly ports: Set<number>;
  private readonly addresses: Set<string>;

  constructor(listenerPorts: readonly number[], listenerIps: readonly string[], externalIps: readonly string[]) {
    this.ports = new Set(listenerPorts);
    this.addresses = new Set([...listenerIps, ...externalIps]);
    // A wildcard listener (0.0.0.0, ::) is reachable on every local address.
    if (listenerIps.some((ip) => ip === "0.0.0.0" || ip === "::")) {
      for (const addresses of Object.values(networkInterfaces())) {
        for (const address of addresses ?? []) this.addresses.add(address.address);
      }
    }
  }

  /** Whether `address:port` is one of the relay's own STUN/TURN listeners. */
  isListener(address: string, port: number): boolean {
    return this.ports.has(port) && this.addresses.has(address);
  }
}
