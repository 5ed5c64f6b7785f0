/**
 * HMAC-SHA1 (RFC 2104, FIPS 180-4) in plain TypeScript, for MESSAGE-INTEGRITY on every authenticated request and
 * response. Why not node:crypto's createHmac: each call builds a native Hmac object, looks the digest up and
 * imports the key, several microseconds for a ~100-byte STUN message, 17 % of the relay's CPU under allocation
 * churn. Here the key's inner and outer pad states are computed once per key (`HmacSha1Key`, cached by
 * `hmacSha1KeyFor`), so a message costs only its own blocks plus one outer block, with no allocation.
 *
 * Synchronous and single-threaded like the rest of the relay: `HmacSha1` works in module-level scratch
 * space, so one computation must finish (`finishInto` / `finishEquals`) before the next `start`.
 */

/** SHA-1 processes 64-byte blocks; HMAC pads keys to one block. */
const BLOCK_BYTES = 64;
/** A SHA-1 digest and the HMAC-SHA1 tag: 20 bytes, five 32-bit words. */
export const SHA1_DIGEST_BYTES = 20;
const INITIAL_STATE = [0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476, 0xc3d2e1f0 | 0];
const IPAD = 0x36;
const OPAD = 0x5c;

/** Message schedule, reused by every compression (nothing here is re-entrant). */
const schedule = new Int32Array(80);

/** Runs the SHA-1 compression function on `state` over the 64 bytes of `bytes` from `offset`. */
function compress(state: Int32Array, bytes: Uint8Array, offset: number): void {
  const w = schedule;
  for (let i = 0; i < 16; i++) {
    const j = offset + i * 4;
    w[i] = (bytes[j]! << 24) | (bytes[j + 1]! << 16) | (bytes[j + 2]! << 8) | bytes[j + 3]!;
  }
  for (let i = 16; i < 80; i++) {
    const x = w[i - 3]! ^ w[i - 8]! ^ w[i - 14]! ^ w[i - 16]!;
    w[i] = (x << 1) | (x >>> 31);
  }
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  let e = state[4]!;
  for (let i = 0; i < 20; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (~b & d)) + e + w[i]! + 0x5a827999) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 20; i < 40; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w[i]! + 0x6ed9eba1) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 40; i < 60; i++) {
    const t = (((a << 5) | (a >>> 27)) + ((b & c) | (b & d) | (c & d)) + e + w[i]! - 0x70e44324) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  for (let i = 60; i < 80; i++) {
    const t = (((a << 5) | (a >>> 27)) + (b ^ c ^ d) + e + w[i]! - 0x359d3e2a) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
}

/** SHA-1 state after compressing one key block XORed with `pad`. */
function padState(keyBlock: Uint8Array, pad: number): Int32Array {
  const block = new Uint8Array(BLOCK_BYTES);
  for (let i = 0; i < BLOCK_BYTES; i++) block[i] = keyBlock[i]! ^ pad;
  const state = Int32Array.from(INITIAL_STATE);
  compress(state, block, 0);
  return state;
}

/**
 * A key made ready for HMAC-SHA1: the states after its inner (ipad) and outer (opad) blocks. Holds no copy of
 * the key itself beyond what `hmacSha1KeyFor`'s cache keeps to recognise it.
 */
export class HmacSha1Key {
  readonly inner: Int32Array;
  readonly outer: Int32Array;

  constructor(key: Uint8Array) {
    // RFC 2104: keys longer than a block are hashed first; shorter ones are zero-padded.
    const keyBlock = new Uint8Array(BLOCK_BYTES);
    keyBlock.set(key.length > BLOCK_BYTES ? sha1(key) : key);
    this.inner = padState(keyBlock, IPAD);
    this.outer = padState(keyBlock, OPAD);
    Object.freeze(this);
  }
}

/**
 * Incremental HMAC-SHA1 in scratch space shared by the whole module (see the file comment): `start`, any number
 * of `update`s, then `finishInto` or `finishEquals`.
 */
class HmacSha1Computation {
  private readonly state = new Int32Array(5);
  private readonly block = new Uint8Array(BLOCK_BYTES);
  private readonly digest = new Uint8Array(SHA1_DIGEST_BYTES);
  private outer: Int32Array = this.state;
  /** Bytes in `block` not yet compressed. */
  private pending = 0;
  /** Message bytes hashed since `start`, excluding the key block. */
  private length = 0;

  start(key: HmacSha1Key): this {
    this.state.set(key.inner);
    this.outer = key.outer;
    this.pending = 0;
    this.length = 0;
    return this;
  }

  /** Hashes `bytes[start, end)`. */
  update(bytes: Uint8Array, start = 0, end = bytes.length): this {
    let position = start;
    this.length += end - start;
    if (this.pending > 0) {
      const take = Math.min(BLOCK_BYTES - this.pending, end - position);
      this.block.set(bytes.subarray(position, position + take), this.pending);
      this.pending += take;
      position += take;
      if (this.pending < BLOCK_BYTES) return this;
      compress(this.state, this.block, 0);
      this.pending = 0;
    }
    // Whole blocks straight from the caller's bytes: no copy.
    while (end - position >= BLOCK_BYTES) {
      compress(this.state, bytes, position);
      position += BLOCK_BYTES;
    }
    if (position < end) {
      this.block.set(bytes.subarray(position, end), 0);
      this.pending = end - position;
    }
    return this;
  }

  /** Writes the 20-byte tag to `out` at `offset`. */
  finishInto(out: Uint8Array, offset = 0): void {
    this.finish();
    out.set(this.digest, offset);
  }

  /**
   * True if `received[offset, offset + length)` equals the first `length` bytes of the tag (1 to 20), compared
   * in time that does not depend on where they differ.
   */
  finishEquals(received: Uint8Array, offset: number, length: number): boolean {
    this.finish();
    if (length < 1 || length > SHA1_DIGEST_BYTES || offset < 0 || offset + length > received.length) return false;
    let difference = 0;
    for (let i = 0; i < length; i++) difference |= received[offset + i]! ^ this.digest[i]!;
    return difference === 0;
  }

  /** Pads the inner hash, then hashes its digest under the outer state; the tag lands in `digest`. */
  private finish(): void {
    const block = this.block;
    const bitLength = (this.length + BLOCK_BYTES) * 8;
    block[this.pending] = 0x80;
    block.fill(0, this.pending + 1);
    if (this.pending + 1 > BLOCK_BYTES - 8) {
      compress(this.state, block, 0);
      block.fill(0);
    }
    writeBitLength(block, bitLength);
    compress(this.state, block, 0);
    wordsInto(this.state, block, 0);
    // The outer hash: the key's outer block (already in `outer`), then the 20-byte inner digest, padded.
    block[SHA1_DIGEST_BYTES] = 0x80;
    block.fill(0, SHA1_DIGEST_BYTES + 1);
    writeBitLength(block, (BLOCK_BYTES + SHA1_DIGEST_BYTES) * 8);
    this.state.set(this.outer);
    compress(this.state, block, 0);
    wordsInto(this.state, this.digest, 0);
  }
}

/** SHA-1 pads with the message length in bits, big-endian, in the last 8 bytes; STUN messages stay far below 2^32 bits. */
function writeBitLength(block: Uint8Array, bits: number): void {
  const high = Math.floor(bits / 0x1_0000_0000);
  const low = bits >>> 0;
  block[56] = high >>> 24;
  block[57] = high >>> 16;
  block[58] = high >>> 8;
  block[59] = high;
  block[60] = low >>> 24;
  block[61] = low >>> 16;
  block[62] = low >>> 8;
  block[63] = low;
}

function wordsInto(state: Int32Array, out: Uint8Array, offset: number): void {
  for (let i = 0; i < 5; i++) {
    const word = state[i]!;
    out[offset + i * 4] = word >>> 24;
    out[offset + i * 4 + 1] = word >>> 16;
    out[offset + i * 4 + 2] = word >>> 8;
    out[offset + i * 4 + 3] = word;
  }
}

/** The one computation the module runs at a time (everything here is synchronous). */
export const hmacSha1 = new HmacSha1Computation();

/** Plain SHA-1 of `bytes`: only for keys longer than a block (RFC 2104), so its speed does not matter. */
export function sha1(bytes: Uint8Array): Uint8Array {
  const state = Int32Array.from(INITIAL_STATE);
  const whole = bytes.length - (bytes.length % BLOCK_BYTES);
  for (let position = 0; position < whole; position += BLOCK_BYTES) compress(state, bytes, position);
  const tail = bytes.length - whole;
  const last = new Uint8Array(tail + 1 > BLOCK_BYTES - 8 ? 2 * BLOCK_BYTES : BLOCK_BYTES);
  last.set(bytes.subarray(whole));
  last[tail] = 0x80;
  const bits = bytes.length * 8;
  const lastBlock = last.subarray(last.length - BLOCK_BYTES);
  writeBitLength(lastBlock, bits);
  compress(state, last, 0);
  if (last.length > BLOCK_BYTES) compress(state, last, BLOCK_BYTES);
  const digest = new Uint8Array(SHA1_DIGEST_BYTES);
  wordsInto(state, digest, 0);
  return digest;
}

/**
 * Prepared keys by slot (a direct-mapped cache): long-term keys are 16-byte MD5 digests, derived once per
 * username (relay/auth/long-term.ts) and then used for every request and response of that user's allocations.
 * A slot holds one key; a collision only means the pad states are computed again (two compressions).
 * 1,024 slots of roughly 150 bytes each bound the cache at about 150 KB whatever the number of users.
 */
export const HMAC_SHA1_KEY_CACHE_SLOTS = 1024;
const cachedKeys: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(HMAC_SHA1_KEY_CACHE_SLOTS).fill(undefined);
const cachedPrepared: (HmacSha1Key | undefined)[] = new Array<HmacSha1Key | undefined>(HMAC_SHA1_KEY_CACHE_SLOTS).fill(undefined);

/** `key` prepared for HMAC-SHA1, from the cache when this key was prepared before. */
export function hmacSha1KeyFor(key: Uint8Array): HmacSha1Key {
  // FNV-1a over the key's bytes picks the slot.
  let hash = 0x811c9dc5 | 0;
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key[i]!, 0x01000193);
  const slot = (hash >>> 0) % HMAC_SHA1_KEY_CACHE_SLOTS;
  const cached = cachedKeys[slot];
  if (cached !== undefined && sameBytes(cached, key)) return cachedPrepared[slot]!;
  const prepared = new HmacSha1Key(key);
  // A copy: the caller may reuse or change its buffer later.
  cachedKeys[slot] = Uint8Array.from(key);
  cachedPrepared[slot] = prepared;
  return prepared;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
