/**
 * Every live allocation, findable by its client's 5-tuple, with the counts the quotas need. UDP
 * clients are also indexed by (address, port), one index per listening socket (the relay's side of
 * the 5-tuple), so the data path finds them without a key string.
 */
import type { Allocation } from "./allocation.js";
import { LiveCounts } from "../policy/live-counts.js";
import { sourceOf } from "../policy/source-address.js";
import { AddressPortMap } from "./peer-map.js";

export class AllocationTable {
  private readonly byClientKey = new Map<string, Allocation>();
  /** Listener ("address:port") → its UDP clients' allocations. */
  private readonly udpClientsByListener = new Map<string, AddressPortMap<Allocation>>();
  private readonly perUser = new LiveCounts();
  /** By `sourceOf` the client address. */
  private readonly perSource = new LiveCounts();
  /** By room, for allocations made with a room member's credential: at most one key per allocation. */
  private readonly perRoom = new LiveCounts();

  get size(): number {
    return this.byClientKey.size;
  }

  byKey(clientKey: string): Allocation | undefined {
    return this.byClientKey.get(clientKey);
  }

  /**
   * The UDP clients of one listener, by (address, port): the data path's lookup. The map lives as
   * long as the table, so a listener fetches it once and keeps it.
   */
  udpClientsAt(listener: string): AddressPortMap<Allocation> {
    let clients = this.udpClientsByListener.get(listener);
    if (clients === undefined) {
      clients = new AddressPortMap<Allocation>();
      this.udpClientsByListener.set(listener, clients);
    }
    return clients;
  }

  /** Allocations held by one TURN user id (user-quota). */
  countForUser(userId: string): number {
    return this.perUser.get(userId);
  }

  /** Allocations held by clients at this address's source (its IPv4 address or IPv6 /64), over any transport (max-allocations-per-ip). */
  countForSource(address: string): number {
    return this.perSource.get(sourceOf(address));
  }

  /** Allocations per room (room-scoped credentials only), read when a fleet heartbeat is built. */
  roomCounts(): ReadonlyMap<string, number> {
    return this.perRoom.entries();
  }

  add(allocation: Allocation): void {
    const client = allocation.client;
    this.byClientKey.set(client.key, allocation);
    if (client.transport === "udp") this.udpClientsAt(client.listener).set(client.address.address, client.address.port, allocation);
    this.perUser.add(allocation.owner.userId);
    this.perSource.add(sourceOf(client.address.address));
    if (allocation.owner.room !== undefined) this.perRoom.add(allocation.owner.room);
  }

  remove(allocation: Allocation): void {
    const client = allocation.client;
    if (this.byClientKey.get(client.key) !== allocation) return;
    this.byClientKey.delete(client.key);
    if (client.transport === "udp") this.udpClientsAt(client.listener).delete(client.address.address, client.address.port);
    this.perUser.remove(allocation.owner.userId);
    this.perSource.remove(sourceOf(client.address.address));
    if (allocation.owner.room !== undefined) this.perRoom.remove(allocation.owner.room);
  }

  values(): IterableIterator<Allocation> {
    return this.byClientKey.values();
  }
}
