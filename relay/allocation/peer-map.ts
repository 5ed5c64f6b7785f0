/**
 * A map keyed by (IP address, port) without building a key string per lookup: the data path looks
 * up every datagram's sender, and a string per packet is garbage the relay does not need.
 */
export class AddressPortMap<T> {
  private readonly byPort = new Map<number, Map<string, T>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(address: string, port: number): T | undefined {
    return this.byPort.get(port)?.get(address);
  }

  set(address: string, port: number, value: T): void {
    let byAddress = this.byPort.get(port);
    if (byAddress === undefined) {
      byAddress = new Map();
      this.byPort.set(port, byAddress);
    }
    if (!byAddress.has(address)) this.count++;
    byAddress.set(address, value);
  }

  delete(address: string, port: number): boolean {
    const byAddress = this.byPort.get(port);
    if (byAddress === undefined || !byAddress.delete(address)) return false;
    if (byAddress.size === 0) this.byPort.delete(port);
    this.count--;
    return true;
  }

  *values(): IterableIterator<T> {
    for (const byAddress of this.byPort.values()) yield* byAddress.values();
  }
}
