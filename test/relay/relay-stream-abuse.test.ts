/**
 * The relay's TCP and TLS listeners against hostile clients and broken networks (issue 13), over real
 * sockets on loopback only (127.0.0.1, and 127.0.0.2 as a second source address):
 * - a client that stops reading while its peer floods it: the relay's per-connection backlog stays
 *   bounded, relayed data over the bound is dropped and counted, STUN answers are still written (or
 *   the connection is closed, never an answer silently dropped), and a backlog that does not drain
 *   in time closes the connection and ends its allocation;
 * - an Allocate whose connection is reset while it is being authenticated leaves no allocation and
 *   no relay port behind;
 * - a frame that never completes, a connection that never allocates, a TLS handshake that never
 *   finishes: each is closed within its bound;
 * - one source address cannot hold more than --max-connections-per-ip connections across TCP and
 *   TLS, and another address is still served.
 * It runs on the TCP implementation this run uses (TEST_TCP_IO: the node project the native addon's,
 * node-dgram Node's net). Relay ports 38000-38199 (native) and 38200-38399 (net) are this suite's own.
 * Every wait and loop is bounded; every socket is closed.
 */
import { connect as netConnect, Socket as NetSocket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import { parseRelayArgs } from "../../relay/config.js";
import { createRelayMetrics } from "../../relay/ops/metrics.js";
import { RelayServer, type ListenerAddress, type StreamLimits } from "../../relay/server/relay-server.js";
import { encodeChannelNumber, encodeRequestedTransport, encodeText, encodeXorAddress, type TransportAddress } from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey } from "../../relay/stun/integrity.js";
import { decodeStunMessage } from "../../relay/stun/message.js";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import { REALM, SECRET, TEST_TCP_IO, TEST_UDP_IO, TurnTestClient, UdpPeer, mint, testCertificate, textOf, xorAddressOf } from "./turn-client.js";

const MIN_PORT = TEST_TCP_IO === "native" ? 38000 : 38200;
const MAX_PORT = MIN_PORT + 199;
const PORTS = MAX_PORT - MIN_PORT + 1;
const UDP = encodeRequestedTransport(17);
const LOOPBACK = "127.0.0.1";
const CHANNEL = 0x4001;
const ARRIVE_MS = 2_000;
/** What a peer floods a paused client with: far more than any socket buffer holds. */
const FLOOD_BYTES = 60 * 1024 * 1024;
const FLOOD_DATAGRAM = 1_200;
/** The flood stops after this long whatever it reached. */
const FLOOD_MS = 20_000;
/** Start tries at a free listening port, as startRelay does. */
const START_ATTEMPTS = 5;

async function waitUntil(condition: () => boolean, timeoutMs: number, stepMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, stepMs));
  return condition();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the tests read of the relay beyond its public surface: its TURN connections. */
function connectionsOf(relay: RelayServer): Set<NetSocket> {
  return (relay as unknown as { connections: Set<NetSocket> }).connections;
}

interface Started {
  relay: RelayServer;
  listeners: ListenerAddress[];
  port(transport: "tcp" | "tls"): number;
}

const relays: RelayServer[] = [];
const sockets: NetSocket[] = [];
const clients: TurnTestClient[] = [];
const peers: UdpPeer[] = [];
const certificates: { remove(): void }[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const peer of peers.splice(0)) peer.close();
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
  for (const certificate of certificates.splice(0)) certificate.remove();
});

/** A relay on 127.0.0.1 listening on TCP and TLS (and UDP), its stream limits tuned by `tune` before it starts. */
async function startStreamRelay(extra: string[] = [], tune: (limits: StreamLimits) => void = () => {}): Promise<Started> {
  const certificate = testCertificate();
  certificates.push(certificate);
  const parsed = parseRelayArgs([
    "--listening-ip=127.0.0.1",
    "--listening-port=0",
    `--min-port=${MIN_PORT}`,
    `--max-port=${MAX_PORT}`,
    `--static-auth-secret=${SECRET}`,
    `--realm=${REALM}`,
    `--udp-io=${TEST_UDP_IO}`,
    `--tcp-io=${TEST_TCP_IO}`,
    "--allow-loopback-peers",
    ...certificate.flags,
    "--tls-listening-port=0",
    ...extra,
  ]);
  if (parsed.help) throw new Error("unexpected --help");
  for (let attempt = 1; ; attempt++) {
    const relay = new RelayServer(parsed.config);
    tune(relay.streamLimits);
    try {
      const listeners = await relay.start();
      relays.push(relay);
      return { relay, listeners, port: (transport) => listeners.find((listener) => listener.transport === transport)!.port };
    } catch (error) {
      await relay.stop();
      if ((error as NodeJS.ErrnoException).code === "EADDRINUSE" && attempt < START_ATTEMPTS) continue;
      throw error;
    }
  }
}

async function openClient(port: number, transport: "tcp" | "tls"): Promise<TurnTestClient> {
  const client = await TurnTestClient.openStream(port, transport);
  clients.push(client);
  return client;
}

async function openPeer(): Promise<UdpPeer> {
  const peer = await UdpPeer.open();
  peers.push(peer);
  return peer;
}

/** A signed request whose attributes depend on its transaction id, and its answer's class. */
async function signedOk(client: TurnTestClient, method: number, credential: TurnCredential, attributes: (id: Buffer) => StunAttributeValue[]): Promise<ReturnType<typeof decodeStunMessage>> {
  const transactionId = newTransactionId();
  const request = await client.signedRequest(method, attributes(transactionId), credential, transactionId);
  const { raw } = await client.exchange(request);
  const decoded = decodeStunMessage(raw);
  expect(decoded.ok && decoded.message.messageClass, `method ${method}`).toBe(StunClass.SuccessResponse);
  return decoded;
}

/** A client with an allocation and a channel bound to a loopback UDP peer; returns the relayed address and the credential. */
async function allocatedWithChannel(client: TurnTestClient, peer: UdpPeer, user: string): Promise<{ relayed: TransportAddress; credential: TurnCredential }> {
  const credential = await mint(user);
  const allocated = await signedOk(client, StunMethod.Allocate, credential, () => [UDP]);
  const relayed = allocated.ok ? xorAddressOf(allocated.message) : undefined;
  expect(relayed, "no XOR-RELAYED-ADDRESS").toBeDefined();
  const far: TransportAddress = { family: 4, address: LOOPBACK, port: peer.port };
  await signedOk(client, StunMethod.ChannelBind, credential, (id) => [encodeChannelNumber(CHANNEL), encodeXorAddress(AttributeType.XorPeerAddress, far, id)]);
  return { relayed: relayed!, credential };
}

function bindingRequest(transactionId = newTransactionId()): Buffer {
  return buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId, attributes: [] });
}

/**
 * The peer sends `FLOOD_BYTES` to the relayed port in bursts, yielding between them so the relay (in
 * this process) reads; `sample` runs after every burst. Stops at `FLOOD_MS` or when `stop()` says so.
 */
async function flood(peer: UdpPeer, relayedPort: number, sample: () => void, stop: () => boolean = () => false): Promise<number> {
  const payload = Buffer.alloc(FLOOD_DATAGRAM, 0x5a);
  const deadline = Date.now() + FLOOD_MS;
  let sent = 0;
  while (sent < FLOOD_BYTES && Date.now() < deadline && !stop()) {
    for (let i = 0; i < 32; i++) peer.socket.send(payload, relayedPort, LOOPBACK);
    sent += 32 * FLOOD_DATAGRAM;
    await new Promise((resolve) => setImmediate(resolve));
    sample();
  }
  return sent;
}

/** The relay-side socket of the one TURN connection the relay holds. */
function onlyConnection(relay: RelayServer): NetSocket | undefined {
  const all = [...connectionsOf(relay)];
  return all.length === 1 ? all[0] : undefined;
}

describe("backlog of a client that stops reading", () => {
  for (const transport of ["tcp", "tls"] as const) {
    it(`over ${transport}: stays within the bound while a peer floods ${FLOOD_BYTES / 1024 / 1024} MB, drops and counts the excess, and closes the connection when it does not drain`, async () => {
      const BACKLOG_TIMEOUT_MS = 1_500;
      const { relay, port } = await startStreamRelay([], (limits) => {
        limits.backlogTimeoutMs = BACKLOG_TIMEOUT_MS;
      });
      const bound = relay.streamLimits.backlogBytes;
      const client = await openClient(port(transport), transport);
      const peer = await openPeer();
      const { relayed } = await allocatedWithChannel(client, peer, `${transport}-flooded`);
      const relaySide = onlyConnection(relay);
      expect(relaySide, "the relay holds one connection").toBeDefined();

      (client.socket as NetSocket).pause();
      let highest = 0;
      const sample = () => {
        if (!relaySide!.destroyed) highest = Math.max(highest, relaySide!.writableLength);
      };
      const startedAt = Date.now();
      const sent = await flood(peer, relayed.port, sample, () => relaySide!.destroyed);
      sample();

      // The defect: without a bound the relay queued everything the peer sent (tens of MB).
      expect(highest, `relay-side backlog peaked at ${highest} bytes after ${sent} bytes flooded`).toBeLessThanOrEqual(bound);
      expect(relay.stats.streamBacklogDropped, "relayed data over the bound is dropped and counted").toBeGreaterThan(0);
      // Never drained: the connection goes, and its allocation and relay port with it.
      expect(await waitUntil(() => relaySide!.destroyed, BACKLOG_TIMEOUT_MS * 2 + ARRIVE_MS), "the stalled connection was not closed").toBe(true);
      expect(Date.now() - startedAt, "closed long before the backlog timeout").toBeGreaterThanOrEqual(BACKLOG_TIMEOUT_MS);
      expect(await waitUntil(() => relay.allocationCount === 0 && relay.freePorts === PORTS, ARRIVE_MS)).toBe(true);
      expect(relay.stats.streamClosed.backlog).toBe(1);
      const metrics = await createRelayMetrics(relay).registry.metrics();
      expect(metrics).toContain(`relay_stream_backlog_dropped_total ${relay.stats.streamBacklogDropped}\n`);
      expect(metrics).toContain('relay_stream_closed_total{reason="backlog"} 1\n');
    }, 60_000);

    it(`over ${transport}: still answers STUN while the backlog is full, and keeps a connection whose backlog drains in time`, async () => {
      const BACKLOG_TIMEOUT_MS = 1_500;
      const { relay, port } = await startStreamRelay([], (limits) => {
        limits.backlogTimeoutMs = BACKLOG_TIMEOUT_MS;
      });
      const bound = relay.streamLimits.backlogBytes;
      const client = await openClient(port(transport), transport);
      const peer = await openPeer();
      const { relayed } = await allocatedWithChannel(client, peer, `${transport}-slow`);
      const relaySide = onlyConnection(relay)!;

      (client.socket as NetSocket).pause();
      let highest = 0;
      const dropped = () => (relay.stats.streamBacklogDropped ?? 0) > 0;
      await flood(peer, relayed.port, () => (highest = Math.max(highest, relaySide.writableLength)), () => dropped() || highest > 4 * 1024 * 1024);
      expect(highest, `relay-side backlog peaked at ${highest} bytes`).toBeLessThanOrEqual(bound);
      expect(dropped()).toBe(true);

      // A request while the backlog is full: its answer is queued behind the data, not dropped.
      const transactionId = newTransactionId();
      client.sendRaw(bindingRequest(transactionId));
      (client.socket as NetSocket).resume();
      let answered = false;
      const deadline = Date.now() + BACKLOG_TIMEOUT_MS;
      while (!answered && Date.now() < deadline) {
        const frame = await client.receive(Math.max(1, deadline - Date.now()));
        if (frame === null) break;
        if (frame[0]! <= 0x03) {
          const decoded = decodeStunMessage(frame);
          answered = decoded.ok && decoded.message.transactionId.equals(transactionId) && decoded.message.messageClass === StunClass.SuccessResponse;
        }
      }
      expect(answered, "the Binding answer was lost").toBe(true);
      // The client read its backlog before the timeout: past it, it keeps its connection and its allocation.
      await sleep(BACKLOG_TIMEOUT_MS + 300);
      expect(relaySide.destroyed).toBe(false);
      expect(relay.allocationCount).toBe(1);
      expect(relay.stats.streamClosed.backlog).toBe(0);
    }, 60_000);

    it(`over ${transport}: closes the connection rather than drop a STUN answer once the backlog is past its hard bound`, async () => {
      const { relay, port } = await startStreamRelay([], (limits) => {
        limits.backlogTimeoutMs = 30_000;
      });
      const client = await openClient(port(transport), transport);
      const peer = await openPeer();
      const { relayed } = await allocatedWithChannel(client, peer, `${transport}-hard`);
      const relaySide = onlyConnection(relay)!;
      (client.socket as NetSocket).pause();
      await flood(peer, relayed.port, () => {}, () => (relay.stats.streamBacklogDropped ?? 0) > 0 || relaySide.writableLength > 4 * 1024 * 1024);
      // Answers the client does not read pile up on the full backlog; past the hard bound the relay hangs up.
      const answersNeeded = Math.ceil((relay.streamLimits.backlogHardBytes - relay.streamLimits.backlogBytes) / 32) + 500;
      const requests = Buffer.concat(Array.from({ length: answersNeeded }, () => bindingRequest()));
      client.sendRaw(requests);
      expect(await waitUntil(() => relaySide.destroyed, ARRIVE_MS * 2), `the connection stayed open with ${relaySide.writableLength} bytes queued`).toBe(true);
      expect(relay.stats.streamClosed.response_backlog).toBe(1);
      expect(await waitUntil(() => relay.allocationCount === 0, ARRIVE_MS)).toBe(true);
    }, 60_000);
  }
});

/** Does the 401 dance on `socket` and returns a signed Allocate for it. */
async function signedAllocateOn(socket: NetSocket | TLSSocket, credential: TurnCredential): Promise<Buffer> {
  const frames: Buffer[] = [];
  const framer = new StreamFramer((frame) => frames.push(Buffer.from(frame)));
  socket.on("data", (chunk: Buffer) => framer.push(chunk));
  socket.write(buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [UDP] }));
  expect(await waitUntil(() => frames.length > 0, ARRIVE_MS), "no 401").toBe(true);
  const decoded = decodeStunMessage(frames[0]!);
  if (!decoded.ok) throw new Error(decoded.reason);
  const realm = textOf(decoded.message, AttributeType.Realm)!;
  const nonce = textOf(decoded.message, AttributeType.Nonce)!;
  return buildStunMessage({
    method: StunMethod.Allocate,
    messageClass: StunClass.Request,
    transactionId: newTransactionId(),
    attributes: [UDP, encodeText(AttributeType.Username, credential.username), encodeText(AttributeType.Realm, realm), encodeText(AttributeType.Nonce, nonce)],
    messageIntegrityKey: longTermKey(credential.username, realm, credential.password),
    fingerprint: true,
  });
}

async function connected<T extends NetSocket>(socket: T, event: "connect" | "secureConnect"): Promise<T> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ARRIVE_MS} ms`)), ARRIVE_MS);
    socket.once(event, () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  return socket;
}

describe("an Allocate racing the close of its connection", () => {
  const TRIES = 20;
  for (const transport of ["tcp", "tls"] as const) {
    it(`over ${transport}: ${TRIES} signed Allocates each followed at once by a reset leave no allocation and no relay port behind`, async () => {
      const { relay, port } = await startStreamRelay();
      const credential = await mint(`${transport}-racer`);
      for (let attempt = 0; attempt < TRIES; attempt++) {
        const raw = netConnect({ host: LOOPBACK, port: port(transport) });
        raw.on("error", () => {});
        sockets.push(raw);
        await connected(raw, "connect");
        let stream: NetSocket | TLSSocket = raw;
        if (transport === "tls") {
          stream = tlsConnect({ socket: raw, rejectUnauthorized: false });
          stream.on("error", () => {});
          await connected(stream, "secureConnect");
        }
        const signed = await signedAllocateOn(stream, credential);
        stream.write(signed);
        // A reset straight after the Allocate: the relay reads the request, then the connection is gone.
        raw.resetAndDestroy();
      }
      // Authentication takes a moment; give every racing Allocate time to finish either way.
      await sleep(500);
      expect(await waitUntil(() => relay.allocationCount === 0, ARRIVE_MS), `${relay.allocationCount} of ${TRIES} allocations outlived their connection`).toBe(true);
      expect(await waitUntil(() => relay.freePorts === PORTS, ARRIVE_MS), `${PORTS - relay.freePorts} relay ports still held`).toBe(true);
    }, 60_000);
  }
});

describe("deadlines", () => {
  it("closes a connection whose frame does not complete in time, even while bytes keep dribbling in", async () => {
    const FRAME_TIMEOUT_MS = 500;
    const { relay, port } = await startStreamRelay([], (limits) => {
      limits.frameTimeoutMs = FRAME_TIMEOUT_MS;
    });
    const socket = await connected(netConnect({ host: LOOPBACK, port: port("tcp") }), "connect");
    sockets.push(socket);
    let closedAt = 0;
    socket.on("close", () => (closedAt = Date.now()));
    socket.on("error", () => {});
    // A ChannelData header announcing 1,000 bytes, then one byte every 100 ms: it would take 100 s.
    const header = Buffer.from([0x40, 0x01, 0x03, 0xe8]);
    const startedAt = Date.now();
    socket.write(header);
    for (let i = 0; i < 40 && closedAt === 0; i++) {
      await sleep(100);
      if (!socket.destroyed) socket.write(Buffer.from([0x00]));
    }
    expect(closedAt, "the connection with a never-ending frame is still open").toBeGreaterThan(0);
    // The deadline may be met up to twice over (one timer per connection, not one per frame), never less.
    expect(closedAt - startedAt).toBeGreaterThanOrEqual(FRAME_TIMEOUT_MS - 50);
    expect(closedAt - startedAt).toBeLessThan(2 * FRAME_TIMEOUT_MS + 1_000);
    expect(relay.stats.streamClosed.frame_timeout).toBe(1);
  }, 30_000);

  it("closes a connection that holds no allocation by --max-allocate-timeout, Bindings or not; one that allocated stays", async () => {
    const { relay, port } = await startStreamRelay(["--max-allocate-timeout=1"]);
    const idle = await openClient(port("tcp"), "tcp");
    const allocating = await openClient(port("tls"), "tls");
    const peer = await openPeer();
    const { credential } = await allocatedWithChannel(allocating, peer, "allocates-in-time");
    let closedAt = 0;
    idle.socket.on("close", () => (closedAt = Date.now()));
    const startedAt = Date.now();
    // Complete Binding requests every 250 ms: real traffic, but no allocation.
    for (let i = 0; i < 16 && closedAt === 0; i++) {
      idle.sendRaw(bindingRequest());
      await sleep(250);
    }
    expect(closedAt, "the connection without an allocation is still open").toBeGreaterThan(0);
    expect(closedAt - startedAt).toBeLessThan(1_000 + ARRIVE_MS);
    expect(relay.stats.streamClosed.allocate_timeout).toBe(1);
    // The connection that allocated in time outlives the deadline and still works.
    await signedOk(allocating, StunMethod.Refresh, credential, () => []);
    expect(relay.allocationCount).toBe(1);
  }, 30_000);

  it("closes a TLS connection whose handshake does not finish in time", async () => {
    const HANDSHAKE_TIMEOUT_MS = 500;
    const { relay, port } = await startStreamRelay([], (limits) => {
      limits.tlsHandshakeTimeoutMs = HANDSHAKE_TIMEOUT_MS;
    });
    // A plain TCP connection to the TLS port that never says ClientHello.
    const socket = await connected(netConnect({ host: LOOPBACK, port: port("tls") }), "connect");
    sockets.push(socket);
    socket.on("error", () => {});
    expect(await waitUntil(() => socket.destroyed || socket.readableEnded, HANDSHAKE_TIMEOUT_MS + ARRIVE_MS), "the silent TLS connection is still open").toBe(true);
    expect(await waitUntil(() => relay.stats.streamClosed.tls_handshake === 1, ARRIVE_MS)).toBe(true);
  }, 30_000);
});

describe("--max-connections-per-ip", () => {
  /** A raw connection from `localAddress`; resolves whether the relay kept it open for `watchMs`. */
  async function keptOpen(port: number, localAddress = LOOPBACK, watchMs = 400): Promise<{ socket: NetSocket; open: boolean }> {
    const socket = await connected(netConnect({ host: LOOPBACK, port, localAddress }), "connect");
    sockets.push(socket);
    socket.on("error", () => {});
    socket.resume();
    const closed = await waitUntil(() => socket.destroyed || socket.readableEnded, watchMs);
    return { socket, open: !closed };
  }

  async function bindingAnswered(port: number, localAddress: string): Promise<boolean> {
    const socket = await connected(netConnect({ host: LOOPBACK, port, localAddress }), "connect");
    sockets.push(socket);
    socket.on("error", () => {});
    const frames: Buffer[] = [];
    const framer = new StreamFramer((frame) => frames.push(Buffer.from(frame)));
    socket.on("data", (chunk: Buffer) => framer.push(chunk));
    socket.write(bindingRequest());
    const answered = await waitUntil(() => frames.length > 0, ARRIVE_MS);
    socket.destroy();
    return answered;
  }

  it("refuses connections from one address past the cap, across TCP and TLS, exactly through churn; another address is served", async () => {
    const CAP = 4;
    const { relay, port } = await startStreamRelay([`--max-connections-per-ip=${CAP}`]);
    const held: NetSocket[] = [];
    // Two TCP and two TLS (a raw connection to the TLS port counts from its first byte, before the handshake).
    for (const transport of ["tcp", "tls", "tcp", "tls"] as const) {
      const { socket, open } = await keptOpen(port(transport));
      expect(open, `connection ${held.length + 1} of ${CAP} (${transport}) was refused`).toBe(true);
      held.push(socket);
    }
    // One more of each from the same address: closed at once.
    for (const transport of ["tcp", "tls"] as const) {
      const { open } = await keptOpen(port(transport));
      expect(open, `a ${transport} connection past the cap was kept`).toBe(false);
    }
    expect(relay.stats.streamClosed.per_ip_limit).toBe(2);
    expect(await createRelayMetrics(relay).registry.metrics()).toContain('relay_stream_closed_total{reason="per_ip_limit"} 2\n');
    // Another address is served meanwhile.
    expect(await bindingAnswered(port("tcp"), "127.0.0.2"), "127.0.0.2 got no Binding answer").toBe(true);

    // Churn: close one, and exactly one more fits again.
    held.shift()!.destroy();
    expect(await waitUntil(() => relay.connectionsFrom(LOOPBACK) === CAP - 1, ARRIVE_MS)).toBe(true);
    const again = await keptOpen(port("tcp"));
    expect(again.open).toBe(true);
    held.push(again.socket);
    expect((await keptOpen(port("tls"))).open).toBe(false);

    // Rapid connect/close churn past the cap leaves the count exact.
    for (let i = 0; i < 30; i++) {
      const socket = netConnect({ host: LOOPBACK, port: port(i % 2 === 0 ? "tcp" : "tls") });
      socket.on("error", () => {});
      sockets.push(socket);
      if (i % 3 === 0) socket.resetAndDestroy();
      else socket.once("connect", () => socket.destroy());
    }
    expect(await waitUntil(() => relay.connectionsFrom(LOOPBACK) === CAP, ARRIVE_MS), `count ${relay.connectionsFrom(LOOPBACK)}`).toBe(true);
    await sleep(200);
    expect(relay.connectionsFrom(LOOPBACK)).toBe(CAP);
    for (const socket of held) socket.destroy();
    expect(await waitUntil(() => relay.connectionsFrom(LOOPBACK) === 0 && relay.connectionsFrom("127.0.0.2") === 0, ARRIVE_MS)).toBe(true);
  }, 30_000);
});
