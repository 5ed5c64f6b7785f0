/**
 * The relay ports an operator set aside (`min-port`..`max-port`). A port is taken when an allocation
 * or a port reservation binds its relay socket and given back when that socket has closed, so the
 * pool never leaks.
 */
export class PortPool {
  private readonly free: Set<number>;

  constructor(
    readonly minPort: number,
    readonly maxPort: number,
  ) {
    if (!Number.isInteger(minPort) || !Number.isInteger(maxPort) || minPort < 1 || maxPort > 65535 || minPort > maxPort) {
      throw new RangeError(`relay port range ${minPort}-${maxPort} is not a range of ports (1-65535, min <= max)`);
    }
    this.free = new Set();
    for (let port = minPort; port <= maxPort; port++) this.free.add(port);
  }

  get size(): number {
    return this.maxPort - this.minPort + 1;
  }

  get available(): number {
    return this.free.size;
  }

  /**
   * Takes a free port, starting from a random point so relay addresses are not predictable
   * (RFC 8656 §7.2 asks for that). `even` asks for an even port (EVEN-PORT). Null when none is left.
   */
  take(even = false): number | null {
    if (this.free.size === 0) return null;
    const span = this.size;
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = this.minPort + ((start + i) % span);
      if (this.free.has(port) && (!even || port % 2 === 0)) {
        this.free.delete(port);
        return port;
      }
    }
    return null;
  }

  /**
   * Takes an even port P and P+1 together (EVEN-PORT with the R bit: P for the allocation, P+1 held
   * under a reservation), from a random starting pair like `take`. Returns P; null when no such pair
   * is free. Pairs are (even, odd), so reservations, which hold the odd one, never hold more than half
   * the range.
   */
  takePair(): number | null {
    const first = this.minPort % 2 === 0 ? this.minPort : this.minPort + 1;
    if (first + 1 > this.maxPort) return null;
    const pairs = Math.floor((this.maxPort - 1 - first) / 2) + 1;
    const start = Math.floor(Math.random() * pairs);
    for (let i = 0; i < pairs; i++) {
      const port = first + 2 * ((start + i) % pairs);
      if (this.free.has(port) && this.free.has(port + 1)) {
        this.free.delete(port);
        this.free.delete(port + 1);
        return port;
      }
    }
    return null;
  }

  release(port: number): void {
    if (port >= this.minPort && port <= this.maxPort) this.free.add(port);
  }
}
