/**
 * A map keyed by (IP address, port) without building a key string per lookup: the data path looks
 * up every datagram's sender, and a string per packet is garbage the relay does not need.
 *
 * Each port holds its first address inline and a Map only once a second address shares the port:
 * the table of UDP clients has one port per client, and a Map per port (~180 bytes) was a good part
 * of what 10,000 idle allocations cost (issue 16). A port shared by many addresses still gets a
 * Map, so no sender can make a lookup walk a list.
 */
class PortSlot<T> {
  /** Every other address at this port; null while there is none. */
  more: Map<string, T> | null = null;

  constructor(
    public address: string,
    public value: T,
  ) {}
}

/** What a reader of the map may do (Allocation hands its channels out this way). */
export interface ReadonlyAddressPortMap<T> {
  readonly size: number;
  get(address: string, port: number): T | undefined;
  values(): IterableIterator<T>;
}

export class AddressPortMap<T> implements ReadonlyAddressPortMap<T> {
  private readonly byPort = new Map<number, PortSlot<T>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(address: string, port: number): T | undefined {
    const slot = this.byPort.get(port);
    if (slot === undefined) return undefined;
    if (slot.address === address) return slot.value;
    return slot.more === null ? undefined : slot.more.get(address);
  }

  set(address: string, port: number, value: T): void {
    const slot = this.byPort.get(port);
    if (slot === undefined) {
      this.byPort.set(port, new PortSlot(address, value));
      this.count++;
      return;
    }
    if (slot.address === address) {
      slot.value = value;
      return;
    }
    if (slot.more === null) slot.more = new Map();
    if (!slot.more.has(address)) this.count++;
    slot.more.set(address, value);
  }

  delete(address: string, port: number): boolean {
    const slot = this.byPort.get(port);
    if (slot === undefined) return false;
    if (slot.address === address) {
      const next = slot.more === null ? undefined : firstEntry(slot.more);
      if (next === undefined) {
        this.byPort.delete(port);
      } else {
        // Another address at this port takes the inline place.
        slot.more!.delete(next[0]);
        slot.address = next[0];
        slot.value = next[1];
        if (slot.more!.size === 0) slot.more = null;
      }
      this.count--;
      return true;
    }
    if (slot.more === null || !slot.more.delete(address)) return false;
    if (slot.more.size === 0) slot.more = null;
    this.count--;
    return true;
  }

  *values(): IterableIterator<T> {
    for (const slot of this.byPort.values()) {
      yield slot.value;
      if (slot.more !== null) yield* slot.more.values();
    }
  }
}

function firstEntry<T>(map: Map<string, T>): [string, T] | undefined {
  const first = map.entries().next();
  return first.done ? undefined : first.value;
}
