/**
 * A Map that keeps its entries in order of recency (the least recently set or touched first) and
 * reaches the oldest in constant time, for the relay's bounded caches.
 *
 * Why not a plain Map, deleting `keys().next()` to evict: V8 leaves a deleted entry in place until
 * the table is rebuilt, and an iterator walks over every one of them. A cache that deletes its oldest
 * entry (or re-inserts one to mark it recent) on every request gathers thousands of deleted entries
 * at the front, so finding the oldest took about 10 us a request at 20,000 entries (the transaction
 * cache's pattern), against about 0.5 us for the whole request's cache work here. Here the order is
 * a doubly linked list beside the Map, and the Map is only ever looked up, never iterated.
 */

interface RecencyNode<K, V> {
  readonly key: K;
  value: V;
  older: RecencyNode<K, V> | null;
  newer: RecencyNode<K, V> | null;
}

export class RecencyMap<K, V> {
  private readonly nodes = new Map<K, RecencyNode<K, V>>();
  private oldestNode: RecencyNode<K, V> | null = null;
  private newestNode: RecencyNode<K, V> | null = null;

  /** `maxEntries`: beyond it, `set` evicts the oldest entries (Infinity: never). */
  constructor(private readonly maxEntries = Infinity) {
    if (!(maxEntries >= 0)) throw new RangeError(`a RecencyMap holds 0 or more entries, not ${maxEntries}`);
  }

  get size(): number {
    return this.nodes.size;
  }

  /** The value for `key`; its place in the order stays as it is. */
  get(key: K): V | undefined {
    return this.nodes.get(key)?.value;
  }

  has(key: K): boolean {
    return this.nodes.has(key);
  }

  /** Sets `key` to `value` and makes it the newest entry; then evicts the oldest beyond the bound. */
  set(key: K, value: V): void {
    const node = this.nodes.get(key);
    if (node !== undefined) {
      node.value = value;
      this.makeNewest(node);
      return;
    }
    const added: RecencyNode<K, V> = { key, value, older: this.newestNode, newer: null };
    if (this.newestNode === null) this.oldestNode = added;
    else this.newestNode.newer = added;
    this.newestNode = added;
    this.nodes.set(key, added);
    while (this.nodes.size > this.maxEntries) this.shift();
  }

  /** Makes `key` the newest entry without changing its value; false when it is not here. */
  touch(key: K): boolean {
    const node = this.nodes.get(key);
    if (node === undefined) return false;
    this.makeNewest(node);
    return true;
  }

  delete(key: K): boolean {
    const node = this.nodes.get(key);
    if (node === undefined) return false;
    this.nodes.delete(key);
    this.unlink(node);
    return true;
  }

  /** The oldest entry, left in place; undefined when empty. */
  oldest(): [K, V] | undefined {
    return this.oldestNode === null ? undefined : [this.oldestNode.key, this.oldestNode.value];
  }

  /** Removes the oldest entry and returns it; undefined when empty. */
  shift(): [K, V] | undefined {
    const node = this.oldestNode;
    if (node === null) return undefined;
    this.nodes.delete(node.key);
    this.unlink(node);
    return [node.key, node.value];
  }

  clear(): void {
    this.nodes.clear();
    this.oldestNode = null;
    this.newestNode = null;
  }

  /** Every entry, oldest first. Deleting the entry just returned is allowed; other changes meanwhile are not. */
  *entries(): IterableIterator<[K, V]> {
    for (let node = this.oldestNode; node !== null; ) {
      const newer: RecencyNode<K, V> | null = node.newer;
      yield [node.key, node.value];
      node = newer;
    }
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  private makeNewest(node: RecencyNode<K, V>): void {
    if (node === this.newestNode) return;
    this.unlink(node);
    node.older = this.newestNode;
    node.newer = null;
    if (this.newestNode === null) this.oldestNode = node;
    else this.newestNode.newer = node;
    this.newestNode = node;
  }

  private unlink(node: RecencyNode<K, V>): void {
    if (node.older === null) this.oldestNode = node.newer;
    else node.older.newer = node.newer;
    if (node.newer === null) this.newestNode = node.older;
    else node.newer.older = node.older;
    node.older = null;
    node.newer = null;
  }
}
