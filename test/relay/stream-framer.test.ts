/**
 * Framing TURN over TCP/TLS: whatever way the bytes are chunked, the same frames come out.
 */
import { describe, expect, it } from "vitest";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { StunClass, StunMethod } from "../../relay/stun/constants.js";
import { encodeText } from "../../relay/stun/attributes.js";
import { AttributeType } from "../../relay/stun/constants.js";

function channelData(channel: number, data: Buffer): Buffer {
  const padded = Buffer.alloc(4 + ((data.length + 3) & ~3));
  padded.writeUInt16BE(channel, 0);
  padded.writeUInt16BE(data.length, 2);
  data.copy(padded, 4);
  return padded;
}

const stun = buildStunMessage({
  method: StunMethod.Binding,
  messageClass: StunClass.Request,
  transactionId: newTransactionId(),
  attributes: [encodeText(AttributeType.Software, "framing test")],
});
const odd = channelData(0x4001, Buffer.from("hello")); // 5 bytes of data, 3 of padding
const stream = Buffer.concat([stun, odd, channelData(0x4002, Buffer.alloc(0)), stun]);

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
