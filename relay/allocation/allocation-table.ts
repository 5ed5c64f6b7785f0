/**
 * Every live allocation, findable by its client's 5-tuple, with the counts the quotas need. UDP
 * clients are also indexed by (address, port) so the data path finds them without a key string.
 */
import type { Allocation } from "./allocation.js";
import { AddressPortMap } from "./peer-map.js";

export class AllocationTable {
  private readonly byClientKey = new Map<string, Allocation>();
  private readonly udpClients = new AddressPortMap<Allocation>();
  private readonly perUser = new Map<string, number>();
  private readonly perSourceIp = new Map<string, number>();

  get size(): number {
    return this.byClientKey.size;
  }

  byKey(clientKey: string): Allocation | undefined {
    return this.byClientKey.get(clientKey);
  }

  /** The data path's lookup for a UDP client. */
  udpClient(address: string, port: number): Allocation | undefined {
    return this.udpClients.get(address, port);
  }

  /** Allocations held by one TURN user id (user-quota). */
  countForUser(userId: string): number {
    return this.perUser.get(userId) ?? 0;
  }

  /** Allocations held by clients at one IP address, over any transport (max-allocations-per-ip). */
  countForSourceIp(address: string): number {
    return this.perSourceIp.get(address) ?? 0;
  }

  add(allocation: Allocation): void {
    const client = allocation.client;
    this.byClientKey.set(client.key, allocation);
    if (client.transport === "udp") this.udpClients.set(client.address.address, client.address.port, allocation);
    increment(this.perUser, allocation.owner.userId);
    increment(this.perSourceIp, client.address.address);
  }

  remove(allocation: Allocation): void {
    const client = allocation.client;
    if (this.byClientKey.get(client.key) !== allocation) return;
    this.byClientKey.delete(client.key);
    if (client.transport === "udp") this.udpClients.delete(client.address.address, client.address.port);
    decrement(this.perUser, allocation.owner.userId);
    decrement(this.perSourceIp, client.address.address);
  }

  values(): IterableIterator<Allocation> {
    return this.byClientKey.values();
  }
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Counts that reach 0 are deleted, so the maps hold only keys with live allocations. */
function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 0) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}
