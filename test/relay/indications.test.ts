/**
 * The data path's own Send/Data indication reader and writer agree with the full codec.
 */
import { describe, expect, it } from "vitest";
import { dataView, encodeData, encodeXorAddress, readXorAddress } from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { decodeStunMessage, findAttribute } from "../../relay/stun/message.js";
import { encodeDataIndication, readSendIndication, type SendIndication } from "../../relay/turn/indications.js";
import { sendIndication } from "./turn-client.js";

const peers = [
  { family: 4 as const, address: "192.0.2.1", port: 32853 },
  { family: 6 as const, address: "2001:db8:1234:5678:11:2233:4455:6677", port: 1 },
  { family: 6 as const, address: "::1", port: 65535 },
];

describe("encodeDataIndication", () => {
  it.each(peers)("writes what the full decoder reads back: %o", (peer) => {
    for (let length = 0; length <= 9; length++) {
      const payload = Buffer.alloc(length, 0xab);
      const message = encodeDataIndication(peer.address, peer.port, payload)!;
      const decoded = decodeStunMessage(message);
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) return;
      expect(decoded.message.method).toBe(StunMethod.Data);
      expect(decoded.message.messageClass).toBe(StunClass.Indication);
      const address = readXorAddress(decoded.message, findAttribute(decoded.message, AttributeType.XorPeerAddress)!);
      expect(address.ok && address.value).toEqual(peer);
      expect(dataView(decoded.message, findAttribute(decoded.message, AttributeType.Data)!).equals(payload)).toBe(true);
      // Padding goes out as zeros, never as leftover memory.
      expect(message.subarray(message.length - ((4 - (length % 4)) % 4)).every((byte) => byte === 0)).toBe(true);
    }
  });

  it("draws a fresh transaction id each time", () => {
    const ids = new Set<string>();
    for (let i = 0; i < 3000; i++) ids.add(encodeDataIndication("192.0.2.1", 9, Buffer.alloc(1))!.subarray(8, 20).toString("hex"));
    expect(ids.size).toBe(3000);
  });

  it("refuses text that is no IP address", () => {
    expect(encodeDataIndication("not-an-address", 1, Buffer.alloc(1))).toBeNull();
  });
});

describe("readSendIndication", () => {
  const out: SendIndication = { peerAddress: "", peerPort: 0, dataOffset: 0, dataLength: 0 };

  it.each(peers)("reads peer and payload as the full decoder does: %o", (peer) => {
    const payload = Buffer.from("hello, peer");
    const datagram = sendIndication(peer, payload);
    expect(readSendIndication(datagram, out)).toBe(true);
    expect({ address: out.peerAddress, port: out.peerPort }).toEqual({ address: peer.address, port: peer.port });
    expect(datagram.subarray(out.dataOffset, out.dataOffset + out.dataLength).equals(payload)).toBe(true);
  });

  it("refuses what is not a well-formed Send indication", () => {
    const good = sendIndication(peers[0]!, Buffer.from("x"));
    const noData = (() => {
      const id = newTransactionId();
      return buildStunMessage({ method: StunMethod.Send, messageClass: StunClass.Indication, transactionId: id, attributes: [encodeXorAddress(AttributeType.XorPeerAddress, peers[0]!, id)] });
    })();
    const unknownRequired = (() => {
      const id = newTransactionId();
      return buildStunMessage({
        method: StunMethod.Send,
        messageClass: StunClass.Indication,
        transactionId: id,
        attributes: [encodeXorAddress(AttributeType.XorPeerAddress, peers[0]!, id), encodeData(Buffer.from("x")), { type: 0x7777, value: Buffer.alloc(4) }],
      });
    })();
    const badCookie = Buffer.from(good);
    badCookie[4] = badCookie[4]! ^ 1;
    const truncated = good.subarray(0, good.length - 4);
    for (const datagram of [noData, unknownRequired, badCookie, truncated, Buffer.alloc(0), Buffer.alloc(20)]) {
      expect(readSendIndication(datagram, out)).toBe(false);
    }
  });

  it("never throws, and agrees with the full decoder, on 100,000 mutated datagrams", () => {
    const base = sendIndication(peers[1]!, Buffer.from("mutate me, please"));
    for (let i = 0; i < 100_000; i++) {
      const datagram = Buffer.from(base);
      for (let flips = 1 + (i % 3); flips > 0; flips--) datagram[Math.floor(Math.random() * datagram.length)] = Math.floor(Math.random() * 256);
      const fast = readSendIndication(datagram, out);
      if (!fast) continue;
      const decoded = decodeStunMessage(datagram);
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) continue;
      const data = findAttribute(decoded.message, AttributeType.Data)!;
      expect([out.dataOffset, out.dataLength]).toEqual([data.offset, data.length]);
    }
  });
});
