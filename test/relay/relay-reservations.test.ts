/**
 * Port reservations (RFC 8656 §7.2): EVEN-PORT with the R bit gives an even relay port P and holds P+1
 * under a RESERVATION-TOKEN; an Allocate carrying the token gets exactly P+1, once. Over real UDP on
 * loopback, with the held port checked from outside (can another socket bind it?) and every way a
 * reservation ends: used, expired, the relay stopping, a drain, a lost race.
 *
 * Every relay here gets a port range of its own (48400-48599, no other suite uses it), so a port
 * being free or taken is about this relay alone. Every wait is bounded.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { ClientLink } from "../../relay/allocation/allocation.js";
import { RESERVATION_LIFETIME_MS, ReservationTable } from "../../relay/allocation/reservations.js";
import { createRelayMetrics } from "../../relay/ops/metrics.js";
import type { RelayServer } from "../../relay/server/relay-server.js";
import { failure } from "../../relay/server/responses.js";
import { encodeEvenPort, encodeLifetime, encodeRequestedAddressFamily, encodeRequestedTransport, encodeXorAddress } from "../../relay/stun/attributes.js";
import type { StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { TurnTestClient, UdpPeer, canBindUdp, errorCodeOf, mint, sendIndication, startRelay, xorAddressOf } from "./turn-client.js";

const UDP = encodeRequestedTransport(17);
const WAIT_MS = 2_000;

const relays: RelayServer[] = [];
const closers: (() => void)[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const close of closers.splice(0)) {
    try {
      close();
    } catch {
      // already closed by the test
    }
  }
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
});

/** A relay on 127.0.0.1 with the relay ports `minPort`..`maxPort` and `flags`; stopped after the test. */
async function relayWith(minPort: number, maxPort: number, flags: string[] = []) {
  const started = await startRelay(["--allow-loopback-peers", `--min-port=${minPort}`, `--max-port=${maxPort}`, ...flags]);
  relays.push(started.relay);
  return started;
}

async function clientOf(port: number): Promise<TurnTestClient> {
  const client = await TurnTestClient.open(port);
  closers.push(() => client.close());
  return client;
}

function allocate(client: TurnTestClient, credential: TurnCredential, extra: StunAttributeValue[] = []): Promise<StunMessage> {
  return client.request(StunMethod.Allocate, [UDP, ...extra], credential);
}

function tokenAttribute(token: Buffer): StunAttributeValue {
  return { type: AttributeType.ReservationToken, value: token };
}

/** The RESERVATION-TOKEN of an answer, as sent, or undefined. */
function tokenOf(message: StunMessage): Buffer | undefined {
  const attribute = findAttribute(message, AttributeType.ReservationToken);
  return attribute === undefined ? undefined : Buffer.from(message.buffer.subarray(attribute.offset, attribute.offset + attribute.length));
}

function outcome(message: StunMessage): string {
  return message.messageClass === StunClass.SuccessResponse ? "success" : `error ${errorCodeOf(message)}`;
}

/** Waits for `condition`, at most `timeoutMs` of real time (performance.now: tests move Date.now). */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = WAIT_MS): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return condition();
}

/** Runs the relay's periodic sweep now, as its 1-second timer would. */
function sweepNow(relay: RelayServer): void {
  (relay as unknown as { sweep(): void }).sweep();
}

/** An R-bit Allocate: its answer, relayed port and token. */
async function reserve(client: TurnTestClient, credential: TurnCredential) {
  const answer = await allocate(client, credential, [encodeEvenPort(true)]);
  expect(outcome(answer)).toBe("success");
  const port = xorAddressOf(answer)!.port;
  const token = tokenOf(answer);
  expect(token, "a RESERVATION-TOKEN in the answer").toBeDefined();
  return { answer, port, token: token! };
}

describe("EVEN-PORT with the R bit and RESERVATION-TOKEN", () => {
  it("gives an even port and an 8-byte token, and holds the next port: bound by the relay, out of the pool", async () => {
    const { relay, port } = await relayWith(48400, 48409);
    const free = relay.freePorts;
    const { port: relayed, token } = await reserve(await clientOf(port), await mint("rtp"));
    expect(relayed % 2).toBe(0);
    expect(token.length).toBe(8);
    expect(relay.freePorts).toBe(free - 2);
    expect(await canBindUdp(relayed + 1), "the reserved port is bound by the relay").toBe(false);
  });

  it("an Allocate with the token, from another client, gets exactly the next port, and relays through it", async () => {
    const { relay, port } = await relayWith(48410, 48419);
    const credential = await mint("rtcp");
    const { port: relayed, token } = await reserve(await clientOf(port), credential);
    const free = relay.freePorts;
    const rtcp = await clientOf(port);
    const answer = await allocate(rtcp, credential, [tokenAttribute(token)]);
    expect(outcome(answer)).toBe("success");
    expect(xorAddressOf(answer)).toEqual({ family: 4, address: "127.0.0.1", port: relayed + 1 });
    expect(tokenOf(answer), "no token of its own: it made no reservation").toBeUndefined();
    // The held port became an allocation: nothing more was taken from the pool.
    expect(relay.freePorts).toBe(free);

    const peer = await UdpPeer.open();
    closers.push(() => peer.close());
    const peerAddress = { family: 4 as const, address: "127.0.0.1", port: peer.port };
    const permit = await rtcp.request(StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, peerAddress, Buffer.alloc(12))], credential);
    expect(outcome(permit)).toBe("success");
    rtcp.sendRaw(sendIndication(peerAddress, Buffer.from("rtcp")));
    expect(await peer.waitFor(1)).toBe(true);
    expect(peer.received[0]!.port).toBe(relayed + 1);
    expect(peer.received[0]!.data.toString()).toBe("rtcp");
  });

  it("metrics: reservations held now, and issued / used / expired", async () => {
    const { relay, port } = await relayWith(48530, 48539);
    const metrics = createRelayMetrics(relay);
    const credential = await mint("counted");
    const { token } = await reserve(await clientOf(port), credential);
    await reserve(await clientOf(port), credential);
    const held = await metrics.registry.metrics();
    expect(held).toMatch(/^relay_port_reservations_active 2$/m);
    expect(held).toMatch(/^relay_port_reservations_total\{result="issued"\} 2$/m);
    expect(outcome(await allocate(await clientOf(port), credential, [tokenAttribute(token)]))).toBe("success");
    const used = await metrics.registry.metrics();
    expect(used).toMatch(/^relay_port_reservations_active 1$/m);
    expect(used).toMatch(/^relay_port_reservations_total\{result="used"\} 1$/m);
    expect(used).toMatch(/^relay_port_reservations_total\{result="expired"\} 0$/m);
  });

  it("a token is honoured once: its second use gets 508", async () => {
    const { port } = await relayWith(48420, 48429);
    const credential = await mint("twice");
    const { token } = await reserve(await clientOf(port), credential);
    expect(outcome(await allocate(await clientOf(port), credential, [tokenAttribute(token)]))).toBe("success");
    expect(outcome(await allocate(await clientOf(port), credential, [tokenAttribute(token)]))).toBe("error 508");
  });

  it("an unknown token gets 508 and allocates nothing", async () => {
    const { relay, port } = await relayWith(48430, 48439);
    const free = relay.freePorts;
    const answer = await allocate(await clientOf(port), await mint("stranger"), [tokenAttribute(Buffer.from("0123456789abcdef", "hex"))]);
    expect(outcome(answer)).toBe("error 508");
    expect(relay.allocationCount).toBe(0);
    expect(relay.freePorts).toBe(free);
  });

  const badRequests: [string, StunAttributeValue[]][] = [
    ["RESERVATION-TOKEN with EVEN-PORT", [encodeEvenPort(false)]],
    ["RESERVATION-TOKEN with EVEN-PORT's R bit", [encodeEvenPort(true)]],
    ["RESERVATION-TOKEN with REQUESTED-ADDRESS-FAMILY", [encodeRequestedAddressFamily(4)]],
  ];
  it.each(badRequests)("%s is 400, and the reservation stays usable", async (_, extra) => {
    const { port } = await relayWith(48440, 48449);
    const credential = await mint("mixed");
    const { port: relayed, token } = await reserve(await clientOf(port), credential);
    expect(outcome(await allocate(await clientOf(port), credential, [tokenAttribute(token), ...extra]))).toBe("error 400");
    expect(xorAddressOf(await allocate(await clientOf(port), credential, [tokenAttribute(token)]))?.port).toBe(relayed + 1);
  });

  it("a RESERVATION-TOKEN that is not 8 bytes is 400", async () => {
    const { port } = await relayWith(48450, 48459);
    expect(outcome(await allocate(await clientOf(port), await mint("short"), [tokenAttribute(Buffer.alloc(4))]))).toBe("error 400");
  });

  it("expires after 30 s: the token gets 508 and the port goes back to the pool (bindable again)", async () => {
    const { relay, port } = await relayWith(48460, 48469);
    const credential = await mint("late", 3600);
    const { port: relayed, token } = await reserve(await clientOf(port), credential);
    const free = relay.freePorts;
    // The relay's clock jumps ahead while real time keeps running, so every bounded wait still ends.
    const realNow = Date.now.bind(Date);
    const clock = vi.spyOn(Date, "now");
    clock.mockImplementation(() => realNow() + 29_000);
    sweepNow(relay);
    expect(relay.freePorts, "still held at 29 s").toBe(free);
    clock.mockImplementation(() => realNow() + 30_500);
    // Refused from the moment it runs out, before any sweep...
    expect(outcome(await allocate(await clientOf(port), credential, [tokenAttribute(token)]))).toBe("error 508");
    expect(relay.allocationCount).toBe(1);
    // ...and its port is freed by the next sweep.
    sweepNow(relay);
    expect(await until(() => relay.freePorts === free + 1), "the port is back in the pool").toBe(true);
    expect(await canBindUdp(relayed + 1)).toBe(true);
    expect(relay.stats.reservations).toEqual({ issued: 1, used: 0, expired: 1 });
  });

  it("stop() releases reserved ports", async () => {
    const { relay, port } = await relayWith(48470, 48479);
    const { port: relayed } = await reserve(await clientOf(port), await mint("stopper"));
    expect(await canBindUdp(relayed + 1)).toBe(false);
    await relay.stop();
    expect(await canBindUdp(relayed), "the allocation's port").toBe(true);
    expect(await canBindUdp(relayed + 1), "the reserved port").toBe(true);
  });

  it("an Allocate that takes the reservation and then fails (the relay drains) releases the port", async () => {
    const { relay, port } = await relayWith(48480, 48489);
    const credential = await mint("drained");
    const { port: relayed, token } = await reserve(await clientOf(port), credential);
    const free = relay.freePorts;
    relay.drain();
    expect(outcome(await allocate(await clientOf(port), credential, [tokenAttribute(token)]))).toBe("error 508");
    expect(await until(() => relay.freePorts === free + 1), "the reserved port is back in the pool").toBe(true);
    expect(await canBindUdp(relayed + 1)).toBe(true);
  });

  it("an R-bit allocation refused once its ports are bound (another request won meanwhile) releases both ports", async () => {
    const { relay } = await relayWith(48500, 48509);
    const free = relay.freePorts;
    const link: ClientLink = {
      transport: "udp",
      address: { family: 4, address: "127.0.0.1", port: 9 },
      listener: "127.0.0.1:3478",
      key: "udp:127.0.0.1:9@127.0.0.1:3478",
      closed: false,
      sendStun: () => {},
      sendDataIndication: () => {},
      sendChannelData: () => {},
    };
    const owner = { username: "late", userId: "late", key: Buffer.alloc(16), credentialExpiresAt: Math.floor(Date.now() / 1000) + 600 };
    const opened = await relay.openAllocation(link, owner, {
      family: 4,
      evenPort: true,
      reserveNextPort: true,
      reservationToken: null,
      lifetimeMs: 600_000,
      transactionId: "00",
      digest: "test",
      // The server asks only after binding: answer as if another Allocate of this client had won meanwhile.
      admit: () => failure(437, "Allocation Mismatch"),
    });
    expect("ok" in opened && !opened.ok && opened.code).toBe(437);
    expect(relay.allocationCount).toBe(0);
    expect(relay.reservations.size).toBe(0);
    expect(await until(() => relay.freePorts === free), `free ports ${relay.freePorts}, expected ${free}`).toBe(true);
  });

  it("three R-bit Allocates of one client at once: one wins, the others hold no port", async () => {
    const { relay, port } = await relayWith(48490, 48499);
    const free = relay.freePorts;
    const client = await clientOf(port);
    const credential = await mint("racer");
    await client.signedRequest(StunMethod.Allocate, [UDP], credential); // learns the nonce first
    // Three Allocates of one client, sent together: one wins, the others find it once their ports are bound.
    const requests = await Promise.all([0, 1, 2].map(() => client.signedRequest(StunMethod.Allocate, [UDP, encodeEvenPort(true)], credential)));
    for (const request of requests) client.sendRaw(request);
    const answers: StunMessage[] = [];
    for (let i = 0; i < 3; i++) answers.push(await client.receiveStun());
    expect(answers.map(outcome).sort()).toEqual(["error 437", "error 437", "success"]);
    expect(await until(() => relay.freePorts === free - 2), `free ports ${relay.freePorts}, expected ${free - 2}`).toBe(true);
  });

  it("with --user-quota, a user holds at most that many reservations; plain allocations still work", async () => {
    const { port } = await relayWith(48510, 48529, ["--user-quota=2"]);
    const credential = await mint("churner");
    for (let i = 0; i < 2; i++) {
      const client = await clientOf(port);
      await reserve(client, credential);
      expect(outcome(await client.request(StunMethod.Refresh, [encodeLifetime(0)], credential))).toBe("success");
    }
    expect(outcome(await allocate(await clientOf(port), credential, [encodeEvenPort(true)]))).toBe("error 486");
    expect(outcome(await allocate(await clientOf(port), credential))).toBe("success");
  });
});

describe("ReservationTable (the bookkeeping, with the time passed in)", () => {
  const T0 = 1_000_000;
  const table = (perUser = 0) => new ReservationTable<string>({ lifetimeMs: RESERVATION_LIFETIME_MS, perUser });

  it("holds for RESERVATION_LIFETIME_MS (30 s): honoured at 30 s - 1 ms, refused from 30 s on", () => {
    expect(RESERVATION_LIFETIME_MS).toBe(30_000);
    const reservations = table();
    const early = reservations.add("port A", "u", {}, T0);
    const late = reservations.add("port B", "u", {}, T0);
    expect(early.length).toBe(8);
    expect(early.equals(late)).toBe(false);
    expect(reservations.take(early, T0 + RESERVATION_LIFETIME_MS - 1)).toBe("port A");
    expect(reservations.take(late, T0 + RESERVATION_LIFETIME_MS)).toBeUndefined();
    // An expired reservation is not handed out, but stays until a sweep releases what it holds.
    expect(reservations.size).toBe(1);
    expect(reservations.sweep(T0 + RESERVATION_LIFETIME_MS - 1)).toEqual([]);
    expect(reservations.sweep(T0 + RESERVATION_LIFETIME_MS)).toEqual(["port B"]);
    expect(reservations.size).toBe(0);
    expect(reservations.sweep(T0 + 10 * RESERVATION_LIFETIME_MS)).toEqual([]);
  });

  it("honours a token once; an unknown token is refused", () => {
    const reservations = table();
    const token = reservations.add("port", "u", {}, T0);
    expect(reservations.take(Buffer.alloc(8), T0)).toBeUndefined();
    expect(reservations.take(Buffer.from(token), T0 + 1)).toBe("port");
    expect(reservations.take(token, T0 + 2)).toBeUndefined();
    expect(reservations.sweep(T0 + RESERVATION_LIFETIME_MS)).toEqual([]);
  });

  it("knows the token an allocation made while it is held", () => {
    const reservations = table();
    const maker = {};
    const token = reservations.add("port", "u", maker, T0);
    expect(reservations.tokenMadeBy(maker, T0 + 5)?.equals(token)).toBe(true);
    expect(reservations.tokenMadeBy({}, T0 + 5)).toBeUndefined();
    expect(reservations.tokenMadeBy(maker, T0 + RESERVATION_LIFETIME_MS)).toBeUndefined();
    reservations.take(token, T0 + 6);
    expect(reservations.tokenMadeBy(maker, T0 + 7)).toBeUndefined();
  });

  it("limits reservations per user when asked (--user-quota); using, expiring or clearing one makes room", () => {
    const reservations = table(2);
    const first = reservations.add("a", "u", {}, T0);
    reservations.add("b", "u", {}, T0 + 10);
    expect(reservations.hasRoomFor("u")).toBe(false);
    expect(reservations.hasRoomFor("other")).toBe(true);
    reservations.take(first, T0 + 1);
    expect(reservations.hasRoomFor("u")).toBe(true);
    reservations.add("c", "u", {}, T0 + 20);
    expect(reservations.hasRoomFor("u")).toBe(false);
    expect(reservations.sweep(T0 + 10 + RESERVATION_LIFETIME_MS)).toEqual(["b"]);
    expect(reservations.hasRoomFor("u")).toBe(true);
    expect(reservations.clear()).toEqual(["c"]);
    expect(reservations.size).toBe(0);
    expect(table(0).hasRoomFor("u")).toBe(true);
  });
});
