/**
 * Hostile UDP against the relay, on the implementation this run uses (TEST_UDP_IO: the node project
 * runs it on the native addon, node-dgram on Node's dgram):
 *
 * - Datagrams from source port 0. No ordinary socket can send one, so a raw socket (Python's
 *   SOCK_RAW with IPPROTO_UDP and a hand-built UDP header) sends it to 127.0.0.1; that needs root,
 *   as in CI. An answer to port 0 is no datagram anyone can receive, and on dgram it once threw
 *   ERR_SOCKET_BAD_PORT inside the asynchronous request handler, which ended the process. Now the
 *   listener drops such datagrams and counts them, and a relay socket drops them from peers.
 * - The same through the listener's handler directly (no root needed), for every message kind.
 * - A request whose answer throws on the way out: reported as request-failed, never an unhandled
 *   rejection (which ends a Node process by default).
 * - A request whose handler throws (authenticated, answered without waiting on anything): 500 Server
 *   Error, reported, and the same transaction sent again is judged afresh.
 *
 * Escaped errors (uncaughtException, unhandledRejection) are recorded and fail the test that made
 * them. Relay ports 48600-48649 (native) and 48650-48699 (dgram) are this file's own.
 */
import { execFile } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import type { RelayEvent, RelayServer } from "../../relay/server/relay-server.js";
import { encodeChannelNumber, encodeLifetime, encodeRequestedTransport, encodeXorAddress, type TransportAddress } from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import type { RelayUdpSocket } from "../../relay/transport/udp-socket.js";
import { channelDataHeader } from "../../relay/turn/channel-data.js";
import { TEST_UDP_IO, TurnTestClient, UdpPeer, errorCodeOf, mint, recordEscapedErrors, sendIndication, startRelay, xorAddressOf } from "./turn-client.js";

const MIN_PORT = TEST_UDP_IO === "native" ? 48600 : 48650;
const RAW_SEND_TIMEOUT_MS = 5_000;
/** How long a dropped datagram gets to show an effect it should not have. */
const SETTLE_MS = 200;

const escaped = recordEscapedErrors();
const relays: RelayServer[] = [];
const closers: (() => void)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
  escaped.length = 0;
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function relayOnLoopback(extra: string[] = [], onEvent?: (event: RelayEvent) => void): Promise<{ relay: RelayServer; port: number }> {
  const started = await startRelay([`--min-port=${MIN_PORT}`, `--max-port=${MIN_PORT + 49}`, ...extra], onEvent);
  relays.push(started.relay);
  return started;
}

async function client(port: number): Promise<TurnTestClient> {
  const opened = await TurnTestClient.open(port);
  closers.push(() => opened.close());
  return opened;
}

async function peer(): Promise<UdpPeer> {
  const opened = await UdpPeer.open();
  closers.push(() => opened.close());
  return opened;
}

function binding(): Buffer {
  return buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() });
}

/** The relay still answers a Binding from an ordinary client. */
async function answersBinding(port: number): Promise<boolean> {
  const probe = await client(port);
  probe.sendRaw(binding());
  const answer = await probe.receive();
  return answer !== null;
}

// ---------------------------------------------------------------------------------------------------------------
// Source port 0 over a raw socket.

/**
 * One UDP datagram from 127.0.0.1 port 0 to 127.0.0.1:`port`. The kernel writes the IP header; the
 * UDP header is ours (checksum 0: none, which IPv4 allows).
 */
const RAW_SENDER = [
  "import socket, struct, sys",
  "port, payload = int(sys.argv[1]), bytes.fromhex(sys.argv[2])",
  "raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)",
  "raw.sendto(struct.pack('!HHHH', 0, port, 8 + len(payload), 0) + payload, ('127.0.0.1', 0))",
].join("\n");

function sendFromPortZero(port: number, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("python3", ["-c", RAW_SENDER, String(port), payload.toString("hex")], { timeout: RAW_SEND_TIMEOUT_MS }, (error, _stdout, stderr) =>
      error === null ? resolve() : reject(new Error(`python3 could not send from port 0: ${error.message} ${stderr}`)),
    );
  });
}

/** Null when this machine can send from port 0 (root and Python's raw sockets); otherwise why not. */
async function rawUdpUnavailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return "a datagram from source port 0 needs a raw socket, which needs root";
  try {
    await new Promise<void>((resolve, reject) =>
      execFile("python3", ["-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP).close()"], { timeout: RAW_SEND_TIMEOUT_MS }, (error, _stdout, stderr) =>
        error === null ? resolve() : reject(new Error(stderr || error.message)),
      ),
    );
    return null;
  } catch (error) {
    return `python3 cannot open a raw UDP socket: ${error instanceof Error ? error.message.trim() : String(error)}`;
  }
}

const rawUnavailable = await rawUdpUnavailable();
// As test/node/netns.ts does it: in CI a machine that cannot run the suite fails; elsewhere it is skipped, saying why.
if (rawUnavailable !== null) {
  if (process.env["CI"]) {
    describe("datagrams from source port 0", () => {
      it("needs root and python3", () => {
        throw new Error(`datagrams from source port 0 cannot be sent on this machine: ${rawUnavailable}`);
      });
    });
  } else {
    console.warn(`relay-udp-abuse: the raw-socket tests are skipped: ${rawUnavailable}`);
  }
}

describe.skipIf(rawUnavailable !== null)(`datagrams from source port 0 on ${TEST_UDP_IO}`, () => {
  it("a Binding and an Allocate from port 0 are dropped and counted; nothing escapes and the relay answers the next client", async () => {
    const { relay, port } = await relayOnLoopback();
    await sendFromPortZero(port, binding());
    await sendFromPortZero(port, buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [encodeRequestedTransport(17)] }));
    await sleep(SETTLE_MS);
    expect(escaped).toEqual([]);
    expect(relay.stats.udpSourcePortZero).toBe(2);
    expect(await answersBinding(port)).toBe(true);
    expect(escaped).toEqual([]);
  });

  it("a datagram from a permitted peer's port 0 is dropped at the relay socket, and the peer's real port still gets through", async () => {
    const { port } = await relayOnLoopback(["--allow-loopback-peers"]);
    const credential = await mint("port-zero-peer");
    const owner = await client(port);
    const answer = await owner.request(StunMethod.Allocate, [encodeRequestedTransport(17)], credential);
    const relayed = xorAddressOf(answer);
    expect(relayed, "Allocate failed").toBeDefined();
    const far = await peer();
    const permitted = await owner.request(StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, { family: 4, address: "127.0.0.1", port: far.port }, Buffer.alloc(12))], credential);
    expect(permitted.messageClass).toBe(StunClass.SuccessResponse);

    await sendFromPortZero(relayed!.port, Buffer.from("from port zero"));
    expect(await owner.receive(SETTLE_MS), "a Data indication for a peer at port 0 reached the client").toBeNull();
    far.send(Buffer.from("from the peer"), relayed!.port);
    expect(await owner.receive(), "the permitted peer's datagram did not arrive").not.toBeNull();
    expect(escaped).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The same at the listener's handler, without a raw socket.

describe(`the UDP listener's handler given source port 0 on ${TEST_UDP_IO}`, () => {
  const peerAddress: TransportAddress = { family: 4, address: "127.0.0.1", port: 9 };
  const kinds: [string, () => Buffer][] = [
    ["a Binding", binding],
    ["an Allocate without credentials", () => buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [encodeRequestedTransport(17)] })],
    ["a ChannelBind without credentials", () => buildStunMessage({ method: StunMethod.ChannelBind, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [encodeChannelNumber(0x4000), encodeXorAddress(AttributeType.XorPeerAddress, peerAddress, Buffer.alloc(12))] })],
    ["a Send indication", () => sendIndication(peerAddress, Buffer.from("data"))],
    ["ChannelData", () => Buffer.concat([channelDataHeader(0x4000, 4), Buffer.from("data")])],
  ];

  it.each(kinds)("drops %s, counts it, and lets nothing escape", async (_, datagram) => {
    const { relay, port } = await relayOnLoopback();
    const listener = (relay as unknown as { listeners: RelayUdpSocket[] }).listeners[0]!;
    const bytes = datagram();
    expect(() => listener.onDatagram(bytes, 0, bytes.length, "127.0.0.1", 0)).not.toThrow();
    await sleep(SETTLE_MS);
    expect(escaped).toEqual([]);
    expect(relay.stats.udpSourcePortZero).toBe(1);
    expect(await answersBinding(port)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// An answer that cannot be sent.

describe(`a request whose answer throws on the way out, on ${TEST_UDP_IO}`, () => {
  it("is reported as request-failed, nothing escapes, and the next request is answered", async () => {
    const events: RelayEvent[] = [];
    const { relay, port } = await relayOnLoopback([], (event) => events.push(event));
    const listener = (relay as unknown as { listeners: RelayUdpSocket[] }).listeners[0]!;
    // Whatever might still throw in a send one day (the sockets themselves no longer do).
    const send = listener.send.bind(listener);
    listener.send = () => {
      throw new Error("the send failed");
    };
    const asker = await client(port);
    asker.sendRaw(binding());
    expect(await asker.receive(SETTLE_MS)).toBeNull();
    expect(escaped).toEqual([]);
    expect(events.filter((event) => event.event === "request-failed")).toEqual([
      expect.objectContaining({ event: "request-failed", client: `udp:127.0.0.1:${asker.port}@127.0.0.1:${port}`, error: "Error: the send failed" }),
    ]);
    listener.send = send;
    expect(await answersBinding(port)).toBe(true);
  });
});

describe(`a request whose handler throws, on ${TEST_UDP_IO}`, () => {
  it("gets 500 Server Error, is reported as request-failed, and the same transaction resent is judged afresh", async () => {
    const events: RelayEvent[] = [];
    const { relay, port } = await relayOnLoopback([], (event) => events.push(event));
    const asker = await client(port);
    const credential = await mint();
    const allocated = await asker.request(StunMethod.Allocate, [encodeRequestedTransport(17)], credential);
    expect(allocated.messageClass).toBe(StunClass.SuccessResponse);

    // A Refresh to lifetime 0 ends the allocation through closeAllocation: make that throw once.
    const closeAllocation = relay.closeAllocation.bind(relay);
    relay.closeAllocation = () => {
      throw new Error("closing failed");
    };
    const deletion = await asker.signedRequest(StunMethod.Refresh, [encodeLifetime(0)], credential);
    const failed = (await asker.exchange(deletion)).message;
    expect(failed.messageClass).toBe(StunClass.ErrorResponse);
    expect(errorCodeOf(failed)).toBe(500);
    expect(events.filter((event) => event.event === "request-failed")).toEqual([
      expect.objectContaining({ event: "request-failed", method: StunMethod.Refresh, error: "Error: closing failed" }),
    ]);
    expect(relay.allocationCount).toBe(1);

    // Not cached as that transaction's answer: the same bytes again are handled, and succeed.
    relay.closeAllocation = closeAllocation;
    const retried = (await asker.exchange(deletion)).message;
    expect(retried.messageClass).toBe(StunClass.SuccessResponse);
    expect(relay.allocationCount).toBe(0);
    expect(escaped).toEqual([]);
  });
});
