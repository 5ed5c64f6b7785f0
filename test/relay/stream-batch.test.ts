/**
 * Relayed frames to a TCP/TLS client gathered per batch (transport/stream-batch.ts): over real
 * sockets, many frames in one turn reach the client byte for byte in order (ChannelData padded with
 * zeros, STUN answers in their place), in few writes; the flush point decides what one write gathers
 * (a callback's frames, or a whole turn's); the backlog bound and its drops still hold for a client
 * that does not read; a connection torn down with frames pending is quiet.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer as createNetServer, connect as netConnect, type Server as NetServer, type Socket } from "node:net";
import { connect as tlsConnect, createServer as createTlsServer } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { setStreamFlushPoint, STREAM_BATCH_BYTES, type StreamFlushPoint } from "../../relay/transport/stream-batch.js";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import { STREAM_CLOSE_REASONS, StreamClientLink, type StreamCloseReason, type StreamCounters } from "../../relay/transport/stream.js";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { StunClass, StunMethod } from "../../relay/stun/constants.js";
import { paddedChannelData, testCertificate } from "./turn-client.js";

const TRANSPORTS = ["tcp", "tls"] as const;
type Transport = (typeof TRANSPORTS)[number];

interface Pair {
  relaySide: Socket;
  clientSide: Socket;
  close(): void;
}

let certificate: { cert: Buffer; key: Buffer; remove(): void };
beforeAll(() => {
  const made = testCertificate();
  const path = (flag: string) => made.flags.find((f) => f.startsWith(flag))!.slice(flag.length);
  certificate = { cert: readFileSync(path("--cert=")), key: readFileSync(path("--pkey=")), remove: made.remove };
});
afterAll(() => certificate.remove());

const open: Pair[] = [];
afterEach(() => {
  for (const pair of open.splice(0)) pair.close();
});

/** A connected pair over loopback: the relay's accepted socket and the client's. */
async function connectPair(transport: Transport): Promise<Pair> {
  let server: NetServer;
  let clientSide: Socket;
  const accepted = new Promise<Socket>((resolve) => {
    if (transport === "tcp") server = createNetServer((socket) => resolve(socket));
    else server = createTlsServer({ cert: certificate.cert, key: certificate.key }, (socket) => resolve(socket));
  });
  server!.listen(0, "127.0.0.1");
  await once(server!, "listening");
  const { port } = server!.address() as { port: number };
  if (transport === "tcp") {
    clientSide = netConnect(port, "127.0.0.1");
    await once(clientSide, "connect");
  } else {
    clientSide = tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false });
    await once(clientSide, "secureConnect");
  }
  const relaySide = await accepted;
  const pair = {
    relaySide,
    clientSide,
    close() {
      relaySide.destroy();
      clientSide.destroy();
      server!.close();
    },
  };
  open.push(pair);
  return pair;
}

function newCounters(): StreamCounters {
  return { streamBacklogDropped: 0, streamClosed: Object.fromEntries(STREAM_CLOSE_REASONS.map((reason) => [reason, 0])) as Record<StreamCloseReason, number> };
}

const LIMITS = { backlogBytes: 256 * 1024, backlogHardBytes: 320 * 1024, backlogTimeoutMs: 60_000 };

/** Counts the relay side's socket.write calls (the batching's whole point). */
function countWrites(socket: Socket): { count: number } {
  const counter = { count: 0 };
  const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
  socket.write = ((chunk: Buffer) => {
    counter.count++;
    return write(chunk);
  }) as Socket["write"];
  return counter;
}

/** Collects what the client reads until `bytes` have arrived (bounded in time). */
async function readBytes(socket: Socket, bytes: number, timeoutMs = 10_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received} of ${bytes} bytes arrived within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= bytes) {
        clearTimeout(timer);
        socket.off("data", onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on("data", onData);
  });
}


function stunAnswer(): Buffer {
  return buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.SuccessResponse, transactionId: newTransactionId(), attributes: [] });
}

describe("relayed frames of one turn, written together", () => {
  for (const transport of TRANSPORTS) {
    it(`over ${transport}: 600 frames of one turn arrive in order, intact and zero-padded${transport === "tcp" ? ", in few writes" : ", one write each"}`, async () => {
      const { relaySide, clientSide } = await connectPair(transport);
      const link = new StreamClientLink(relaySide, transport, LIMITS, newCounters());
      const writes = countWrites(relaySide);
      // The relay's receive area is reused from one datagram to the next: each frame must be copied when sent.
      const receiveArea = Buffer.alloc(70_000);
      const expected: Buffer[] = [];
      for (let i = 0; i < 600; i++) {
        const length = i === 300 ? STREAM_BATCH_BYTES + 3000 : (i * 7) % 131; // one frame larger than a batch
        const offset = 1 + (i % 5);
        for (let j = 0; j < length; j++) receiveArea[offset + j] = (i + j) & 0xff;
        // Garbage after the data: a padding taken from the area instead of zeros would show.
        receiveArea.fill(0xee, offset + length, offset + length + 4);
        const channel = 0x4000 + (i % 16);
        link.sendChannelData(channel, receiveArea, offset, length);
        expected.push(paddedChannelData(channel, Buffer.from(receiveArea.subarray(offset, offset + length))));
        receiveArea.fill(0xaa);
        if (i % 97 === 0) {
          const indication = Buffer.from(`data indication ${i}`.padEnd(24, "."));
          link.sendDataIndication(indication);
          expected.push(indication);
        }
        if (i === 450) {
          const answer = stunAnswer();
          link.sendStun(answer);
          expected.push(answer);
        }
      }
      const want = Buffer.concat(expected);
      const got = await readBytes(clientSide, want.length);
      expect(got.length).toBe(want.length);
      expect(got.equals(want), "the client's bytes differ from the frames sent, in order").toBe(true);
      // 600 frames + 7 indications + 1 answer: one write each without batching, which TLS keeps (one
      // record per frame: coturn's TLS client reads one message per record, stream-batch.ts).
      if (transport === "tcp") expect(writes.count, `${writes.count} writes`).toBeLessThanOrEqual(12);
      else expect(writes.count, `${writes.count} writes`).toBeGreaterThanOrEqual(600);
    });

    if (transport === "tcp") {
      it("over tcp: frames of three callbacks in one turn go out in one write at the \"turn\" flush point (dgram), in one per callback at \"callback\" (the native addon's batches)", async () => {
        const cases: [StreamFlushPoint, number][] = [["turn", 1], ["callback", 3]];
        try {
          for (const [point, wantedWrites] of cases) {
            setStreamFlushPoint(point);
            const { relaySide, clientSide } = await connectPair(transport);
            const link = new StreamClientLink(relaySide, transport, LIMITS, newCounters());
            const writes = countWrites(relaySide);
            const data = Buffer.alloc(100);
            const expected: Buffer[] = [];
            // Immediates queued together run in one check phase: three callbacks of one turn.
            await new Promise<void>((resolve) => {
              for (let callback = 0; callback < 3; callback++) {
                setImmediate(() => {
                  for (let i = 0; i < 10; i++) {
                    data.fill(callback * 10 + i);
                    link.sendChannelData(0x4000, data, 0, data.length);
                    expected.push(paddedChannelData(0x4000, Buffer.from(data)));
                  }
                });
              }
              setImmediate(resolve);
            });
            const want = Buffer.concat(expected);
            const got = await readBytes(clientSide, want.length);
            expect(got.equals(want), `${point}: the client's bytes differ from the frames sent, in order`).toBe(true);
            expect(writes.count, `${point}: ${writes.count} writes`).toBe(wantedWrites);
          }
        } finally {
          setStreamFlushPoint("callback");
        }
      });
    }

    it(`over ${transport}: connections sharing batch buffers from turn to turn each get their own bytes`, async () => {
      const pairs = [await connectPair(transport), await connectPair(transport), await connectPair(transport)];
      const links = pairs.map((pair) => new StreamClientLink(pair.relaySide, transport, LIMITS, newCounters()));
      const expected: Buffer[][] = pairs.map(() => []);
      const chunks: Buffer[][] = pairs.map(() => []);
      pairs.forEach((pair, which) => pair.clientSide.on("data", (chunk: Buffer) => chunks[which]!.push(chunk)));
      const data = Buffer.alloc(200);
      for (let turn = 0; turn < 30; turn++) {
        for (let i = 0; i < 40; i++) {
          for (let which = 0; which < links.length; which++) {
            const length = 1 + ((turn * 40 + i + which * 13) % 199);
            data.fill(0x10 * which + (turn % 16));
            data.writeUInt16BE(turn * 100 + i, 0);
            links[which]!.sendChannelData(0x4000 + which, data, 0, length);
            expected[which]!.push(paddedChannelData(0x4000 + which, Buffer.from(data.subarray(0, length))));
          }
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      const wants = expected.map((frames) => Buffer.concat(frames));
      const arrived = () => chunks.every((got, which) => Buffer.concat(got).length >= wants[which]!.length);
      for (let waited = 0; waited < 10_000 && !arrived(); waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      for (let which = 0; which < pairs.length; which++) {
        expect(Buffer.concat(chunks[which]!).equals(wants[which]!), `connection ${which} got other bytes than it was sent`).toBe(true);
      }
    });

    it(`over ${transport}: a client that does not read still caps the backlog at its bound; what does go arrives in order`, async () => {
      const { relaySide, clientSide } = await connectPair(transport);
      const counters = newCounters();
      const limits = { ...LIMITS, backlogBytes: 64 * 1024, backlogHardBytes: 96 * 1024 };
      const link = new StreamClientLink(relaySide, transport, limits, counters);
      clientSide.pause();
      const payload = Buffer.alloc(1000);
      let highest = 0;
      let sequence = 0;
      // 40 turns of 300 frames of 1,000 bytes (12 MB): far past the kernel's buffers and the bound.
      for (let turn = 0; turn < 40 && !relaySide.destroyed; turn++) {
        for (let i = 0; i < 300; i++, sequence++) {
          payload.writeUInt32BE(sequence, 0);
          payload.fill(sequence & 0xff, 4);
          link.sendChannelData(0x4001, payload, 0, payload.length);
          highest = Math.max(highest, relaySide.writableLength);
        }
        await new Promise((resolve) => setImmediate(resolve));
        highest = Math.max(highest, relaySide.writableLength);
      }
      expect(highest, `relay-side backlog peaked at ${highest} bytes`).toBeLessThanOrEqual(limits.backlogBytes);
      expect(counters.streamBacklogDropped, "frames past the bound are dropped and counted").toBeGreaterThan(0);
      // An answer while the backlog is full is queued behind the data, not dropped.
      const answer = stunAnswer();
      link.sendStun(answer);
      expect(relaySide.destroyed).toBe(false);

      const sequences: number[] = [];
      let answered = false;
      let corrupt = 0;
      const framer = new StreamFramer((frame) => {
        if (frame[0]! < 0x40) {
          answered = frame.equals(answer);
          return;
        }
        const seq = frame.readUInt32BE(4);
        if (frame.length !== 1004 || frame.subarray(8).some((byte) => byte !== (seq & 0xff))) corrupt++;
        sequences.push(seq);
      });
      clientSide.on("data", (chunk: Buffer) => expect(framer.push(chunk)).toBe(true));
      clientSide.resume();
      const deadline = Date.now() + 10_000;
      while (!answered && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(answered, "the STUN answer arrived after the data").toBe(true);
      expect(corrupt).toBe(0);
      expect(sequences.length + counters.streamBacklogDropped).toBe(sequence);
      expect(sequences.every((seq, index) => index === 0 || seq > sequences[index - 1]!), "frames in order").toBe(true);
    });

    it(`over ${transport}: a connection torn down with frames pending drops them quietly`, async () => {
      const { relaySide, clientSide } = await connectPair(transport);
      const link = new StreamClientLink(relaySide, transport, LIMITS, newCounters());
      const errors: unknown[] = [];
      relaySide.on("error", (error) => errors.push(error));
      link.sendChannelData(0x4001, Buffer.alloc(100), 0, 100);
      relaySide.destroy();
      link.sendChannelData(0x4001, Buffer.alloc(100), 0, 100);
      link.sendStun(stunAnswer());
      await new Promise((resolve) => setImmediate(resolve));
      clientSide.resume();
      await once(clientSide, "close");
      expect(errors).toEqual([]);
      expect(link.closed).toBe(true);
    });
  }
});
