/**
 * Random and mutated packets for the relay abuse tests: a seeded PRNG (so a failing run can be replayed with
 * ABUSE_SEED), random byte strings, and mutations of valid STUN messages and ChannelData frames that go after
 * the length fields a parser trusts (header length, attribute lengths, ChannelData length).
 */
import { ATTRIBUTE_HEADER_LENGTH, STUN_HEADER_LENGTH } from "../../../relay/stun/constants.js";

/** mulberry32: small, fast, good enough for fuzzing, and reproducible from one 32-bit seed. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** A 32-bit unsigned integer. */
  u32(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    let i = 0;
    for (; i + 4 <= length; i += 4) out.writeUInt32LE(this.u32(), i);
    for (; i < length; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

/** A seed from ABUSE_SEED, or a fresh one (reported by the tests so a failure can be replayed). */
export function seedFromEnv(): number {
  const given = process.env.ABUSE_SEED;
  if (given !== undefined && /^\d+$/.test(given)) return Number(given) >>> 0;
  return (Math.random() * 0x1_0000_0000) >>> 0;
}

/** Offsets of each attribute header (type, length) in a well-formed STUN message. */
export function attributeHeaderOffsets(message: Buffer): number[] {
  const offsets: number[] = [];
  let position = STUN_HEADER_LENGTH;
  while (position + ATTRIBUTE_HEADER_LENGTH <= message.length) {
    offsets.push(position);
    const length = message.readUInt16BE(position + 2);
    position += ATTRIBUTE_HEADER_LENGTH + ((length + 3) & ~3);
  }
  return offsets;
}

/** Lengths a parser is most likely to get wrong: zero, off by one, odd, at and past the 16-bit edge. */
function nastyLength(rng: Rng, actual: number): number {
  return rng.pick([0, 1, 3, actual - 1, actual + 1, actual + 4, actual * 2, 0x7fff, 0xfffc, 0xfffd, 0xffff, rng.int(0x10000)]) & 0xffff;
}

export type MutationName =
  | "flip"
  | "truncate"
  | "extend"
  | "header-length"
  | "attribute-length"
  | "attribute-type"
  | "channel-length"
  | "first-byte"
  | "concatenate"
  | "random-body";

/**
 * One mutation of `original` (a STUN message or ChannelData frame); `other` is a second valid packet to splice.
 * `allowFlip`: false for packets whose payload bytes must not change (a Send indication from a client holding a
 * permission, where a flipped XOR-PEER-ADDRESS port would send to an arbitrary loopback port).
 */
export function mutate(rng: Rng, original: Buffer, other: Buffer, allowFlip = true): { name: MutationName; bytes: Buffer } {
  const bytes = Buffer.from(original);
  const isStun = bytes.length >= STUN_HEADER_LENGTH && bytes[0]! <= 0x03;
  const names: MutationName[] = ["truncate", "extend", "header-length", "first-byte", "concatenate", "random-body"];
  if (allowFlip) names.push("flip");
  if (isStun) names.push("attribute-length", "attribute-length", "attribute-type");
  else names.push("channel-length", "channel-length");
  const name = rng.pick(names);
  switch (name) {
    case "flip": {
      const flips = rng.between(1, 8);
      for (let i = 0; i < flips && bytes.length > 0; i++) {
        const at = rng.int(bytes.length);
        bytes[at] = bytes[at]! ^ (1 << rng.int(8));
      }
      return { name, bytes };
    }
    case "truncate":
      return { name, bytes: bytes.subarray(0, rng.int(bytes.length)) };
    case "extend":
      return { name, bytes: Buffer.concat([bytes, rng.bytes(rng.between(1, 200))]) };
    case "header-length":
      if (bytes.length >= 4) bytes.writeUInt16BE(nastyLength(rng, bytes.length - (isStun ? STUN_HEADER_LENGTH : 4)), 2);
      return { name, bytes };
    case "attribute-length":
    case "attribute-type": {
      const offsets = attributeHeaderOffsets(bytes);
      if (offsets.length > 0) {
        const at = rng.pick(offsets);
        if (name === "attribute-length") bytes.writeUInt16BE(nastyLength(rng, bytes.readUInt16BE(at + 2)), at + 2);
        else bytes.writeUInt16BE(rng.chance(0.5) ? rng.int(0x8000) : rng.int(0x10000), at);
        // Sometimes keep the header length consistent with the datagram, so the decoder walks the attributes.
        if (rng.chance(0.5)) bytes.writeUInt16BE((bytes.length - STUN_HEADER_LENGTH) & 0xffff, 2);
      }
      return { name, bytes };
    }
    case "channel-length":
      if (bytes.length >= 4) bytes.writeUInt16BE(nastyLength(rng, bytes.length - 4), 2);
      return { name, bytes };
    case "first-byte":
      if (bytes.length > 0) bytes[0] = rng.chance(0.5) ? rng.int(4) : rng.between(0x40, 0x7f);
      return { name, bytes };
    case "concatenate":
      return { name, bytes: Buffer.concat([bytes, other]) };
    case "random-body": {
      // A valid-looking STUN header (cookie and all) in front of random attributes whose length matches.
      const head = Buffer.from(bytes.subarray(0, Math.min(STUN_HEADER_LENGTH, bytes.length)));
      const body = rng.bytes(rng.int(64) * 4);
      if (head.length >= 4) head.writeUInt16BE(body.length, 2);
      return { name, bytes: Buffer.concat([head, body]) };
    }
  }
}

/** A random datagram of 0..`max` bytes, sometimes with a first byte that passes the STUN/ChannelData demultiplexer. */
export function randomDatagram(rng: Rng, max = 1500): Buffer {
  const bytes = rng.bytes(rng.int(max + 1));
  if (bytes.length > 0 && rng.chance(0.5)) bytes[0] = rng.chance(0.5) ? rng.int(4) : rng.between(0x40, 0x7f);
  return bytes;
}
