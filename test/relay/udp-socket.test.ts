/**
 * The relay's UDP sockets: destinations that are IP literals skip dns.lookup (answered at once),
 * names still resolve, and the buffers asked for are what the kernel grants up to its cap.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Socket } from "node:dgram";
import { createRelayUdpSocket, ipLiteralLookup, LISTENER_BUFFER_BYTES, RELAY_SOCKET_BUFFER_BYTES } from "../../relay/transport/udp-socket.js";

describe("ipLiteralLookup", () => {
  it("answers IP literals synchronously, with their family", () => {
    const answers: [string, number][] = [];
    ipLiteralLookup("192.0.2.7", 4, (error, address, family) => {
      expect(error).toBeNull();
      answers.push([address, family]);
    });
    ipLiteralLookup("2001:db8::1", 6, (_error, address, family) => answers.push([address, family]));
    // Both callbacks already ran: no tick in between.
    expect(answers).toEqual([["192.0.2.7", 4], ["2001:db8::1", 6]]);
  });

  it("hands names to dns.lookup", async () => {
    const answer = await new Promise<[string, number]>((resolve, reject) =>
      ipLiteralLookup("localhost", 4, (error, address, family) => (error ? reject(error) : resolve([address, family]))),
    );
    expect(answer).toEqual(["127.0.0.1", 4]);
  });
});

describe("createRelayUdpSocket", () => {
  const sockets: Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.close();
  });

  /** Linux doubles SO_RCVBUF/SO_SNDBUF requests for bookkeeping, capped at twice the sysctl maximum. */
  const granted = (requested: number, sysctl: string) => 2 * Math.min(requested, Number(readFileSync(`/proc/sys/net/core/${sysctl}`, "utf8")));

  for (const [name, bytes] of [["a listener", LISTENER_BUFFER_BYTES], ["a relay socket", RELAY_SOCKET_BUFFER_BYTES]] as const) {
    it(`gives ${name} the buffers it asks for, up to the kernel's cap, and sends to a literal`, async () => {
      const socket = createRelayUdpSocket(4, bytes);
      sockets.push(socket);
      const receiver = createRelayUdpSocket(4, bytes);
      sockets.push(receiver);
      await new Promise<void>((resolve) => receiver.bind(0, "127.0.0.1", resolve));
      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
      expect(socket.getRecvBufferSize()).toBe(granted(bytes, "rmem_max"));
      expect(socket.getSendBufferSize()).toBe(granted(bytes, "wmem_max"));
      const received = new Promise<string>((resolve) => receiver.once("message", (data) => resolve(data.toString())));
      socket.send("hello", receiver.address().port, "127.0.0.1");
      expect(await received).toBe("hello");
    });
  }
});
