/**
 * The relay's UDP sockets (relay/transport/udp-socket.ts), both implementations: the native batched
 * addon and Node's dgram behave the same to the relay (what arrives, what goes out, bind errors,
 * closing), the native one queues behind a full send buffer, and dgram destinations that are IP
 * literals skip dns.lookup.
 */
import { spawn, spawnSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { loadNativeUdp, openNativeUdpSocket } from "../../relay/transport/native-udp.js";
import {
  createDgramSocket,
  ipLiteralLookup,
  LISTENER_BUFFER_BYTES,
  openRelayUdpSocket,
  RELAY_SOCKET_BUFFER_BYTES,
  resolveUdpIo,
  udpSendTotals,
  type RelayUdpSocket,
} from "../../relay/transport/udp-socket.js";
import { netnsSuiteUnavailable, runInNetns } from "../node/netns.js";

const ARRIVE_MS = 2_000;

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  return condition();
}

describe("which UDP implementation the relay takes", () => {
  it("loads the native addon here (npm run build:native; the test prerequisites build it)", () => {
    const native = loadNativeUdp();
    expect(native.ok ? "loaded" : native.reason).toBe("loaded");
    expect(resolveUdpIo("auto")).toBe("native");
    expect(resolveUdpIo("native")).toBe("native");
    expect(resolveUdpIo("dgram")).toBe("dgram");
  });
});

interface Peer {
  socket: Socket;
  port: number;
  received: { data: Buffer; address: string; port: number }[];
}

for (const io of ["native", "dgram"] as const) {
  describe(`a relay UDP socket on ${io}`, () => {
    const opened: RelayUdpSocket[] = [];
    const peers: Socket[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((socket) => new Promise<void>((resolve) => socket.close(resolve))));
      for (const peer of peers.splice(0)) peer.close();
    });

    async function open(family: 4 | 6 = 4, ip = family === 4 ? "127.0.0.1" : "::1", port = 0): Promise<RelayUdpSocket> {
      const socket = await openRelayUdpSocket(io, family, ip, port, RELAY_SOCKET_BUFFER_BYTES);
      opened.push(socket);
      return socket;
    }

    async function peer(family: 4 | 6 = 4): Promise<Peer> {
      const socket = family === 4 ? createSocket("udp4") : createSocket({ type: "udp6", ipv6Only: true });
      peers.push(socket);
      const received: Peer["received"] = [];
      socket.on("message", (data, from) => received.push({ data, address: from.address, port: from.port }));
      await new Promise<void>((resolve) => socket.bind(0, family === 4 ? "127.0.0.1" : "::1", resolve));
      return { socket, port: socket.address().port, received };
    }

    /** What the socket hands over, copied out of the (possibly reused) receive area. */
    function record(socket: RelayUdpSocket): { data: Buffer; address: string; port: number }[] {
      const received: { data: Buffer; address: string; port: number }[] = [];
      socket.onDatagram = (data, offset, length, address, port) => received.push({ data: Buffer.from(data.subarray(offset, offset + length)), address, port });
      return received;
    }

    it("reports its implementation and the address it is bound to", async () => {
      const socket = await open();
      expect(socket.io).toBe(io);
      expect(socket.address().address).toBe("127.0.0.1");
      expect(socket.address().port).toBeGreaterThan(0);
    });

    it("hands over each datagram with its sender, empty ones too, and sends a slice back", async () => {
      const socket = await open();
      const received = record(socket);
      const far = await peer();
      far.socket.send(Buffer.from("first"), socket.address().port, "127.0.0.1");
      far.socket.send(Buffer.alloc(0), socket.address().port, "127.0.0.1");
      expect(await waitUntil(() => received.length === 2, ARRIVE_MS)).toBe(true);
      expect(received).toEqual([
        { data: Buffer.from("first"), address: "127.0.0.1", port: far.port },
        { data: Buffer.alloc(0), address: "127.0.0.1", port: far.port },
      ]);
      socket.send(Buffer.from("..slice.."), 2, 5, far.port, "127.0.0.1");
      expect(await waitUntil(() => far.received.length === 1, ARRIVE_MS)).toBe(true);
      expect(far.received[0]).toEqual({ data: Buffer.from("slice"), address: "127.0.0.1", port: socket.address().port });
    });

    it("hands each socket's datagrams to that socket's handler only, however many are open", async () => {
      // The native sockets share one handler in the addon, which tells them apart by receiver.
      const sockets = await Promise.all([open(), open(), open()]);
      const received = sockets.map(record);
      const far = await peer();
      sockets.forEach((socket, index) => far.socket.send(Buffer.from(`to ${index}`), socket.address().port, "127.0.0.1"));
      expect(await waitUntil(() => received.every((list) => list.length === 1), ARRIVE_MS)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(received.map((list) => list.map((datagram) => datagram.data.toString()))).toEqual([["to 0"], ["to 1"], ["to 2"]]);
    });

    it("hands every socket its own datagrams, whole and in order, when many sockets' datagrams are read together (more than one batch of 64)", async () => {
      // The native path gathers what every ready socket holds into one receive area and hands it to
      // JavaScript in batches: a slot must reach the socket it was read from, with its own sender.
      const sockets = await Promise.all([open(), open(), open(), open()]);
      const received = sockets.map(record);
      const senders = await Promise.all([peer(), peer()]);
      const perSocket = 40;
      for (let i = 0; i < perSocket; i++) {
        sockets.forEach((socket, index) => senders[(i + index) % 2]!.socket.send(Buffer.from(`${index}:${i}`), socket.address().port, "127.0.0.1"));
      }
      expect(await waitUntil(() => received.every((list) => list.length === perSocket), ARRIVE_MS)).toBe(true);
      received.forEach((list, index) => {
        expect(list.map((datagram) => datagram.data.toString())).toEqual([...Array(perSocket).keys()].map((i) => `${index}:${i}`));
        expect(list.map((datagram) => datagram.port)).toEqual([...Array(perSocket).keys()].map((i) => senders[(i + index) % 2]!.port));
      });
    });

    it("names a sender by its address text whatever its octets (high bits set, zeros inside)", async () => {
      const socket = await open();
      const received = record(socket);
      const addresses = ["127.254.128.9", "127.0.0.255", "127.128.0.1"];
      for (const address of addresses) {
        const sender = createSocket("udp4");
        peers.push(sender);
        await new Promise<void>((resolve) => sender.bind(0, address, resolve));
        sender.send(Buffer.from(address), socket.address().port, "127.0.0.1");
        expect(await waitUntil(() => received.length === addresses.indexOf(address) + 1, ARRIVE_MS)).toBe(true);
      }
      expect(received.map(({ data, address }) => [data.toString(), address])).toEqual(addresses.map((address) => [address, address]));
    });

    it("puts the ChannelData header (channel, length) in front of the slice it sends", async () => {
      const socket = await open();
      const far = await peer();
      socket.sendChannelData(0x4001, Buffer.from("xxpayload"), 2, 7, far.port, "127.0.0.1");
      expect(await waitUntil(() => far.received.length === 1, ARRIVE_MS)).toBe(true);
      expect(far.received[0]!.data).toEqual(Buffer.concat([Buffer.from([0x40, 0x01, 0x00, 0x07]), Buffer.from("payload")]));
    });

    it("works on IPv6, with the sender's address as text", async () => {
      const socket = await open(6);
      const received = record(socket);
      const far = await peer(6);
      far.socket.send(Buffer.from("v6"), socket.address().port, "::1");
      expect(await waitUntil(() => received.length === 1, ARRIVE_MS)).toBe(true);
      expect(received[0]).toEqual({ data: Buffer.from("v6"), address: "::1", port: far.port });
      socket.send(Buffer.from("back"), 0, 4, far.port, "::1");
      expect(await waitUntil(() => far.received.length === 1, ARRIVE_MS)).toBe(true);
    });

    it("names each datagram's own sender when senders change, within a batch and from one batch to the next", async () => {
      const socket = await open();
      const received = record(socket);
      const near = await peer();
      // A second sender on another loopback address: the native socket remembers the last sender's text.
      const other = createSocket("udp4");
      peers.push(other);
      await new Promise<void>((resolve) => other.bind(0, "127.0.0.2", resolve));
      const otherPort = other.address().port;
      const port = socket.address().port;
      // One batch with the senders interleaved, then single datagrams (a batch each) alternating.
      for (let i = 0; i < 6; i++) (i % 2 === 0 ? near.socket : other).send(Buffer.from([i]), port, "127.0.0.1");
      expect(await waitUntil(() => received.length === 6, ARRIVE_MS)).toBe(true);
      for (let i = 6; i < 10; i++) {
        (i % 2 === 0 ? near.socket : other).send(Buffer.from([i]), port, "127.0.0.1");
        expect(await waitUntil(() => received.length === i + 1, ARRIVE_MS)).toBe(true);
      }
      expect(received.map(({ data, address, port: from }) => [data[0], address, from])).toEqual(
        [...Array(10).keys()].map((i) => (i % 2 === 0 ? [i, "127.0.0.1", near.port] : [i, "127.0.0.2", otherPort])),
      );
    });

    it("delivers a burst larger than one batch, every datagram, in order", async () => {
      const socket = await open();
      const sequence: number[] = [];
      socket.onDatagram = (data, offset) => sequence.push(data.readUInt32BE(offset));
      const far = await peer();
      const burst = 1_000; // several recvmmsg batches (64) and several readiness events (4 batches each)
      for (let i = 0; i < burst; i++) {
        const datagram = Buffer.alloc(100);
        datagram.writeUInt32BE(i, 0);
        far.socket.send(datagram, socket.address().port, "127.0.0.1");
      }
      expect(await waitUntil(() => sequence.length === burst, 5_000), `${sequence.length} of ${burst} arrived`).toBe(true);
      expect(sequence).toEqual([...Array(burst).keys()]);
    });

    // The native socket holds sends made while it delivers datagrams and sends them together at the
    // end of the event-loop turn (udp-batch.c); to the relay that must look like a send at once.
    describe("sends made while a datagram is handled", () => {
      /** Calls `reply` once, for the first datagram the socket receives (from a fresh peer). */
      async function onFirstDatagram(socket: RelayUdpSocket, reply: () => void): Promise<void> {
        let replied = false;
        socket.onDatagram = () => {
          if (replied) return;
          replied = true;
          reply();
        };
        const trigger = await peer();
        trigger.socket.send(Buffer.from("go"), socket.address().port, "127.0.0.1");
      }

      function numbered(index: number, size: number): Buffer {
        const datagram = Buffer.alloc(size);
        datagram.writeUInt32BE(index, 0);
        return datagram;
      }

      it("all arrive, each destination's in order, even more of them than the native path holds in one turn (1,024)", async () => {
        const socket = await open();
        // Eleven destinations, so no peer's receive buffer (the kernel default) overflows.
        const far = await Promise.all(Array.from({ length: 11 }, () => peer()));
        const count = 1_100;
        await onFirstDatagram(socket, () => {
          for (let i = 0; i < count; i++) socket.send(numbered(i, 16), 0, 16, far[i % far.length]!.port, "127.0.0.1");
        });
        const total = () => far.reduce((sum, one) => sum + one.received.length, 0);
        expect(await waitUntil(() => total() === count, 5_000), `${total()} of ${count} arrived`).toBe(true);
        far.forEach((one, which) => {
          const expected = [...Array(count).keys()].filter((i) => i % far.length === which);
          expect(one.received.map((datagram) => datagram.data.readUInt32BE(0))).toEqual(expected);
        });
      });

      it("all arrive, more bytes of them than the native path holds in one turn (256 KiB)", async () => {
        const socket = await open();
        const far = await Promise.all(Array.from({ length: 6 }, () => peer()));
        const size = 50_000;
        await onFirstDatagram(socket, () => far.forEach((one, i) => socket.sendChannelData(0x4000 + i, numbered(i, size), 0, size, one.port, "127.0.0.1")));
        expect(await waitUntil(() => far.every((one) => one.received.length === 1), 5_000)).toBe(true);
        far.forEach((one, i) => {
          const datagram = one.received[0]!.data;
          expect([datagram.length, datagram.readUInt16BE(0), datagram.readUInt16BE(2), datagram.readUInt32BE(4)]).toEqual([size + 4, 0x4000 + i, size, i]);
        });
      });

      /** A datagram of `size` bytes that says which it is: its index, then its index's low byte throughout. */
      function marked(index: number, size: number): Buffer {
        const datagram = Buffer.alloc(size, index & 0xff);
        if (size >= 4) datagram.writeUInt32BE(index, 0);
        return datagram;
      }

      // The native path sends a run of three or more datagrams to one destination, all of one size (the
      // last may be shorter), as one segmented send (UDP_SEGMENT): at most 64 of them, of at most 1,452
      // bytes each, at most 65,000 bytes together. The receivers must not be able to tell.
      it("arrive one by one, whole and in order, when runs of them go to one destination", async () => {
        const socket = await open();
        const [a, b, c, d] = await Promise.all([peer(), peer(), peer(), peer()]);
        const plan: [Peer, number][] = [
          ...Array.from({ length: 70 }, () => [a, 100] as [Peer, number]), // over 64: two segmented sends
          [a, 40], // shorter: ends the second run, in it
          ...Array.from({ length: 3 }, () => [a, 200] as [Peer, number]), // larger: a run of its own
          ...Array.from({ length: 5 }, () => [b, 1_452] as [Peer, number]), // the largest segment
          ...Array.from({ length: 3 }, () => [b, 1_453] as [Peer, number]), // over it: one by one
          ...Array.from({ length: 48 }, () => [c, 1_400] as [Peer, number]), // over 65,000 bytes: 46, then 2 alone
          ...Array.from({ length: 8 }, (_, i) => [i % 2 === 0 ? d : c, 100] as [Peer, number]), // alternating: no runs
          [d, 0], // empty datagrams go alone
          [d, 0],
          [d, 100], // two: alone too
          [d, 100],
          [d, 0],
        ];
        c.socket.setRecvBufferSize(4 * 1024 * 1024); // 67 KB of datagrams at once (the kernel caps it at rmem_max)
        const before = udpSendTotals().segmented;
        await onFirstDatagram(socket, () => plan.forEach(([to, size], index) => socket.send(marked(index, size), 0, size, to.port, "127.0.0.1")));
        const arrived = () => a.received.length + b.received.length + c.received.length + d.received.length;
        expect(await waitUntil(() => arrived() === plan.length, 5_000), `${arrived()} of ${plan.length} arrived`).toBe(true);
        for (const [name, receiver] of Object.entries({ a, b, c, d })) {
          const expected = plan.flatMap(([to, size], index) => (to === receiver ? [marked(index, size).toString("hex")] : []));
          expect(receiver.received.map((datagram) => datagram.data.toString("hex")), `what ${name} received`).toEqual(expected);
        }
        // 64 + 7 to a, then 3; 5 to b; 46 to c. Node's dgram sends each datagram alone.
        expect(udpSendTotals().segmented - before).toBe(io === "native" ? 64 + 7 + 3 + 5 + 46 : 0);
      });

      it("arrive one by one over IPv6 too, when a run of them goes to one destination", async () => {
        const socket = await open(6);
        const far = await peer(6);
        const before = udpSendTotals().segmented;
        let replied = false;
        socket.onDatagram = () => {
          if (replied) return;
          replied = true;
          for (let index = 0; index < 10; index++) socket.send(marked(index, 120), 0, 120, far.port, "::1");
        };
        const trigger = await peer(6);
        trigger.socket.send(Buffer.from("go"), socket.address().port, "::1");
        expect(await waitUntil(() => far.received.length === 10, ARRIVE_MS)).toBe(true);
        expect(far.received.map((datagram) => datagram.data.toString("hex"))).toEqual(Array.from({ length: 10 }, (_, index) => marked(index, 120).toString("hex")));
        expect(udpSendTotals().segmented - before).toBe(io === "native" ? 10 : 0);
      });

      it("keep their order with a send from the next phase of the loop, and go out before a close they precede", async () => {
        const socket = await open();
        const far = await peer();
        const closed = new Promise<void>((resolve) =>
          void onFirstDatagram(socket, () => {
            socket.send(Buffer.from("first"), 0, 5, far.port, "127.0.0.1");
            setImmediate(() => {
              socket.send(Buffer.from("second"), 0, 6, far.port, "127.0.0.1");
              socket.send(Buffer.from("last"), 0, 4, far.port, "127.0.0.1");
              socket.close(resolve);
            });
          }),
        );
        await closed;
        expect(await waitUntil(() => far.received.length === 3, ARRIVE_MS)).toBe(true);
        expect(far.received.map((datagram) => datagram.data.toString())).toEqual(["first", "second", "last"]);
      });

      it("go out when the socket is closed in the same handler", async () => {
        const socket = await open();
        const far = await peer();
        await onFirstDatagram(socket, () => {
          socket.send(Buffer.from("bye"), 0, 3, far.port, "127.0.0.1");
          socket.close();
        });
        expect(await waitUntil(() => far.received.length === 1, ARRIVE_MS)).toBe(true);
        expect(far.received[0]!.data.toString()).toBe("bye");
      });
    });

    it("lets a handler close its own socket and another one mid-delivery: nothing reaches a closed socket, the others still get theirs, each close calls back once", async () => {
      const [first, second, third] = await Promise.all([open(), open(), open()]);
      const far = await peer();
      let secondClosed = false;
      const afterClose: string[] = [];
      const closes: string[] = [];
      let firstCalls = 0;
      first!.onDatagram = () => {
        firstCalls++;
        if (firstCalls > 1) afterClose.push("first");
        if (firstCalls === 1) {
          first!.close(() => closes.push("first"));
          second!.close(() => closes.push("second"));
          secondClosed = true;
        }
      };
      second!.onDatagram = () => {
        if (secondClosed) afterClose.push("second");
      };
      const thirdReceived = record(third!);
      // Sent together, so the three sockets are likely ready in the same turn of the loop.
      for (let index = 0; index < 5; index++) far.socket.send(Buffer.from(`a${index}`), first!.address().port, "127.0.0.1");
      for (let index = 0; index < 5; index++) far.socket.send(Buffer.from(`b${index}`), second!.address().port, "127.0.0.1");
      for (let index = 0; index < 5; index++) far.socket.send(Buffer.from(`c${index}`), third!.address().port, "127.0.0.1");
      expect(await waitUntil(() => thirdReceived.length === 5 && closes.length === 2, ARRIVE_MS)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(firstCalls).toBe(1);
      expect(afterClose).toEqual([]);
      expect(closes.sort()).toEqual(["first", "second"]);
      expect(thirdReceived.map((datagram) => datagram.data.toString())).toEqual(["c0", "c1", "c2", "c3", "c4"]);
    });

    it("keeps the process alive while a socket is open, and lets it end once the socket is closed", async () => {
      const script = `
        import { openRelayUdpSocket } from "./relay/transport/udp-socket.ts";
        const socket = await openRelayUdpSocket(${JSON.stringify(io)}, 4, "127.0.0.1", 0, 65536);
        socket.onDatagram = () => socket.close(() => console.log("closed"));
        console.log("ready " + socket.address().port);`;
      const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      try {
        expect(await waitUntil(() => /ready \d+/.test(stdout), 15_000), stdout).toBe(true);
        const port = Number(/ready (\d+)/.exec(stdout)![1]);
        // Nothing but the socket is left to keep it running.
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(child.exitCode).toBeNull();
        const far = await peer();
        far.socket.send(Buffer.from("close"), port, "127.0.0.1");
        const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve("still running"), 5_000))]);
        expect(code).toBe(0);
        expect(stdout).toContain("closed");
      } finally {
        if (child.exitCode === null) child.kill("SIGKILL");
      }
    }, 30_000);

    it("drops datagrams until a handler is set, and after close", async () => {
      const socket = await openRelayUdpSocket(io, 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
      const far = await peer();
      far.socket.send(Buffer.from("early"), socket.address().port, "127.0.0.1");
      await new Promise((resolve) => setTimeout(resolve, 50));
      const received = record(socket);
      far.socket.send(Buffer.from("late"), socket.address().port, "127.0.0.1");
      expect(await waitUntil(() => received.length === 1, ARRIVE_MS)).toBe(true);
      expect(received[0]!.data.toString()).toBe("late");
      await new Promise<void>((resolve) => socket.close(resolve));
      // Closed: sending is a no-op, not a throw; a second close still calls back.
      socket.send(Buffer.from("x"), 0, 1, far.port, "127.0.0.1");
      await new Promise<void>((resolve) => socket.close(resolve));
      expect(received).toHaveLength(1);
    });

    it("rejects a bind to a taken port with EADDRINUSE, and frees its port by the time close calls back", async () => {
      const socket = await openRelayUdpSocket(io, 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
      const port = socket.address().port;
      await expect(openRelayUdpSocket(io, 4, "127.0.0.1", port, RELAY_SOCKET_BUFFER_BYTES)).rejects.toMatchObject({ code: "EADDRINUSE" });
      await new Promise<void>((resolve) => socket.close(resolve));
      const again = await open(4, "127.0.0.1", port);
      expect(again.address().port).toBe(port);
    });

    it("drops a send to an address of the wrong family or a bad one, without throwing", async () => {
      const socket = await open();
      const received = record(socket);
      const far = await peer();
      socket.send(Buffer.from("x"), 0, 1, far.port, "::1");
      socket.send(Buffer.from("x"), 0, 1, far.port, "999.1.1.1");
      socket.send(Buffer.from("ok"), 0, 2, far.port, "127.0.0.1");
      expect(await waitUntil(() => far.received.length === 1, ARRIVE_MS)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(far.received.map((datagram) => datagram.data.toString())).toEqual(["ok"]);
      expect(received).toEqual([]);
    });

    it("never throws from send or sendChannelData: port 0, a port out of range, a slice past the buffer, after close", async () => {
      const socket = await open();
      const far = await peer();
      const data = Buffer.from("payload");
      const bad: [string, () => void][] = [
        ["send to port 0", () => socket.send(data, 0, data.length, 0, "127.0.0.1")],
        ["sendChannelData to port 0", () => socket.sendChannelData(0x4000, data, 0, data.length, 0, "127.0.0.1")],
        ["send to port 65536", () => socket.send(data, 0, data.length, 65_536, "127.0.0.1")],
        ["send to port -1", () => socket.send(data, 0, data.length, -1, "127.0.0.1")],
        ["send of a slice past the buffer", () => socket.send(data, 4, 10, far.port, "127.0.0.1")],
        ["sendChannelData of a slice past the buffer", () => socket.sendChannelData(0x4000, data, 4, 10, far.port, "127.0.0.1")],
      ];
      for (const [what, call] of bad) expect(call, what).not.toThrow();
      socket.send(Buffer.from("ok"), 0, 2, far.port, "127.0.0.1");
      expect(await waitUntil(() => far.received.length === 1, ARRIVE_MS)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(far.received.map((datagram) => datagram.data.toString())).toEqual(["ok"]);
      await new Promise<void>((resolve) => socket.close(resolve));
      expect(() => socket.send(data, 0, data.length, 0, "127.0.0.1"), "send after close").not.toThrow();
      expect(() => socket.sendChannelData(0x4000, data, 0, data.length, far.port, "127.0.0.1"), "sendChannelData after close").not.toThrow();
    });
  });
}

describe("native sockets sharing a port (SO_REUSEPORT), as relay workers will", () => {
  const opened: RelayUdpSocket[] = [];
  const senders: Socket[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((socket) => new Promise<void>((resolve) => socket.close(resolve))));
    for (const sender of senders.splice(0)) sender.close();
  });

  it("bind the same port only when every one asks for it, and keep each source on one of them", async () => {
    const first = openNativeUdpSocket(4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES, true);
    opened.push(first);
    const port = first.address().port;
    const second = openNativeUdpSocket(4, "127.0.0.1", port, RELAY_SOCKET_BUFFER_BYTES, true);
    opened.push(second);
    expect(() => openNativeUdpSocket(4, "127.0.0.1", port, RELAY_SOCKET_BUFFER_BYTES)).toThrow(expect.objectContaining({ code: "EADDRINUSE" }));

    // Which member got each source's datagrams (sources by port).
    const seenBy = new Map<number, Set<string>>();
    let received = 0;
    for (const [name, socket] of [["first", first], ["second", second]] as const) {
      socket.onDatagram = (_data, _offset, _length, _address, sourcePort) => {
        received++;
        (seenBy.get(sourcePort) ?? seenBy.set(sourcePort, new Set()).get(sourcePort)!).add(name);
      };
    }
    const SOURCES = 40;
    const EACH = 5;
    for (let i = 0; i < SOURCES; i++) {
      const sender = createSocket("udp4");
      senders.push(sender);
      await new Promise<void>((resolve) => sender.bind(0, "127.0.0.1", resolve));
      for (let n = 0; n < EACH; n++) sender.send(Buffer.from([i, n]), port, "127.0.0.1");
    }
    expect(await waitUntil(() => received === SOURCES * EACH, ARRIVE_MS), `${received} of ${SOURCES * EACH} arrived`).toBe(true);
    // Every source stuck to one member, and both members got sources (all 40 on one: odds 2^-39).
    expect([...seenBy.values()].every((members) => members.size === 1)).toBe(true);
    const membersUsed = new Set([...seenBy.values()].map((members) => [...members][0]!));
    expect([...membersUsed].sort()).toEqual(["first", "second"]);
  });
});

describe("a native socket nothing in JavaScript holds", () => {
  // The addon names a socket by a number; native-udp.ts's table of receivers is what keeps an open
  // socket's object alive: a socket the relay forgot (but did not close) must still receive after a full GC.
  it("still receives after garbage collection", () => {
    const script = `
      import { createSocket } from "node:dgram";
      import { openRelayUdpSocket } from "./relay/transport/udp-socket.ts";
      const got = [];
      const port = await (async () => {
        const socket = await openRelayUdpSocket("native", 4, "127.0.0.1", 0, 65536);
        socket.onDatagram = (data, offset, length) => got.push(data.toString("utf8", offset, offset + length));
        return socket.address().port;
      })();
      for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((resolve) => setTimeout(resolve, 20)); }
      const far = createSocket("udp4");
      far.send("after gc", port, "127.0.0.1");
      const deadline = Date.now() + 2000;
      while (got.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      far.close();
      console.log(JSON.stringify(got));
      process.exit(0);`;
    const run = spawnSync(process.execPath, ["--expose-gc", "--import", "tsx", "--input-type=module", "-e", script], { cwd: process.cwd(), encoding: "utf8", timeout: 20_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout.trim().split("\n").at(-1)!)).toEqual(["after gc"]);
  }, 30_000);
});

describe("the native addon's socket handles", () => {
  // A handle is a slot's index and generation: once its socket is closed, the slot may go to a later
  // socket, and the old handle must reach nothing, neither the later socket nor freed memory.
  it("refuses a handle kept past close, though a later socket has its slot", async () => {
    const native = loadNativeUdp();
    if (!native.ok) throw new Error(native.reason);
    const { addon } = native;
    const first = addon.open(4, "127.0.0.1", 0, 65536);
    await new Promise<void>((resolve) => addon.close(first, resolve));
    const later = addon.open(4, "127.0.0.1", 0, 65536);
    try {
      expect(later & 0xfffff).toBe(first & 0xfffff); // the freed slot is the first one taken again
      expect(later).not.toBe(first);
      const [, laterPort] = addon.localAddress(later);
      const peer = createSocket("udp4");
      const got: Buffer[] = [];
      peer.on("message", (message) => got.push(message));
      await new Promise<void>((resolve) => peer.bind(0, "127.0.0.1", resolve));
      try {
        // Not sent: the errno comes back (EBADF), and nothing leaves the later socket.
        expect(addon.send(first, Buffer.from("stale"), 0, 5, peer.address().port, "127.0.0.1")).toBe(9);
        expect(() => addon.localAddress(first)).toThrow(expect.objectContaining({ code: "EBADF" }));
        expect(() => addon.sendCounts(first)).toThrow(expect.objectContaining({ code: "EBADF" }));
        expect(() => addon.close(first)).toThrow(expect.objectContaining({ code: "EBADF" }));
        expect(() => addon.localAddress("not a handle" as never)).toThrow(TypeError);
        // The later socket itself still sends.
        expect(addon.send(later, Buffer.from("fresh"), 0, 5, peer.address().port, "127.0.0.1")).toBe(0);
        expect(await waitUntil(() => got.length > 0, ARRIVE_MS)).toBe(true);
        expect(got.map((message) => message.toString())).toEqual(["fresh"]);
        expect(laterPort).toBeGreaterThan(0);
      } finally {
        peer.close();
      }
    } finally {
      await new Promise<void>((resolve) => addon.close(later, resolve));
    }
  });
});

describe("the native socket's send queue", async () => {
  const unavailable = await netnsSuiteUnavailable("the native socket's send queue", async () => {
    try {
      const probe = await runInNetns("tc qdisc add dev lo root tbf rate 1mbit burst 16kb latency 5s", [], 10_000);
      return probe.code === 0 ? null : `tc could not throttle loopback in a namespace: ${probe.stderr.trim()}`;
    } catch (error) {
      return `could not run tc: ${String(error)}`;
    }
  });
  it.skipIf(unavailable !== null)("queues what meets a full send buffer, sends it in order once writable, and drops past its bound", async () => {
    const result = await runInNetns(
      "sh -c 'tc qdisc add dev lo root tbf rate 1mbit burst 16kb latency 5s && exec node --import tsx test/relay/netns/native-udp-backpressure.ts'",
      [],
      30_000,
    );
    expect(result.code, result.stderr).toBe(0);
    const outcome = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as { sent: number; received: number; inOrder: boolean; queued: number; dropped: number };
    // The throttled loopback really filled the 64 KiB buffer: some waited, some were over the bound.
    expect(outcome.queued).toBeGreaterThan(0);
    expect(outcome.dropped).toBeGreaterThan(0);
    // Nothing vanished: every datagram arrived or was counted as dropped, and the order held.
    expect(outcome.received).toBe(outcome.sent - outcome.dropped);
    expect(outcome.inOrder).toBe(true);
  }, 40_000);
});

describe("a segmented send the route refuses", async () => {
  const unavailable = await netnsSuiteUnavailable("a segmented send the route refuses", async () => {
    const probe = await runInNetns("ip link set lo mtu 1200", [], 10_000);
    return probe.code === 0 ? null : `could not lower loopback's MTU in a namespace: ${probe.stderr.trim()}`;
  });
  it.skipIf(unavailable !== null)("goes again datagram by datagram, every one whole and in order, and the socket keeps sending", async () => {
    const result = await runInNetns("sh -c 'ip link set lo mtu 1200 && exec node --import tsx test/relay/netns/native-udp-segment-refused.ts'", [], 30_000);
    expect(result.code, result.stderr).toBe(0);
    const outcome = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as Record<"large" | "small", { sent: number; received: number; intact: boolean }>;
    // 1,400-byte datagrams over an MTU of 1,200: no segmented send can carry them, IP fragments each one.
    expect(outcome.large).toEqual({ sent: 10, received: 10, intact: true });
    expect(outcome.small).toEqual({ sent: 10, received: 10, intact: true });
  }, 40_000);
});

describe("every UDP socket's send queues together", async () => {
  const unavailable = await netnsSuiteUnavailable("every UDP socket's send queues together", async () => {
    try {
      const probe = await runInNetns("tc qdisc add dev lo root tbf rate 1mbit burst 16kb latency 5s", [], 10_000);
      return probe.code === 0 ? null : `tc could not throttle loopback in a namespace: ${probe.stderr.trim()}`;
    } catch (error) {
      return `could not run tc: ${String(error)}`;
    }
  });
  interface Outcome {
    sockets: number;
    datagramBytes: number;
    sent: number;
    received: number;
    inOrder: boolean;
    totalLimit: number;
    peakHeld: number;
    peakCounted: number;
    queued: number;
    dropped: number;
    perSocketQueued: number;
    perSocketDropped: number;
    queuedBytesAfterDrain: number;
    heldAfterDrain: number;
    queuedBeforeClose: number;
    queuedBytesAfterClose: number;
    droppedAfterClose: number;
  }
  for (const io of ["native", "dgram"] as const) {
    it.skipIf(unavailable !== null)(`on ${io}: stay within the total bound, drop and count the excess, and give back what waited on drain and on close`, async () => {
      const result = await runInNetns(
        `sh -c 'tc qdisc add dev lo root tbf rate 1mbit burst 16kb latency 5s && exec node --import tsx test/relay/netns/udp-send-queue-bounds.ts ${io}'`,
        [],
        30_000,
      );
      expect(result.code, result.stderr).toBe(0);
      const outcome = JSON.parse(result.stdout.trim().split("\n").at(-1)!) as Outcome;
      const report = JSON.stringify(outcome);
      // The total bound is below what the sockets' own bounds allow together, and it held. dgram
      // learns of a backlog only at the send after the one that met the full buffer, so each socket
      // may have that one datagram in libuv's queue beyond the bound.
      const slack = io === "native" ? 0 : outcome.sockets * outcome.datagramBytes;
      expect(outcome.peakHeld, report).toBeGreaterThan(0);
      expect(outcome.peakHeld, report).toBeLessThanOrEqual(outcome.totalLimit + slack);
      expect(outcome.peakCounted, report).toBeLessThanOrEqual(outcome.totalLimit + slack);
      expect(outcome.dropped, report).toBeGreaterThan(0);
      // The counts add up: per socket and in total, and nothing vanished uncounted or out of order.
      expect(outcome.perSocketQueued, report).toBe(outcome.queued);
      expect(outcome.perSocketDropped, report).toBe(outcome.dropped);
      expect(outcome.received, report).toBe(outcome.sent - outcome.dropped);
      expect(outcome.inOrder, report).toBe(true);
      // Drained: nothing waits, and the total says so.
      expect(outcome.heldAfterDrain, report).toBe(0);
      expect(outcome.queuedBytesAfterDrain, report).toBe(0);
      // Closed with datagrams queued: they leave the total; the running counts never go down.
      expect(outcome.queuedBeforeClose, report).toBeGreaterThan(0);
      expect(outcome.queuedBytesAfterClose, report).toBe(0);
      expect(outcome.droppedAfterClose, report).toBeGreaterThanOrEqual(outcome.dropped);
    }, 40_000);
  }
});

describe("ipLiteralLookup (dgram's lookup)", () => {
  it("answers IPv4 and IPv6 literals at once, in their family", () => {
    const answers: [string, number][] = [];
    ipLiteralLookup("192.0.2.7", 4, (error, address, family) => {
      expect(error).toBeNull();
      answers.push([address, family]);
    });
    ipLiteralLookup("2001:db8::1", 6, (_error, address, family) => answers.push([address, family]));
    expect(answers).toEqual([["192.0.2.7", 4], ["2001:db8::1", 6]]);
  });

  it("still resolves names through dns.lookup", async () => {
    const [address, family] = await new Promise<[string, number]>((resolve, reject) =>
      ipLiteralLookup("localhost", 4, (error, address, family) => (error ? reject(error) : resolve([address, family]))),
    );
    expect(family).toBe(4);
    expect(address).toMatch(/^127\./);
  });
});

describe("createDgramSocket", () => {
  const sockets: Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.close();
  });

  /** Linux doubles SO_RCVBUF/SO_SNDBUF requests for bookkeeping, capped at twice the sysctl maximum. */
  const granted = (requested: number, sysctl: string) => 2 * Math.min(requested, Number(readFileSync(`/proc/sys/net/core/${sysctl}`, "utf8")));

  for (const [name, bytes] of [["a listener", LISTENER_BUFFER_BYTES], ["a relay socket", RELAY_SOCKET_BUFFER_BYTES]] as const) {
    it(`gives ${name} the buffers it asks for, up to the kernel's cap`, async () => {
      const socket = createDgramSocket(4, bytes);
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
      expect(socket.getRecvBufferSize()).toBe(granted(bytes, "rmem_max"));
      expect(socket.getSendBufferSize()).toBe(granted(bytes, "wmem_max"));
    });
  }
});
