/**
 * Abuse: the relay takes what a hostile or broken client throws at it and keeps working, with memory flat.
 *
 * 1. 10,000 Allocate / Refresh(LIFETIME 0) cycles over 4 relay ports: every port comes back, no allocation
 *    is left, nothing reported as failed.
 * 2. Fuzz on every listener (UDP, TCP, TLS) and on a relay port: random datagrams and byte streams, and
 *    mutations of valid messages aimed at the length fields; afterwards the relay still answers Binding and
 *    still relays a full Allocate / CreatePermission / Send round trip, and no exception escaped.
 * 3. An unauthenticated flood (Allocate without credentials, Binding, and a made-up NONCE) of 100,000+
 *    requests from one source, in a child process (abuse/flood.ts) so the heap measured after a forced GC
 *    is the relay's: it stays flat, and the default rate limit answers only burst + rate × duration.
 *
 * Port ranges 46000-46099 (this file) and 46100-46101 (flood.ts) are used by no other suite. The cycles'
 * four relay ports are 32700-32703 instead, below Linux's ephemeral range (32768-60999): with no port
 * to spare, one of them taken as some other program's local port was a 508. Random choices
 * come from a seeded PRNG; the seed is printed, and ABUSE_SEED=<seed> replays a run. Peers the fuzz can make
 * the relay send to are confined to 127.0.0.2 (our own peer socket) and to addresses denied by policy.
 */
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { connect as netConnect, type Socket as NetSocket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect as tlsConnect } from "node:tls";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { RelayEvent, RelayServer } from "../../relay/server/relay-server.js";
import {
  encodeChannelNumber,
  encodeLifetime,
  encodeRequestedTransport,
  encodeText,
  encodeXorAddress,
  type TransportAddress,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey } from "../../relay/stun/integrity.js";
import { decodeStunMessage, type StunMessage } from "../../relay/stun/message.js";
import { channelDataHeader } from "../../relay/turn/channel-data.js";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import { Rng, mutate, randomDatagram, seedFromEnv } from "./abuse/fuzz.js";
import { TurnTestClient, countUdpReads, errorCodeOf, mint, recordEscapedErrors, sendIndication, startRelay, testCertificate, textOf, xorAddressOf } from "./turn-client.js";

const UDP = encodeRequestedTransport(17);
const SEED = seedFromEnv();
console.log(`relay-abuse: ABUSE_SEED=${SEED}`);

// ---------------------------------------------------------------------------------------------------------------
// Whatever a test opened is closed after it; anything that escaped as an uncaught error is recorded.

const relays: RelayServer[] = [];
const closers: (() => void)[] = [];
const escaped = recordEscapedErrors();

afterEach(async () => {
  for (const close of closers.splice(0)) {
    try {
      close();
    } catch {
      // already closed
    }
  }
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
});

async function udpClient(port: number): Promise<TurnTestClient> {
  const client = await TurnTestClient.open(port);
  closers.push(() => client.close());
  return client;
}

/** The cycles' relay ports: outside the ephemeral range, so no other program's socket holds one. */
const CYCLE_PORTS = [32_700, 32_703] as const;

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Forces a GC in this process (vitest runs without --expose-gc) and returns heapUsed. */
function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** How many answers the relay's transaction cache holds (a private field, read for the report only). */
function transactionCacheSize(relay: RelayServer): number {
  return (relay as unknown as { transactions: { size: number } }).transactions.size;
}

const MB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`;


function outcome(message: StunMessage): string {
  return message.messageClass === StunClass.SuccessResponse ? "success" : `error ${errorCodeOf(message)}`;
}


// ---------------------------------------------------------------------------------------------------------------
// A STUN client over TCP or TLS, framing answers with the relay's own StreamFramer.

class StreamClient {
  readonly frames: Buffer[] = [];
  closed = false;
  realm: string | undefined;
  nonce: string | undefined;
  private readonly framer = new StreamFramer((frame) => this.frames.push(Buffer.from(frame)));

  constructor(readonly socket: NetSocket) {
    socket.on("data", (chunk: Buffer) => {
      if (!this.framer.push(chunk)) this.frames.push(Buffer.alloc(0));
    });
    socket.on("error", () => {});
    socket.on("close", () => (this.closed = true));
    closers.push(() => socket.destroy());
  }

  static async tcp(port: number): Promise<StreamClient> {
    const socket = netConnect({ port, host: "127.0.0.1" });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    return new StreamClient(socket);
  }

  static async tls(port: number): Promise<StreamClient> {
    const socket = tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", resolve);
      socket.once("error", reject);
    });
    return new StreamClient(socket);
  }

  write(bytes: Buffer): void {
    if (!this.closed && this.socket.writable) this.socket.write(bytes);
  }

  /** The answer to the request with `transactionId`, skipping anything else; null after `timeoutMs`. */
  async answerTo(transactionId: Buffer, timeoutMs = 2_000): Promise<StunMessage | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.frames.length > 0) {
        const decoded = decodeStunMessage(this.frames.shift()!);
        if (decoded.ok && decoded.message.transactionId.equals(transactionId)) return decoded.message;
      }
      if (this.closed || Date.now() >= deadline) return null;
      await sleep(5);
    }
  }

  async exchange(bytes: Buffer): Promise<StunMessage | null> {
    this.write(bytes);
    return this.answerTo(bytes.subarray(8, 20));
  }

  async signed(method: number, attributes: StunAttributeValue[], credential: TurnCredential): Promise<Buffer> {
    if (this.nonce === undefined) {
      const challenge = await this.exchange(buildStunMessage({ method, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes }));
      if (challenge === null) throw new Error("no 401 over the stream");
      this.realm = textOf(challenge, AttributeType.Realm);
      this.nonce = textOf(challenge, AttributeType.Nonce);
    }
    return signedMessage(method, StunClass.Request, attributes, credential, this.realm!, this.nonce!);
  }
}

function signedMessage(method: number, messageClass: StunClass, attributes: StunAttributeValue[], credential: TurnCredential, realm: string, nonce: string): Buffer {
  return buildStunMessage({
    method,
    messageClass,
    transactionId: newTransactionId(),
    attributes: [
      ...attributes,
      encodeText(AttributeType.Username, credential.username),
      encodeText(AttributeType.Realm, realm),
      encodeText(AttributeType.Nonce, nonce),
    ],
    messageIntegrityKey: longTermKey(credential.username, realm, credential.password),
    fingerprint: true,
  });
}

function bindingRequest(extra: StunAttributeValue[] = []): Buffer {
  return buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: extra, fingerprint: true });
}


// ---------------------------------------------------------------------------------------------------------------
// 1. Allocate / delete cycles.

describe("relay abuse", () => {
  it("survives 10,000 Allocate / Refresh(0) cycles on 4 relay ports with every port given back", async () => {
    // Counted, not kept: 28,000 kept event objects would be a heap growth of their own.
    const eventCounts = { "allocation-start": 0, "allocation-end": 0, "request-failed": 0 };
    const failed: RelayEvent[] = [];
    const { relay, port } = await startRelay([`--min-port=${CYCLE_PORTS[0]}`, `--max-port=${CYCLE_PORTS[1]}`], (event) => {
      eventCounts[event.event]++;
      if (event.event === "request-failed" && failed.length < 20) failed.push(event);
    });
    relays.push(relay);
    const credential = await mint("cycler", 600);
    const WORKERS = 4;
    const CYCLES = 10_000;
    const clients = await Promise.all(Array.from({ length: WORKERS }, () => udpClient(port)));
    // Learn each client's NONCE (one 401 each) before the clock starts.
    for (const client of clients) {
      const answer = await client.request(StunMethod.Refresh, [encodeLifetime(0)], credential);
      expect(errorCodeOf(answer)).toBe(437);
    }

    const heapBefore = heapAfterGc();
    const deadline = Date.now() + 30_000;
    const failures: string[] = [];
    const runCycles = async (cycles: number): Promise<number> => {
    let next = 0;
    let done = 0;
    await Promise.all(
      clients.map(async (client, worker) => {
        while (next < cycles && failures.length === 0 && Date.now() < deadline) {
          const cycle = next++;
          try {
            const allocated = await client.exchange(await client.signedRequest(StunMethod.Allocate, [UDP], credential));
            if (outcome(allocated.message) !== "success") throw new Error(`Allocate: ${outcome(allocated.message)}`);
            const port = xorAddressOf(allocated.message)?.port ?? -1;
            if (port < CYCLE_PORTS[0] || port > CYCLE_PORTS[1]) throw new Error(`relayed port ${port} outside ${CYCLE_PORTS.join("-")}`);
            const deleted = await client.exchange(await client.signedRequest(StunMethod.Refresh, [encodeLifetime(0)], credential));
            if (outcome(deleted.message) !== "success") throw new Error(`Refresh(0): ${outcome(deleted.message)}`);
            done++;
          } catch (error) {
            failures.push(`worker ${worker}, cycle ${cycle}: ${String(error)}`);
          }
        }
      }),
    );
    return done;
    };
    const startedAt = performance.now();
    const done = await runCycles(CYCLES);
    const elapsedMs = performance.now() - startedAt;
    const heapAfter = heapAfterGc();
    const cachedAfter = transactionCacheSize(relay);
    // The transaction cache (20,000 answers at most, 40 s each) is full now; 4,000 more cycles must not grow the heap.
    const EXTRA = 4_000;
    const extraDone = await runCycles(EXTRA);
    const heapPlateau = heapAfterGc();
    // The last socket closes on the next tick; give it a moment.
    const until = Date.now() + 2_000;
    while (relay.freePorts !== 4 && Date.now() < until) await sleep(10);

    const starts = eventCounts["allocation-start"];
    const ends = eventCounts["allocation-end"];
    console.log(
      `cycles: ${done} in ${elapsedMs.toFixed(0)} ms (${((elapsedMs * 1000) / Math.max(done, 1)).toFixed(0)} µs a cycle, ${WORKERS} clients); ` +
        `heap ${MB(heapBefore)} → ${MB(heapAfter)} (Δ ${MB(heapAfter - heapBefore)}, transaction cache ${cachedAfter} answers); ` +
        `+${extraDone} cycles → ${MB(heapPlateau)} (Δ ${MB(heapPlateau - heapAfter)}); starts ${starts}, ends ${ends}, request-failed ${eventCounts["request-failed"]}`,
    );
    expect(failures).toEqual([]);
    expect(done).toBe(CYCLES);
    expect(elapsedMs).toBeLessThan(20_000);
    expect(relay.freePorts).toBe(4);
    expect(relay.allocationCount).toBe(0);
    expect(extraDone).toBe(EXTRA);
    expect(starts).toBe(CYCLES + EXTRA);
    expect(ends).toBe(CYCLES + EXTRA);
    expect(eventCounts["request-failed"], JSON.stringify(failed)).toBe(0);
    // 10,000 allocations leave nothing behind but the bounded transaction cache (its entries live 40 s),
    // and once that is full the heap stays where it is.
    expect(heapAfter - heapBefore).toBeLessThan(16 * 1024 * 1024);
    expect(heapPlateau - heapAfter).toBeLessThan(3 * 1024 * 1024);
    expect(escaped).toEqual([]);
  }, 45_000);

  // -------------------------------------------------------------------------------------------------------------
  // 2. Fuzz on every listener and on a relay port.

  describe("fuzz", () => {
    let certificate: ReturnType<typeof testCertificate> | undefined;

    beforeAll(() => {
      certificate = testCertificate();
    });

    afterAll(() => {
      certificate?.remove();
    });

    it("keeps answering and relaying after fuzz on UDP, TCP, TLS and a relay port", async () => {
      const rng = new Rng(SEED);
      const events: RelayEvent[] = [];
      let listeners: { transport: string; port: number }[] = [];
      const { relay, port } = await startRelay(
        [
          "--min-port=46010",
          "--max-port=46059",
          "--allow-loopback-peers",
          // Everything but loopback is denied, so no fuzzed peer address can send traffic off this host.
          "--denied-peer-ip=0.0.0.0/0",
          "--denied-peer-ip=::/0",
          // Unlimited: every fuzzed request gets its full answer built, and the checks afterwards are not throttled.
          "--unauthenticated-rate=0",
          ...certificate!.flags,
          "--tls-listening-port=0",
        ],
        (event) => events.push(event),
        (bound) => (listeners = bound),
      );
      relays.push(relay);
      const tcpPort = listeners.find((listener) => listener.transport === "tcp")!.port;
      const tlsPort = listeners.find((listener) => listener.transport === "tls")!.port;
      const credential = await mint("fuzzer", 600);
      const heapBefore = heapAfterGc();

      // Our peer, on 127.0.0.2: the only address a fuzzing client with a permission can make the relay send to.
      const peerSocket = createSocket("udp4");
      await new Promise<void>((resolve) => peerSocket.bind(0, "127.0.0.2", resolve));
      closers.push(() => peerSocket.close());
      let peerReceived = 0;
      peerSocket.on("message", () => peerReceived++);
      const peer: TransportAddress = { family: 4, address: "127.0.0.2", port: peerSocket.address().port };

      // Safe XOR-PEER-ADDRESS values: our peer, denied addresses, and malformed ones.
      const peerAttribute = (transactionId: Buffer): StunAttributeValue => {
        switch (rng.int(5)) {
          case 0:
          case 1:
            return encodeXorAddress(AttributeType.XorPeerAddress, peer, transactionId);
          case 2:
            return encodeXorAddress(AttributeType.XorPeerAddress, { family: 4, address: `192.0.2.${rng.int(256)}`, port: rng.int(0x10000) }, transactionId);
          case 3:
            return encodeXorAddress(AttributeType.XorPeerAddress, { family: 6, address: `2001:db8::${rng.int(0x10000).toString(16)}`, port: rng.int(0x10000) }, transactionId);
          default: {
            // Wrong length, or a family byte that is neither 1 nor 2.
            const value = rng.bytes(rng.pick([0, 1, 4, 7, 9, 19, 21, 40]));
            if (value.length > 1) value[1] = rng.pick([0, 3, 0xff]);
            return { type: AttributeType.XorPeerAddress, value };
          }
        }
      };
      const randomAttribute = (transactionId: Buffer): StunAttributeValue => {
        const type = rng.pick([
          AttributeType.RequestedTransport,
          AttributeType.Lifetime,
          AttributeType.XorPeerAddress,
          AttributeType.ChannelNumber,
          AttributeType.EvenPort,
          AttributeType.ReservationToken,
          AttributeType.DontFragment,
          AttributeType.RequestedAddressFamily,
          AttributeType.PasswordAlgorithm,
          AttributeType.Data,
          AttributeType.Software,
          0x8000, // ADDITIONAL-ADDRESS-FAMILY
          rng.int(0x10000),
        ]);
        if (type === AttributeType.XorPeerAddress) return peerAttribute(transactionId);
        if (type === AttributeType.Lifetime && rng.chance(0.5)) return encodeLifetime(rng.pick([0, 1, 59, 600, 0xffffffff]));
        if (type === AttributeType.ChannelNumber && rng.chance(0.5)) {
          // Valid, at the edges of RFC 5766's wider range (which the encoder refuses), and just outside.
          const value = Buffer.alloc(4);
          value.writeUInt16BE(rng.pick([0x4000, 0x4001, 0x4fff, 0x5000, 0x7fff, 0x8000, 0x3fff]));
          return { type, value };
        }
        const shaped: Record<number, number> = { 0x0019: 4, 0x000d: 4, 0x000c: 4, 0x0018: 1, 0x0022: 8, 0x001a: 0, 0x0017: 4, 0x001d: 4, 0x8000: 4 };
        const length = shaped[type] !== undefined && rng.chance(0.6) ? shaped[type]! : rng.int(48);
        return { type, value: rng.bytes(length) };
      };

      // ---- UDP: stateless sockets get everything; one client with an allocation gets what cannot misdirect data.
      const udpReads = countUdpReads(relay);
      const stateless = await Promise.all(Array.from({ length: 4 }, () => udpClient(port)));
      for (const client of stateless) await client.request(StunMethod.Allocate, [UDP], credential).then(() => client.request(StunMethod.Refresh, [encodeLifetime(0)], credential));
      const stateful = await udpClient(port);
      const allocatedStateful = await stateful.request(StunMethod.Allocate, [UDP], credential);
      expect(outcome(allocatedStateful)).toBe("success");
      const bindChannel = async (client: TurnTestClient) => {
        const transactionId = newTransactionId();
        const request = await client.signedRequest(StunMethod.ChannelBind, [encodeChannelNumber(0x4000), encodeXorAddress(AttributeType.XorPeerAddress, peer, transactionId)], credential, transactionId);
        return (await client.exchange(request)).message;
      };
      expect(outcome(await bindChannel(stateful))).toBe("success");

      const templates = (client: TurnTestClient, withAllocation: boolean): Buffer[] => {
        const id = newTransactionId();
        const signed = (method: number, attributes: StunAttributeValue[]) =>
          signedMessage(method, StunClass.Request, attributes, credential, client.realm!, client.nonce!);
        return [
          bindingRequest(),
          bindingRequest([{ type: 0x7777, value: rng.bytes(8) }, { type: 0x0001 + rng.int(0x7fff), value: rng.bytes(rng.int(12)) }]),
          buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: id, attributes: [UDP] }),
          signed(StunMethod.Allocate, [UDP, ...Array.from({ length: rng.int(3) }, () => randomAttribute(id))]),
          signed(StunMethod.Refresh, [encodeLifetime(rng.pick([0, 600, 0xffffffff]))]),
          signed(StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, peer, id)]),
          signed(rng.pick([StunMethod.CreatePermission, StunMethod.ChannelBind, StunMethod.Refresh, StunMethod.Allocate, rng.int(0x1000)]), Array.from({ length: rng.int(4) }, () => randomAttribute(id))),
          ...(withAllocation ? [] : [sendIndication(peer, rng.bytes(rng.int(300)))]),
          Buffer.concat([channelDataHeader(rng.pick([0x4000, 0x4001, 0x7fff]), 0), Buffer.alloc(0)]),
          Buffer.concat([channelDataHeader(0x4000, 64), rng.bytes(64)]),
        ];
      };
      /** Structure-aware requests, correctly signed, so the handlers (not just the decoder) see odd attributes. */
      const signedOdd = (client: TurnTestClient): Buffer => {
        const id = newTransactionId();
        const method = rng.pick([StunMethod.Allocate, StunMethod.Refresh, StunMethod.CreatePermission, StunMethod.ChannelBind]);
        const attributes = Array.from({ length: rng.between(1, 5) }, () => randomAttribute(id));
        const message = buildStunMessage({
          method,
          messageClass: StunClass.Request,
          transactionId: id,
          attributes: [
            ...attributes,
            encodeText(AttributeType.Username, credential.username),
            encodeText(AttributeType.Realm, client.realm!),
            encodeText(AttributeType.Nonce, client.nonce!),
          ],
          ...(rng.chance(0.5)
            ? { messageIntegrityKey: longTermKey(credential.username, client.realm!, credential.password) }
            : { messageIntegritySha256Key: longTermKey(credential.username, client.realm!, credential.password) }),
          fingerprint: rng.chance(0.5),
        });
        return message;
      };

      const UDP_PACKETS = 24_000;
      const kinds: Record<string, number> = {};
      const count = (kind: string) => (kinds[kind] = (kinds[kind] ?? 0) + 1);
      let udpSent = 0;
      const fuzzDeadline = Date.now() + 20_000;
      while (udpSent < UDP_PACKETS && Date.now() < fuzzDeadline) {
        for (let i = 0; i < 32; i++, udpSent++) {
          const useStateful = rng.chance(0.2);
          const client = useStateful ? stateful : rng.pick(stateless);
          const roll = rng.int(10);
          let packet: Buffer;
          if (roll < 3) {
            packet = randomDatagram(rng);
            count("random");
          } else if (roll < 5) {
            packet = signedOdd(client);
            count("signed-odd");
          } else {
            const list = templates(client, useStateful);
            const mutation = mutate(rng, rng.pick(list), rng.pick(list));
            packet = mutation.bytes;
            count(`mutated:${mutation.name}`);
          }
          client.sendRaw(packet);
        }
        // Let the relay read what was sent (same process), so the kernel does not drop the flood.
        while (udpSent - udpReads() > 256 && Date.now() < fuzzDeadline) await tick();
      }
      // A stateful client also sends properly-formed Send indications and ChannelData with odd payload sizes.
      for (let i = 0; i < 500; i++) {
        const size = rng.pick([0, 1, 3, 4, 1400, rng.int(2000)]);
        stateful.sendRaw(rng.chance(0.5) ? sendIndication(peer, rng.bytes(size)) : Buffer.concat([channelDataHeader(0x4000, size), rng.bytes(size)]));
        if (i % 32 === 0) await tick();
      }
      const until = Date.now() + 3_000;
      while (udpReads() < udpSent + 500 && Date.now() < until) await tick();

      // ---- Relay port: the stateful client's allocation, hit from the peer and from a second loopback socket.
      const relayed = xorAddressOf(allocatedStateful)!;
      let relayPortSent = 0;
      for (let i = 0; i < 4_000; i++) {
        const size = rng.chance(0.02) ? rng.pick([65_507, 65_504, 65_505, 9_000]) : rng.int(1501);
        peerSocket.send(rng.bytes(size), relayed.port, "127.0.0.1");
        relayPortSent++;
        if (i % 32 === 0) await tick();
      }
      const stranger = createSocket("udp4");
      await new Promise<void>((resolve) => stranger.bind(0, "127.0.0.1", resolve));
      closers.push(() => stranger.close());
      for (let i = 0; i < 1_000; i++) {
        stranger.send(randomDatagram(rng), relayed.port, "127.0.0.1");
        relayPortSent++;
        if (i % 32 === 0) await tick();
      }

      // ---- TCP: random streams, mutated frame streams, a huge declared length, and an authenticated client.
      let streamBytes = 0;
      const streamJobs: Promise<void>[] = [];
      const fuzzStream = async (open: () => Promise<StreamClient>, mode: "random" | "frames" | "huge" | "authenticated") => {
        const client = await open();
        if (mode === "authenticated") {
          const allocated = await client.exchange(await client.signed(StunMethod.Allocate, [UDP], credential));
          expect(allocated === null ? "no answer" : outcome(allocated)).toBe("success");
        }
        for (let i = 0; i < 400 && !client.closed; i++) {
          let chunk: Buffer;
          if (mode === "random") chunk = rng.bytes(rng.int(1500));
          else if (mode === "huge") {
            const header = bindingRequest();
            header.writeUInt16BE(rng.pick([0xfffc, 0xffff, 0x7ffd]), 2);
            chunk = Buffer.concat([header.subarray(0, 20), rng.bytes(rng.int(2000))]);
          } else {
            const id = newTransactionId();
            const valid = [
              bindingRequest(),
              buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: id, attributes: [UDP] }),
              Buffer.concat([channelDataHeader(0x4000, 8), rng.bytes(8)]),
              ...(mode === "authenticated" && client.nonce !== undefined
                ? [signedMessage(rng.pick([StunMethod.Refresh, StunMethod.CreatePermission, StunMethod.ChannelBind]), StunClass.Request, Array.from({ length: rng.between(1, 4) }, () => randomAttribute(id)), credential, client.realm!, client.nonce)]
                : []),
            ];
            const original = rng.pick(valid);
            // Mostly whole frames (so the stream stays in sync and reaches the decoder), sometimes mutated ones.
            chunk = rng.chance(0.6) ? mutate(rng, original, rng.pick(valid), mode !== "authenticated").bytes : original;
          }
          // Split writes at random points, so frames straddle reads.
          const cut = rng.int(chunk.length + 1);
          client.write(chunk.subarray(0, cut));
          client.write(chunk.subarray(cut));
          streamBytes += chunk.length;
          if (i % 16 === 0) await sleep(1);
        }
        await sleep(20);
        client.socket.destroy();
      };
      for (const mode of ["random", "frames", "frames", "huge", "authenticated"] as const) streamJobs.push(fuzzStream(() => StreamClient.tcp(tcpPort), mode));
      // ---- TLS: garbage before the handshake, a truncated ClientHello, and the same stream fuzz inside TLS.
      const rawToTls = async (bytes: Buffer) => {
        const socket = netConnect({ port: tlsPort, host: "127.0.0.1" });
        socket.on("error", () => {});
        closers.push(() => socket.destroy());
        await new Promise<void>((resolve) => socket.once("connect", resolve));
        socket.write(bytes);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1_000);
          socket.once("close", () => {
            clearTimeout(timer);
            resolve();
          });
        });
        socket.destroy();
      };
      streamJobs.push(rawToTls(rng.bytes(4_000)));
      streamJobs.push(rawToTls(bindingRequest()));
      // A TLS record header (handshake, TLS 1.0) promising 16 KB, then random bytes.
      streamJobs.push(rawToTls(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01]), rng.bytes(300)])));
      for (const mode of ["random", "frames", "huge", "authenticated"] as const) streamJobs.push(fuzzStream(() => StreamClient.tls(tlsPort), mode));
      await Promise.all(streamJobs);
      await sleep(200);

      // ---- Afterwards: Binding on every listener, and a full round trip over UDP.
      const checker = await udpClient(port);
      const binding = await checker.exchange(bindingRequest());
      expect(outcome(binding.message)).toBe("success");
      for (const open of [() => StreamClient.tcp(tcpPort), () => StreamClient.tls(tlsPort)]) {
        const client = await open();
        const answer = await client.exchange(bindingRequest());
        expect(answer === null ? "no answer" : outcome(answer)).toBe("success");
        client.socket.destroy();
      }
      const roundTrip = await udpClient(port);
      const allocated = await roundTrip.request(StunMethod.Allocate, [UDP], credential);
      expect(outcome(allocated)).toBe("success");
      const roundTripRelayed = xorAddressOf(allocated)!;
      const echoPeer = createSocket("udp4");
      await new Promise<void>((resolve) => echoPeer.bind(0, "127.0.0.1", resolve));
      closers.push(() => echoPeer.close());
      const echoReceived: Buffer[] = [];
      echoPeer.on("message", (data) => echoReceived.push(data));
      const echoAddress: TransportAddress = { family: 4, address: "127.0.0.1", port: echoPeer.address().port };
      const permitId = newTransactionId();
      const permit = await roundTrip.exchange(
        await roundTrip.signedRequest(StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, echoAddress, permitId)], credential, permitId),
      );
      expect(outcome(permit.message)).toBe("success");
      const payload = Buffer.from("still relaying after the fuzz");
      roundTrip.sendRaw(sendIndication(echoAddress, payload));
      const echoUntil = Date.now() + 2_000;
      while (echoReceived.length === 0 && Date.now() < echoUntil) await sleep(10);
      expect(echoReceived.map((data) => data.toString())).toEqual([payload.toString()]);
      // And back: the peer answers through the relayed address; the client gets a Data indication.
      while ((await roundTrip.receive(0)) !== null);
      echoPeer.send(Buffer.from("pong"), roundTripRelayed.port, "127.0.0.1");
      const data = await roundTrip.receiveStun();
      expect(data.method).toBe(StunMethod.Data);

      // Drain what the fuzzing clients were sent, so the heap figure is the relay's and not our inboxes'.
      for (const client of [...stateless, stateful, checker]) while ((await client.receive(0)) !== null);
      const heapAfter = heapAfterGc();
      const failed = events.filter((event) => event.event === "request-failed");
      console.log(
        `fuzz (seed ${SEED}): UDP ${udpSent + 500} sent / ${udpReads()} read by the relay, kinds ${JSON.stringify(kinds)}; ` +
          `relay port ${relayPortSent} datagrams; streams ${streamBytes} bytes over 5 TCP + 4 TLS + 3 raw-to-TLS connections; ` +
          `peer got ${peerReceived} relayed datagrams; allocations now ${relay.allocationCount}; ` +
          `heap ${MB(heapBefore)} → ${MB(heapAfter)}; request-failed ${failed.length}${failed.length > 0 ? `: ${JSON.stringify(failed.slice(0, 5))}` : ""}`,
      );
      expect(udpSent).toBe(UDP_PACKETS);
      expect(udpReads()).toBeGreaterThanOrEqual(20_000);
      expect(escaped).toEqual([]);
    }, 60_000);
  });

  // -------------------------------------------------------------------------------------------------------------
  // 2b. One 64 KB datagram of distinct unknown comprehension-required attributes must cost the relay little.
  //
  // FAILS at the time of writing: decodeStunMessage (relay/stun/message.ts, the `!unknownComprehensionRequired
  // .includes(attributeType)` check in the attribute loop) is quadratic in the number of distinct unknown
  // attributes. A 65,507-byte datagram holds 16,371 of them, and decoding it takes ~115 ms of the relay's only
  // thread; it happens before authentication and before the unauthenticated rate limit, from any (spoofable)
  // source, over UDP, TCP and TLS. About 9 such datagrams a second (~5 Mbit/s) keep the relay fully busy.

  it("decodes a datagram full of distinct unknown attributes in linear time (no CPU amplification)", async () => {
    const { relay, port } = await startRelay(["--min-port=46060", "--max-port=46061"]);
    relays.push(relay);
    const count = Math.floor((65_507 - 20) / 4);
    const packet = Buffer.alloc(20 + count * 4);
    packet.writeUInt16BE(0x0001, 0); // Binding request
    packet.writeUInt16BE(count * 4, 2);
    packet.writeUInt32BE(0x2112a442, 4);
    for (let i = 0; i < count; i++) packet.writeUInt16BE(0x4000 + i, 20 + i * 4); // all comprehension-required, none understood
    const attacker = await udpClient(port);
    const victim = await udpClient(port);
    const reads = countUdpReads(relay);
    const DATAGRAMS = 16;
    // CPU time of this process (relay and test alike), not wall time: other suites running beside
    // this one on the same cores stretch wall time, but add nothing to what this process spends.
    const cpuBefore = process.cpuUsage();
    // One at a time, each sent once the relay has read the one before (a 64 KB datagram fills much of a socket buffer).
    const until = Date.now() + 8_000;
    for (let i = 0; i < DATAGRAMS && Date.now() < until; i++) {
      attacker.sendRaw(packet);
      // Waits without spinning, so the wait adds no CPU of its own to the figure below.
      while (reads() <= i && Date.now() < until) await sleep(1);
    }
    const attackRead = reads();
    const answer = await victim.exchange(bindingRequest());
    const cpu = process.cpuUsage(cpuBefore);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(`unknown attributes: ${DATAGRAMS} datagrams of ${count} distinct unknown attributes read ${attackRead}, then a Binding answered; ${cpuMs.toFixed(0)} ms of CPU`);
    expect(attackRead).toBe(DATAGRAMS);
    expect(outcome(answer.message)).toBe("success");
    // A linear decoder needs ~1 ms of CPU a datagram; the quadratic one ~115 ms (~1.8 s for all 16).
    expect(cpuMs).toBeLessThan(500);
  }, 20_000);

  // -------------------------------------------------------------------------------------------------------------
  // 3. The unauthenticated flood, measured in a process of its own.

  it("keeps its heap flat and its answers rate-limited under a 100,000-request unauthenticated flood", async () => {
    const REQUESTS = 100_000;
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["--expose-gc", "--import", "tsx", join("test", "relay", "abuse", "flood.ts"), String(REQUESTS)],
        { cwd: fileURLToPath(new URL("../..", import.meta.url)), timeout: 50_000, maxBuffer: 1 << 20 },
        (error, stdout, stderr) => (error !== null ? reject(new Error(`${String(error)}\n${stdout}\n${stderr}`)) : resolve(stdout)),
      );
    });
    const line = output.trim().split("\n").at(-1)!;
    const result = JSON.parse(line) as {
      requests: { allocates: number; bindings: number; stale: number };
      sent: number;
      read: number;
      answers: number;
      runMs: number;
      floodMs: number;
      heapBefore: number;
      heapAfter: number;
      heapDelta: number;
      stillAnswers: boolean;
      allocationCount: number;
      events: string[];
      problems: string[];
    };
    // Burst 40, then 20 a second, over the whole run (warm-up included), plus one for the clock's rounding.
    const bound = 40 + Math.ceil((20 * result.runMs) / 1000) + 1;
    console.log(
      `flood: ${JSON.stringify(result.requests)} sent ${result.sent}, read ${result.read} in ${result.floodMs} ms; ` +
        `answers ${result.answers} (bound ${bound} over ${result.runMs} ms); heap ${MB(result.heapBefore)} → ${MB(result.heapAfter)} (Δ ${MB(result.heapDelta)})`,
    );
    expect(result.requests).toEqual({ allocates: REQUESTS, bindings: REQUESTS, stale: REQUESTS / 10 });
    expect(result.read).toBeGreaterThanOrEqual(result.sent);
    expect(result.answers).toBeGreaterThanOrEqual(40);
    expect(result.answers).toBeLessThanOrEqual(bound);
    expect(result.heapDelta).toBeLessThan(10 * 1024 * 1024);
    expect(result.stillAnswers).toBe(true);
    expect(result.allocationCount).toBe(0);
    expect(result.events).toEqual([]);
    expect(result.problems).toEqual([]);
  }, 60_000);
});
