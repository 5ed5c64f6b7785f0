/**
 * The relay's fleet control channel, end to end: the real relay process (`node --import tsx
 * relay/main.ts`, as `npm run relay` runs it) against a small fleet server in this test
 * (./test-fleet-server.ts: the contract in shared/fleet/, token checked with verifyFleetToken,
 * messages with parseRelayMessage), on loopback:
 * - register: relay id, the URLs derived from the listeners (UDP, TCP, TLS), region, location,
 *   capacity (--total-quota, --bps-capacity × 8), version; the subprotocol and a valid token;
 * - heartbeats with real allocations: rooms counted from room-scoped credentials only, bps in and
 *   out from relayed bytes, the cap of FLEET_LIMITS.maxRooms with the rest in roomsOmitted;
 * - reconnects after the fleet closes or goes away, each time with a fresh token (never the same
 *   jti), with a bounded backoff, a new key after SIGHUP; at least 60 s after a bad token;
 * - serving unaffected while the fleet is down, unreachable, hanging, silent (no pong: a dead path
 *   is noticed within 20 s) or answering garbage;
 * - SIGTERM and SIGUSR1: a "draining" heartbeat at once, the relay exiting on its own once its
 *   last allocation is gone (well before --drain-timeout), the channel closed with 1000.
 * Every wait is bounded; every process is ended by PID. Ports: relay listeners 31200-31249, relay
 * ports 30300-31099, metrics 31550 (this file's own, below the system's ephemeral range); the fleet servers take any free port.
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BOOT_ID_PATTERN, FLEET_CLOSE_CODES, FLEET_LIMITS, FLEET_SUBPROTOCOL } from "../../../shared/fleet/protocol.js";
import { roomMemberUser } from "../../../shared/turn/turn-user.js";
import type { TurnCredential } from "../../../shared/turn/credentials.js";
import { StunClass } from "../../../relay/stun/constants.js";
import { TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, testCertificate } from "../turn-client.js";
import {
  allocate,
  allocateOk,
  createPermission,
  deleteAllocation,
  httpGet,
  parsePrometheus,
  sampleValue,
  stopAllProcesses,
  waitForEvent,
  waitForListening,
  waitUntil,
  type RelayProcess,
} from "../ops/ops-helpers.js";
import { freePort } from "../../node/processes.js";
import { TestFleetServer, startFleetRelay } from "./test-fleet-server.js";

const KEY = "relay-fleet-test-key-0123456789abcdef01";
const NEW_KEY = "relay-fleet-test-key-rotated-9876543210ab";
const WRONG_KEY = "relay-fleet-test-key-not-the-workers-000000";
/** The base64url JWT header every fleet token starts with: never in the relay's output. */
const TOKEN_HEADER = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
const VERSION = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string }).version;

const fleets: TestFleetServer[] = [];
const sockets: { close(): void }[] = [];
const servers: Server[] = [];
const tempDirs: string[] = [];
const certificates: { remove(): void }[] = [];

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await stopAllProcesses();
  await Promise.all(fleets.splice(0).map((fleet) => fleet.stop()));
  for (const server of servers.splice(0)) server.close();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  for (const certificate of certificates.splice(0)) certificate.remove();
}, 30_000);

async function startFleet(port: number, keys: string[], options: Parameters<typeof TestFleetServer.start>[2] = {}): Promise<TestFleetServer> {
  const fleet = await TestFleetServer.start(port, keys, options);
  fleets.push(fleet);
  return fleet;
}

function startRelay(listeningPort: number, relayPorts: [number, number], fleetUrl: string, extra: string[] = [], env: Record<string, string> = { RELAY_FLEET_KEY: KEY }): RelayProcess {
  return startFleetRelay(listeningPort, relayPorts, fleetUrl, env, extra);
}

async function openClient(port: number): Promise<TurnTestClient> {
  const client = await TurnTestClient.open(port);
  sockets.push(client);
  return client;
}

/** One allocation on its own client; returns both, for a later delete. */
async function allocateAs(port: number, userId: string): Promise<{ client: TurnTestClient; credential: TurnCredential; relayedPort: number }> {
  const client = await openClient(port);
  const credential = await mint(userId);
  const relayed = await allocateOk(client, credential);
  return { client, credential, relayedPort: relayed.port };
}

/** Waits for a condition on the fleet's view, failing with the relay's output. */
async function expectWithin(relay: RelayProcess, what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const met = await waitUntil(condition, timeoutMs);
  expect(met, `${what} within ${timeoutMs} ms\n${relay.report()}`).toBe(true);
}

function expectNoSecrets(relay: RelayProcess, keys: string[]): void {
  const output = relay.stdout() + relay.stderr();
  for (const key of keys) expect(output.includes(key), "a fleet key appears in the relay's output").toBe(false);
  expect(output.includes(TOKEN_HEADER), "a fleet token appears in the relay's output").toBe(false);
}

async function metrics(port: number): Promise<ReturnType<typeof parsePrometheus>> {
  return parsePrometheus((await httpGet(port, "/metrics")).body);
}

describe("register and heartbeats", () => {
  it("registers the derived URLs, region, location, capacity and version, and reports allocations, rooms and bps", async () => {
    const fleet = await startFleet(0, [KEY], { heartbeatIntervalMs: 1_000 });
    const cert = testCertificate();
    certificates.push(cert);
    const relay = startRelay(31200, [30300, 30349], fleet.url, [
      ...cert.flags,
      "--tls-listening-port=31201",
      "--fleet-relay-id=content-relay",
      "--fleet-region=eu-test",
      "--fleet-location=50.11,8.68",
      "--total-quota=700",
      "--bps-capacity=1250000",
    ]);
    const listening = await waitForListening(relay);
    expect((listening as unknown as { fleet: unknown }).fleet).toEqual({
      url: fleet.url,
      relayId: "content-relay",
      urls: ["turn:127.0.0.1:31200?transport=udp", "turn:127.0.0.1:31200?transport=tcp", "turns:127.0.0.1:31201?transport=tcp"],
      // The boot id its usage reports carry: an operator matches the fleet's stored usage to this process.
      usageBoot: expect.stringMatching(BOOT_ID_PATTERN),
    });
    await waitForEvent(relay, "fleet-registered", 10_000);

    const [connection] = fleet.verified();
    expect(connection!.offered).toBe(FLEET_SUBPROTOCOL);
    expect(connection!.ws.protocol).toBe(FLEET_SUBPROTOCOL);
    expect(connection!.claims!.relayId).toBe("content-relay");
    expect(connection!.claims!.expiresAt - connection!.claims!.issuedAt).toBe(60);
    expect(fleet.registers()).toEqual([
      {
        type: "register",
        relayId: "content-relay",
        version: VERSION,
        urls: ["turn:127.0.0.1:31200?transport=udp", "turn:127.0.0.1:31200?transport=tcp", "turns:127.0.0.1:31201?transport=tcp"],
        region: "eu-test",
        location: { lat: 50.11, lon: 8.68 },
        capacity: { allocations: 700, bps: 10_000_000 },
      },
    ]);
    // register first, then a heartbeat at once: the fleet knows the load from the start.
    await expectWithin(relay, "a first heartbeat", () => fleet.heartbeats().length >= 1, 2_000);
    expect(connection!.messages[0]!.message.type).toBe("register");
    expect(fleet.heartbeats()[0]!.message).toMatchObject({ type: "heartbeat", state: "ready", allocations: 0, rooms: [], roomsOmitted: 0 });

    // Room members of two rooms, and a plain user, which no room counts.
    const alpha1 = await allocateAs(31200, roomMemberUser("alpha", "peer-1"));
    const alpha2 = await allocateAs(31200, roomMemberUser("alpha", "peer-2"));
    await allocateAs(31200, roomMemberUser("beta", "peer-1"));
    const plain = await allocateAs(31200, "carol");
    await expectWithin(relay, "a heartbeat with 4 allocations", () => fleet.lastHeartbeat()?.allocations === 4, 4_000);
    expect(fleet.lastHeartbeat()).toMatchObject({ rooms: [{ room: "alpha", allocations: 2 }, { room: "beta", allocations: 1 }], roomsOmitted: 0 });

    // Relayed bytes both ways show as bps in (toward peers) and out (toward clients).
    const peer = await UdpPeer.open();
    sockets.push(peer);
    const permission = await createPermission(plain.client, plain.credential, { family: 4, address: "127.0.0.1", port: peer.port });
    expect(permission.messageClass, `CreatePermission: ${errorCodeOf(permission)}`).toBe(StunClass.SuccessResponse);
    const sentAt = Date.now();
    const payload = Buffer.alloc(1_000, 7);
    for (let i = 0; i < 50; i++) plain.client.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: peer.port }, payload));
    expect(await peer.waitFor(50, 3_000), "the peer got the client's 50 datagrams").toBe(true);
    for (let i = 0; i < 50; i++) peer.send(payload, plain.relayedPort);
    let toClient = 0;
    while (toClient < 50 && (await plain.client.receive(2_000)) !== null) toClient++;
    expect(toClient).toBe(50);
    await expectWithin(relay, "a heartbeat with bps in and out", () => fleet.heartbeats().some((beat) => beat.at > sentAt && beat.message.bpsIn > 0 && beat.message.bpsOut > 0), 4_000);
    const busy = fleet.heartbeats().find((beat) => beat.at > sentAt && beat.message.bpsIn > 0)!.message;
    // 50,000 payload bytes each way over a window of at least 0.5 s.
    expect(busy.bpsIn).toBeLessThanOrEqual(50_000 * 8 * 2);
    expect(busy.bpsOut).toBeLessThanOrEqual(50_000 * 8 * 2);
    const beats = fleet.heartbeats().filter((beat) => beat.at > sentAt).map((beat) => beat.message);
    expect(beats.every((beat) => beat.cpuPercent >= 0 && beat.eventLoopDelayMs >= 0 && beat.eventLoopDelayMs < 1_000)).toBe(true);

    // An allocation that ends leaves its room's count.
    const deleted = await deleteAllocation(alpha2.client, alpha2.credential);
    expect(deleted.messageClass).toBe(StunClass.SuccessResponse);
    await expectWithin(relay, "a heartbeat with 3 allocations", () => fleet.lastHeartbeat()?.allocations === 3, 4_000);
    expect(fleet.lastHeartbeat()!.rooms).toEqual([{ room: "alpha", allocations: 1 }, { room: "beta", allocations: 1 }]);
    expect(alpha1.relayedPort).toBeGreaterThanOrEqual(30300);

    // Heartbeats come at the fleet's interval (1 s here), not faster.
    const times = fleet.heartbeats(connection).map((beat) => beat.at);
    const gaps = times.slice(2).map((at, i) => at - times[i + 1]!);
    expect(Math.min(...gaps), JSON.stringify(gaps)).toBeGreaterThanOrEqual(800);
    expect(fleet.badMessages()).toEqual([]);
    expectNoSecrets(relay, [KEY]);
  }, 60_000);

  it(`lists at most ${FLEET_LIMITS.maxRooms} rooms, the fullest first, and counts the rest in roomsOmitted`, async () => {
    const fleet = await startFleet(0, [KEY], { heartbeatIntervalMs: 1_000 });
    const relay = startRelay(31202, [30400, 30999], fleet.url, ["--fleet-relay-id=cap-relay", "--unauthenticated-rate=0"]);
    await waitForListening(relay);
    await waitForEvent(relay, "fleet-registered", 10_000);
    const users = [
      ...Array.from({ length: FLEET_LIMITS.maxRooms + 1 }, (_, i) => roomMemberUser(`room-${String(i).padStart(3, "0")}`, "peer")),
      roomMemberUser("big", "a"),
      roomMemberUser("big", "b"),
      roomMemberUser("big", "c"),
      "plain-user",
    ];
    for (let i = 0; i < users.length; i += 50) await Promise.all(users.slice(i, i + 50).map((user) => allocateAs(31202, user)));
    // With worker processes (relay threads "auto" on a machine of two cores or more) the total is the
    // primary's admissions, and a room's count follows when the worker's member message arrives: a
    // heartbeat built in between has the allocation in the total and not yet in its room.
    await expectWithin(
      relay,
      `a heartbeat with ${users.length} allocations, "big" counted with its 3`,
      () => fleet.lastHeartbeat()?.allocations === users.length && fleet.lastHeartbeat()?.rooms[0]?.allocations === 3,
      6_000,
    );
    const beat = fleet.lastHeartbeat()!;
    expect(beat.rooms).toHaveLength(FLEET_LIMITS.maxRooms);
    expect(beat.rooms[0]).toEqual({ room: "big", allocations: 3 });
    expect(beat.roomsOmitted).toBe(2);
    // Ties by name: room-000 .. room-498 are listed, room-499 and room-500 left out.
    expect(beat.rooms.at(-1)).toEqual({ room: "room-498", allocations: 1 });
    expect(fleet.badMessages()).toEqual([]);
  }, 90_000);
});

describe("reconnecting", () => {
  it("reconnects after the fleet closes or goes away, with a fresh token each time, a rotated key after SIGHUP, and serves throughout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "relay-fleet-key-"));
    tempDirs.push(dir);
    const keyFile = join(dir, "fleet-key");
    writeFileSync(keyFile, `${KEY}\n`, { mode: 0o600 });
    const fleet = await startFleet(0, [KEY, NEW_KEY], { heartbeatIntervalMs: 1_000 });
    const relay = startRelay(31203, [30350, 30399], fleet.url, ["--fleet-relay-id=reconnecting-relay", `--fleet-key-file=${keyFile}`, "--prometheus", "--prometheus-port=31550"], {});
    await waitForListening(relay);
    await waitForEvent(relay, "fleet-registered", 10_000);
    let samples = await metrics(31550);
    expect(sampleValue(samples, "relay_fleet_connected")).toBe(1);
    expect(sampleValue(samples, "relay_fleet_connects_total")).toBe(1);

    // The fleet closes the connection (a Worker deploy): back within the first backoff (<= 0.5 s).
    fleet.verified()[0]!.ws.close(1012, "service restart");
    await expectWithin(relay, "a second registration", () => fleet.verified().length === 2 && fleet.registers().length === 2, 5_000);

    // A new key on SIGHUP signs the next connection: the fleet now takes only the new one.
    writeFileSync(keyFile, `${NEW_KEY}\n`, { mode: 0o600 });
    const reloadsBefore = relay.events().length;
    process.kill(relay.pid, "SIGHUP");
    await waitForEvent(relay, "reloaded", 5_000, reloadsBefore);
    fleet.keys = [NEW_KEY];
    fleet.verified()[1]!.ws.close(1011, "internal error");
    await expectWithin(relay, "a registration signed with the new key", () => fleet.verified().length === 3 && fleet.registers().length === 3, 5_000);

    // The fleet goes away for 3 s: the relay keeps serving, and comes back once it is up again.
    const downFrom = relay.events().length;
    await fleet.stop();
    await waitForEvent(relay, "fleet-closed", 5_000, downFrom);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    samples = await metrics(31550);
    expect(sampleValue(samples, "relay_fleet_connected")).toBe(0);
    const whileDown = await allocateAs(31203, roomMemberUser("down-room", "peer"));
    expect(whileDown.relayedPort).toBeGreaterThanOrEqual(30350);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await fleet.listen();
    await expectWithin(relay, "a registration after the fleet came back", () => fleet.verified().length === 4 && fleet.registers().length === 4, 20_000);
    await expectWithin(relay, "a heartbeat counting the allocation made while the fleet was down", () => fleet.lastHeartbeat()?.rooms.some((room) => room.room === "down-room") === true, 4_000);

    // Every connection had its own token: distinct one-time ids, none refused as a replay.
    const verified = fleet.verified();
    expect(new Set(verified.map((connection) => connection.claims!.nonce)).size).toBe(verified.length);
    expect(fleet.connections.filter((connection) => connection.closed?.code === FLEET_CLOSE_CODES.tokenReplayed)).toEqual([]);
    expect(verified.every((connection) => connection.claims!.relayId === "reconnecting-relay")).toBe(true);

    // The backoff stayed within its ceilings (0.5 s doubling), and was logged.
    const backoffs = relay.events().filter((event) => event.event === "fleet-backoff");
    expect(backoffs.length).toBeGreaterThanOrEqual(3);
    for (const line of backoffs) expect(Number(line.delayMs), JSON.stringify(line)).toBeLessThanOrEqual(Math.min(30_000, 500 * 2 ** (Number(line.attempt) - 1)));
    const closes = relay.events().filter((event) => event.event === "fleet-closed");
    expect(closes.map((line) => line.code)).toEqual(expect.arrayContaining([1012, 1011, 1006]));
    expect(closes.find((line) => line.code === 1012)).toMatchObject({ reason: "service restart", connected: true });

    samples = await metrics(31550);
    expect(sampleValue(samples, "relay_fleet_connected")).toBe(1);
    expect(sampleValue(samples, "relay_fleet_connects_total")).toBe(4);
    expect(sampleValue(samples, "relay_fleet_closes_total", { code: "1012" })).toBe(1);
    expect(sampleValue(samples, "relay_fleet_closes_total", { code: "1011" })).toBe(1);
    expect(sampleValue(samples, "relay_fleet_closes_total", { code: "1006" })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(samples, "relay_fleet_heartbeats_sent_total")).toBeGreaterThanOrEqual(4);
    expect(fleet.badMessages()).toEqual([]);
    expectNoSecrets(relay, [KEY, NEW_KEY]);
    expect(relay.exit(), relay.report()).toBeUndefined();
  }, 60_000);

  it("waits at least 60 s after a bad token, says what to fix, and serves meanwhile", async () => {
    const fleet = await startFleet(0, [WRONG_KEY]);
    const relay = startRelay(31204, [31000, 31019], fleet.url, ["--fleet-relay-id=bad-key-relay"]);
    await waitForListening(relay);
    const closed = await waitForEvent(relay, "fleet-closed", 10_000);
    expect(closed).toMatchObject({ level: "warn", code: FLEET_CLOSE_CODES.badToken, advice: expect.stringMatching(/FLEET_KEYS.*--fleet-key-file or RELAY_FLEET_KEY/) });
    const backoff = await waitForEvent(relay, "fleet-backoff", 2_000);
    expect(Number(backoff.delayMs)).toBeGreaterThanOrEqual(60_000);
    const served = await allocateAs(31204, roomMemberUser("room", "peer"));
    expect(served.relayedPort).toBeGreaterThanOrEqual(31000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect(fleet.connections).toHaveLength(1);
    expect(fleet.connections[0]!.closed?.code).toBe(FLEET_CLOSE_CODES.badToken);
    expectNoSecrets(relay, [KEY]);
  }, 30_000);
});

describe("a fleet that is down, hanging or answering garbage", () => {
  it("never gets in the way of serving, and each failure is logged and bounded", async () => {
    // Garbage: 25 messages the relay does not know, then more; it gives up on the connection (1008) and comes back.
    const garbage = await startFleet(0, [KEY], {
      onVerified: (connection) => {
        connection.ws.send(Buffer.from([0xde, 0xad]), { binary: true });
        for (let i = 0; i < 25; i++) connection.ws.send(i % 2 === 0 ? "not json" : JSON.stringify({ type: "surprise", n: i }));
      },
    });
    // Hanging: a TCP server that accepts and never answers the upgrade.
    const held: Socket[] = [];
    const hanging = createServer((socket) => held.push(socket));
    servers.push(hanging);
    await new Promise<void>((resolve) => hanging.listen(0, "127.0.0.1", resolve));
    const hangingPort = (hanging.address() as AddressInfo).port;
    // Down: a port that was free a moment ago and that nothing listens on.
    const downPort = await freePort();

    // Silent: the connection opens, then nothing more is read (a dead path): no pong comes back.
    const silent = await startFleet(0, [KEY], { onVerified: (connection) => connection.ws.pause() });

    const cases = [
      { name: "garbage", relay: startRelay(31205, [31020, 31034], garbage.url, ["--fleet-relay-id=garbage-relay"]) },
      { name: "hanging", relay: startRelay(31206, [31035, 31049], `ws://127.0.0.1:${hangingPort}/v1/fleet`, ["--fleet-relay-id=hanging-relay"]) },
      { name: "down", relay: startRelay(31207, [31050, 31064], `ws://127.0.0.1:${downPort}/v1/fleet`, ["--fleet-relay-id=down-relay"]) },
      { name: "silent", relay: startRelay(31210, [31065, 31079], silent.url, ["--fleet-relay-id=silent-relay"]) },
    ];
    const portOfCase = (index: number) => [31205, 31206, 31207, 31210][index]!;
    for (const { relay } of cases) await waitForListening(relay);
    // Every relay serves at once, whatever its fleet does.
    for (const [index, { relay }] of cases.entries()) {
      const answer = await allocate(await openClient(portOfCase(index)), await mint(roomMemberUser("r", `p${index}`)));
      expect(answer.messageClass, `${cases[index]!.name}: Allocate ${errorCodeOf(answer)}\n${relay.report()}`).toBe(StunClass.SuccessResponse);
    }

    const [garbageCase, hangingCase, downCase, silentCase] = cases;
    const down = await waitForEvent(downCase!.relay, "fleet-closed", 5_000);
    expect(down).toMatchObject({ code: 1006, connected: false, error: expect.stringContaining("ECONNREFUSED") });

    await expectWithin(garbageCase!.relay, "the garbage connection closed by the relay with 1008", () => garbage.connections[0]?.closed?.code === 1008, 5_000);
    await expectWithin(garbageCase!.relay, "a second garbage connection", () => garbage.verified().length >= 2, 5_000);
    // One warning per connection, not one per message.
    const ignored = garbageCase!.relay.events().filter((event) => event.event === "fleet-message-ignored").length;
    expect(ignored).toBeGreaterThanOrEqual(1);
    expect(ignored).toBeLessThanOrEqual(garbage.connections.length);

    // The handshake is bounded: 10 s, then a close, a backoff and another try.
    const hung = await waitForEvent(hangingCase!.relay, "fleet-closed", 15_000);
    expect(hung).toMatchObject({ code: 1006, connected: false, error: expect.stringMatching(/handshake has timed out/i) });
    expect(held.length).toBeGreaterThanOrEqual(1);
    for (const socket of held) socket.destroy();

    // A dead path is noticed by the missing pong: within two ping intervals (20 s) of connecting.
    const dead = await waitForEvent(silentCase!.relay, "fleet-closed", 25_000);
    expect(dead).toMatchObject({ code: 1006, connected: true, error: "no pong within 10000 ms" });
    expect(Date.parse(String(dead.time)) - silent.connections[0]!.at).toBeLessThanOrEqual(22_000);

    // Still serving, and nothing escaped as an error.
    for (const [index, { relay, name }] of cases.entries()) {
      const answer = await allocate(await openClient(portOfCase(index)), await mint(roomMemberUser("r", `again${index}`)));
      expect(answer.messageClass, `${name}: Allocate ${errorCodeOf(answer)}\n${relay.report()}`).toBe(StunClass.SuccessResponse);
      expect(relay.exit(), relay.report()).toBeUndefined();
      expect(relay.events().filter((event) => event.event === "uncaught-error" || event.event === "fleet-client-error"), relay.report()).toEqual([]);
      expect(relay.stderr().split("\n").filter((line) => line.trim() !== "" && !line.startsWith("npm warn")), relay.report()).toEqual([]);
    }
  }, 90_000);
});

describe("drain", () => {
  // The last row: a relay with two worker processes, whose primary drains both.
  const signals: [NodeJS.Signals, number, [number, number], number][] = [
    ["SIGTERM", 31208, [31080, 31089], 1],
    ["SIGUSR1", 31209, [31090, 31099], 1],
    ["SIGTERM", 31211, [31100, 31119], 2],
  ];
  it.each(signals)(
    "%s: a draining heartbeat at once, exit on its own once the last allocation is gone, the channel closed with 1000 (listener %i, relay ports %j, %i relay threads)",
    async (signal, port, relayPorts, threads) => {
      // The fleet's own interval (5 s) stays: a heartbeat within 1 s of the signal is the drain's, not a periodic one.
      const fleet = await startFleet(0, [KEY]);
      const relay = startRelay(port, relayPorts, fleet.url, ["--fleet-relay-id=draining-relay", "--drain-timeout=60", `--relay-threads=${threads}`]);
      await waitForListening(relay);
      await waitForEvent(relay, "fleet-registered", 10_000);
      const member = await allocateAs(port, roomMemberUser("gamma", "peer-1"));
      await allocateAs(port, "plain-user").then(async (plain) => {
        const gone = await deleteAllocation(plain.client, plain.credential);
        expect(gone.messageClass).toBe(StunClass.SuccessResponse);
      });

      const signalledAt = Date.now();
      process.kill(relay.pid, signal);
      await expectWithin(relay, "a draining heartbeat", () => fleet.heartbeats().some((beat) => beat.message.state === "draining"), 2_000);
      const draining = fleet.heartbeats().find((beat) => beat.message.state === "draining")!;
      expect(draining.at - signalledAt).toBeLessThan(1_000);
      expect(draining.message).toMatchObject({ allocations: 1, rooms: [{ room: "gamma", allocations: 1 }], roomsOmitted: 0 });
      const stopping = await waitForEvent(relay, "stopping", 2_000);
      expect(stopping).toMatchObject({ signal, allocations: 1, drainTimeoutSeconds: 60 });
      expect(relay.events().find((event) => event.event === "fleet-state")).toMatchObject({ state: "draining", sent: true });

      // Draining: new allocations are refused, the live one carries on.
      const refused = await allocate(await openClient(port), await mint(roomMemberUser("gamma", "late")));
      expect(errorCodeOf(refused)).toBe(508);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(relay.exit(), "the relay left while an allocation was live").toBeUndefined();

      const deletedAt = Date.now();
      const deleted = await deleteAllocation(member.client, member.credential);
      expect(deleted.messageClass).toBe(StunClass.SuccessResponse);
      await expectWithin(relay, "the relay's exit once its last allocation ended", () => relay.exit() !== undefined, 5_000);
      expect(relay.exit(), relay.report()).toEqual({ code: 0, signal: null });
      expect(Date.now() - deletedAt).toBeLessThan(5_000);
      expect(Date.now() - signalledAt).toBeLessThan(30_000);
      expect(relay.events().find((event) => event.event === "drained")).toMatchObject({ reason: "every allocation ended" });
      await expectWithin(relay, "the fleet seeing the close", () => fleet.connections[0]?.closed !== undefined, 2_000);
      expect(fleet.connections[0]!.closed).toMatchObject({ code: 1000, reason: "relay stopping" });
      // Later heartbeats (none, or any before the close) all say draining.
      expect(fleet.heartbeats().filter((beat) => beat.at >= draining.at).every((beat) => beat.message.state === "draining")).toBe(true);
      expect(fleet.badMessages()).toEqual([]);
    },
    40_000,
  );
});
