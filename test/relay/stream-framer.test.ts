/**
 * Framing TURN over TCP/TLS: whatever way the bytes are chunked, the same frames come out.
 */
import { describe, expect, it } from "vitest";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { StunClass, StunMethod } from "../../relay/stun/constants.js";
import { encodeText } from "../../relay/stun/attributes.js";
import { AttributeType } from "../../relay/stun/constants.js";
import { paddedChannelData } from "./turn-client.js";


const stun = buildStunMessage({
  method: StunMethod.Binding,
  messageClass: StunClass.Request,
  transactionId: newTransactionId(),
  attributes: [encodeText(AttributeType.Software, "framing test")],
});
const odd = paddedChannelData(0x4001, Buffer.from("hello")); // 5 bytes of data, 3 of padding
const stream = Buffer.concat([stun, odd, paddedChannelData(0x4002, Buffer.alloc(0)), stun]);

function cut(chunkSizes: (index: number) => number): Buffer[] {
  const frames: Buffer[] = [];
  const framer = new StreamFramer((frame) => frames.push(Buffer.from(frame)));
  let offset = 0;
  for (let i = 0; offset < stream.length; i++) {
    const size = Math.max(1, chunkSizes(i));
    expect(framer.push(stream.subarray(offset, offset + size))).toBe(true);
    offset += size;
  }
  return frames;
}

describe("StreamFramer", () => {
  const expected = [stun, odd.subarray(0, 4 + 5), Buffer.from([0x40, 0x02, 0, 0]), stun];

  it("cuts one chunk holding several frames, dropping ChannelData padding", () => {
    expect(cut(() => stream.length)).toEqual(expected);
  });

  it("reassembles frames split byte by byte", () => {
    expect(cut(() => 1)).toEqual(expected);
  });

  it("reassembles frames split at random points", () => {
    for (let round = 0; round < 50; round++) expect(cut(() => 1 + Math.floor(Math.random() * 40))).toEqual(expected);
  });

  it("refuses a stream that is neither STUN nor ChannelData, such as a TLS handshake on the plain port", () => {
    const framer = new StreamFramer(() => {});
    expect(framer.push(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))).toBe(false);
  });
});

/**
 * Counts the bytes every Buffer-copying primitive the framer could use moves while `run` runs:
 * Buffer.concat, Buffer.from(buffer), Buffer#copy and Uint8Array#set (which Buffer#copy and
 * subarray-free copies end in). Spies wrap the real functions, so the framer behaves as in production.
 */
function bytesCopiedDuring(run: () => void): number {
  let copied = 0;
  const concat = Buffer.concat;
  const from = Buffer.from;
  const copy = Buffer.prototype.copy;
  const set = Uint8Array.prototype.set;
  let depth = 0;
  // A primitive implemented on top of another (concat → copy → set) is counted once, at the outermost call.
  const counted = <T>(bytes: number, call: () => T): T => {
    if (depth === 0) copied += bytes;
    depth++;
    try {
      return call();
    } finally {
      depth--;
    }
  };
  Buffer.concat = function (list: readonly Uint8Array[], totalLength?: number) {
    const length = totalLength ?? list.reduce((sum, item) => sum + item.length, 0);
    return counted(length, () => concat.call(Buffer, list, totalLength));
  } as typeof Buffer.concat;
  Buffer.from = function (this: unknown, ...args: unknown[]) {
    const first = args[0];
    const length = first instanceof Uint8Array ? first.length : 0;
    return counted(length, () => (from as (...a: unknown[]) => Buffer).apply(Buffer, args));
  } as typeof Buffer.from;
  Buffer.prototype.copy = function (this: Buffer, target: Uint8Array, targetStart = 0, sourceStart = 0, sourceEnd = this.length) {
    const length = Math.max(0, Math.min(sourceEnd, this.length) - sourceStart);
    return counted(length, () => copy.call(this, target, targetStart, sourceStart, sourceEnd));
  };
  Uint8Array.prototype.set = function (this: Uint8Array, source: ArrayLike<number>, offset?: number) {
    return counted(source.length, () => set.call(this, source, offset));
  };
  try {
    run();
  } finally {
    Buffer.concat = concat;
    Buffer.from = from;
    Buffer.prototype.copy = copy;
    Uint8Array.prototype.set = set;
  }
  return copied;
}

describe("StreamFramer cost and state", () => {
  const FRAME_DATA = 60 * 1024;
  const big = paddedChannelData(0x4003, Buffer.alloc(FRAME_DATA, 0xab));

  it("copies each byte of a 60 KiB frame dribbled in 1-byte pieces at most about once (linear, not quadratic)", () => {
    const frames: Buffer[] = [];
    const framer = new StreamFramer((frame) => frames.push(frame));
    const pieces = Array.from({ length: big.length }, (_, index) => big.subarray(index, index + 1));
    const copied = bytesCopiedDuring(() => {
      for (const piece of pieces) framer.push(piece);
    });
    expect(frames).toHaveLength(1);
    expect(frames[0]!.length).toBe(4 + FRAME_DATA);
    expect(frames[0]!.equals(big.subarray(0, 4 + FRAME_DATA))).toBe(true);
    // Today's framer re-concatenated the whole pending buffer on every chunk: ~1.8 GB for this frame.
    expect(copied).toBeLessThan(2 * big.length);
  });

  it("copies nothing for whole frames that arrive inside one chunk", () => {
    const frames: Buffer[] = [];
    const framer = new StreamFramer((frame) => frames.push(frame));
    const chunk = Buffer.concat([big, big, stun]);
    const copied = bytesCopiedDuring(() => framer.push(chunk));
    expect(frames).toHaveLength(3);
    expect(copied).toBe(0);
  });

  it("copies a frame split in two halves once, and the frames still come out right", () => {
    const frames: Buffer[] = [];
    const framer = new StreamFramer((frame) => frames.push(frame));
    const joined = Buffer.concat([stun, big, stun]);
    const cutAt = stun.length + 1000;
    const copied = bytesCopiedDuring(() => {
      framer.push(joined.subarray(0, cutAt));
      framer.push(joined.subarray(cutAt));
    });
    expect(frames.map((frame) => frame.length)).toEqual([stun.length, 4 + FRAME_DATA, stun.length]);
    expect(frames[1]!.equals(big.subarray(0, 4 + FRAME_DATA))).toBe(true);
    // Only the split frame is gathered, once; the whole frames on either side are handed on as they are.
    expect(copied).toBeLessThanOrEqual(big.length);
  });

  it("says when it holds the start of a frame that has not completed (for the frame deadline)", () => {
    const framer = new StreamFramer(() => {});
    expect(framer.midFrame).toBe(false);
    framer.push(stun.subarray(0, 2));
    expect(framer.midFrame).toBe(true);
    framer.push(stun.subarray(2, 10));
    expect(framer.midFrame).toBe(true);
    const before = framer.framesCompleted;
    framer.push(stun.subarray(10));
    expect(framer.midFrame).toBe(false);
    expect(framer.framesCompleted).toBe(before + 1);
  });

  it("refuses a non-TURN first byte as soon as it arrives, even alone or after a whole frame", () => {
    expect(new StreamFramer(() => {}).push(Buffer.from([0x16]))).toBe(false);
    expect(new StreamFramer(() => {}).push(Buffer.concat([stun, Buffer.from([0x16, 0x03])]))).toBe(false);
  });
});
