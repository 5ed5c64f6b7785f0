/**
 * Exact usage in the heartbeats, end to end on loopback: the real relay process (relay/main.ts
 * through tsx) against the test fleet server (./test-fleet-server.ts).
 * - two members of one room (alice over UDP, bob over TCP) and a plain user relay known payloads
 *   both ways; the heartbeats' usage entries equal exactly the bytes sent each way, their sum with
 *   the plain user's equals relay_relayed_bytes_total, allocationMs follows the allocations' lifetimes,
 *   and the plain user never appears;
 * - after the allocations are deleted, the final figures equal the allocation-end lines' (room,
 *   peerId, bytesToPeers, bytesToClient, lifetimeMs); with acks withheld they are repeated, and
 *   again after a reconnect; once acknowledged they are no longer sent (members settled);
 * - a relay stopping (SIGTERM) sends its members' final figures before it closes the channel.
 * Ports (this file's own band, 27000-27499): relay ports 27000-27099 and 27300-27399, metrics 27490-27491; the relay
 * listeners and the fleet servers take any free port. Every wait is bounded; every process is ended by PID.
 */
import { afterAll, describe, expect, it } from "vitest";
import { BOOT_ID_PATTERN, type UsageEntry, type UsageReport } from "../../../shared/fleet/protocol.js";
import type { TurnCredential } from "../../../shared/turn/credentials.js";
import { roomMemberUser } from "../../../shared/turn/turn-user.js";
import { StunClass } from "../../../relay/stun/constants.js";
import { TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, type ClientTransport } from "../turn-client.js";
import {
  allocateOk,
  createPermission,
  deleteAllocation,
  httpGet,
  parsePrometheus,
  portOf,
  sampleValue,
  stopAllProcesses,
  stopProcess,
  waitForEvent,
  waitForListening,
  waitUntil,
  type LogLine,
  type RelayProcess,
} from "../ops/ops-helpers.js";
import { TestFleetServer, startFleetRelay } from "./test-fleet-server.js";

const KEY = "relay-usage-test-key-0123456789abcdef01234";
/** Heartbeats every second here (the fleet asks for it), so a figure reaches the fleet within ~1 s. */
const BEAT_MS = 1_000;
const REPORT_WITHIN_MS = 5_000;

const fleets: TestFleetServer[] = [];
const sockets: { close(): void }[] = [];

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await stopAllProcesses();
  await Promise.all(fleets.splice(0).map((fleet) => fleet.stop()));
}, 30_000);

async function startFleet(ackUsage: boolean): Promise<TestFleetServer> {
  const fleet = await TestFleetServer.start(0, [KEY], { heartbeatIntervalMs: BEAT_MS, ackUsage });
  fleets.push(fleet);
  return fleet;
}

interface Member {
  name: string;
  client: TurnTestClient;
  credential: TurnCredential;
  relayedPort: number;
  /** Date.now() before the Allocate went out and after its answer came. */
  requestedAt: number;
  answeredAt: number;
  sentToPeer: number;
  sentToClient: number;
}

async function allocated(name: string, transport: ClientTransport, port: number, credential: TurnCredential, peer: UdpPeer): Promise<Member> {
  const client = transport === "udp" ? await TurnTestClient.open(port) : await TurnTestClient.openStream(port, transport);
  sockets.push(client);
  const requestedAt = Date.now();
  const relayed = await allocateOk(client, credential);
  const answeredAt = Date.now();
  const permitted = await createPermission(client, credential, { family: 4, address: "127.0.0.1", port: peer.port });
  expect(permitted.messageClass, `${name}: CreatePermission ${errorCodeOf(permitted)}`).toBe(StunClass.SuccessResponse);
  return { name, client, credential, relayedPort: relayed.port, requestedAt, answeredAt, sentToPeer: 0, sentToClient: 0 };
}

/** `count` payloads of `size` bytes from the member's client to the peer (Send indications), all seen arriving. */
async function toPeer(member: Member, peer: UdpPeer, count: number, size: number): Promise<void> {
  const before = peer.received.length;
  for (let i = 0; i < count; i++) member.client.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: peer.port }, Buffer.alloc(size, i)));
  expect(await peer.waitFor(before + count, 3_000), `${member.name}: ${count} datagrams reach the peer`).toBe(true);
  member.sentToPeer += count * size;
}

/** `count` payloads of `size` bytes from the peer to the member's relayed port, all seen arriving at its client. */
async function toClient(member: Member, peer: UdpPeer, count: number, size: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    peer.send(Buffer.alloc(size, 0x40 + i), member.relayedPort);
    // One at a time: UDP on loopback does not lose them, and the client reads each before the next.
    expect(await member.client.receive(3_000), `${member.name}: datagram ${i} reaches the client`).not.toBeNull();
  }
  member.sentToClient += count * size;
}

function entryOf(report: UsageReport | undefined, room: string, peerId: string): UsageEntry | undefined {
  return report?.entries.find((entry) => entry.room === room && entry.peerId === peerId);
}

function lastReport(fleet: TestFleetServer): UsageReport | undefined {
  return fleet.usageReports().at(-1);
}

function ends(relay: RelayProcess): LogLine[] {
  return relay.events().filter((line) => line.event === "allocation-end");
}

async function metrics(port: number) {
  return parsePrometheus((await httpGet(port, "/metrics")).body);
}

// With --relay-threads 2 the workers report to the primary, whose ledger meters their allocations.
const setups: [number, { live: [number, number]; stop: [number, number]; metrics: number }][] = [
  [1, { live: [27000, 27049], stop: [27050, 27099], metrics: 27490 }],
  [2, { live: [27300, 27349], stop: [27350, 27399], metrics: 27491 }],
];

describe.each(setups)("usage reports (%i relay threads)", (threads, setup) => {
  it("carry each room member's exact bytes and lifetime, repeat until acknowledged (across a reconnect), then stop", async () => {
    const fleet = await startFleet(false);
    const relay = startFleetRelay(0, setup.live, fleet.url, { RELAY_FLEET_KEY: KEY }, ["--fleet-relay-id=usage-relay", "--prometheus", `--prometheus-port=${setup.metrics}`, `--relay-threads=${threads}`]);
    const listening = await waitForListening(relay);
    await waitForEvent(relay, "fleet-registered", 10_000);
    const boot = (listening as unknown as { fleet?: { usageBoot?: unknown } }).fleet?.usageBoot;
    expect(typeof boot === "string" && BOOT_ID_PATTERN.test(boot), `the listening line names the usage boot: ${JSON.stringify(listening)}`).toBe(true);
    const udp = portOf(listening, "udp");
    const tcp = portOf(listening, "tcp");
    const peer = await UdpPeer.open();
    sockets.push(peer);

    const alice = await allocated("alice", "udp", udp, await mint(roomMemberUser("usage", "alice"), 600), peer);
    const bob = await allocated("bob", "tcp", tcp, await mint(roomMemberUser("usage", "bob"), 600), peer);
    const carol = await allocated("carol (plain)", "udp", udp, await mint("carol", 600), peer);
    await toPeer(alice, peer, 5, 100);
    await toClient(alice, peer, 3, 333);
    await toPeer(bob, peer, 4, 1_000);
    await toClient(bob, peer, 7, 10);
    await toPeer(carol, peer, 2, 77);
    await toClient(carol, peer, 2, 55);

    // A report taken after the last datagram carries exactly the bytes sent each way.
    const sentAt = Date.now();
    const exact = (report: UsageReport | undefined) =>
      entryOf(report, "usage", "alice")?.bytesToPeers === alice.sentToPeer &&
      entryOf(report, "usage", "alice")?.bytesToClient === alice.sentToClient &&
      entryOf(report, "usage", "bob")?.bytesToPeers === bob.sentToPeer &&
      entryOf(report, "usage", "bob")?.bytesToClient === bob.sentToClient;
    expect(await waitUntil(() => fleet.heartbeats().some((beat) => beat.at > sentAt && exact(beat.message.usage)), REPORT_WITHIN_MS), JSON.stringify(lastReport(fleet))).toBe(true);
    const beat = fleet.heartbeats().find((b) => b.at > sentAt && exact(b.message.usage))!;
    const report = beat.message.usage!;
    expect(report.boot).toBe(boot);
    expect(report.entries.map((entry) => entry.peerId).sort()).toEqual(["alice", "bob"]);
    for (const member of [alice, bob]) {
      const entry = entryOf(report, "usage", member.name)!;
      // Built just before the fleet received it: at most the time since the Allocate was sent, at least since it was answered, less a beat.
      expect(entry.allocationMs, member.name).toBeLessThanOrEqual(beat.at - member.requestedAt + 50);
      expect(entry.allocationMs, member.name).toBeGreaterThanOrEqual(beat.at - member.answeredAt - BEAT_MS - 200);
    }
    // The relay's own counters: everything relayed is the members' bytes plus the plain user's.
    const samples = await metrics(setup.metrics);
    expect(sampleValue(samples, "relay_relayed_bytes_total", { direction: "to_peer" })).toBe(alice.sentToPeer + bob.sentToPeer + carol.sentToPeer);
    expect(sampleValue(samples, "relay_relayed_bytes_total", { direction: "to_client" })).toBe(alice.sentToClient + bob.sentToClient + carol.sentToClient);
    expect(sampleValue(samples, "relay_fleet_usage_members", { state: "live" })).toBe(2);

    // The members leave: their final figures are the allocation-end lines'.
    for (const member of [alice, bob, carol]) expect((await deleteAllocation(member.client, member.credential)).messageClass, member.name).toBe(StunClass.SuccessResponse);
    expect(await waitUntil(() => ends(relay).length === 3, 2_000), relay.report()).toBe(true);
    const endedAt = Date.now();
    const endLines = ends(relay);
    expect(endLines.find((line) => line.user === "carol")).not.toHaveProperty("room");
    const finals: UsageEntry[] = [alice, bob].map((member) => {
      const line = endLines.find((l) => l.user === `usage/${member.name}`)!;
      expect(line, member.name).toMatchObject({ room: "usage", peerId: member.name, bytesToPeers: member.sentToPeer, bytesToClient: member.sentToClient });
      expect(typeof line.lifetimeMs).toBe("number");
      return { room: "usage", peerId: member.name, bytesToPeers: member.sentToPeer, bytesToClient: member.sentToClient, allocationMs: line.lifetimeMs as number };
    });
    const isFinal = (r: UsageReport | undefined) => r !== undefined && finals.every((f) => JSON.stringify(entryOf(r, f.room, f.peerId)) === JSON.stringify(f)) && r.entries.length === 2;

    // Acks withheld: the final figures go again and again.
    expect(await waitUntil(() => fleet.usageReports().filter(isFinal).length >= 2, REPORT_WITHIN_MS), JSON.stringify(lastReport(fleet))).toBe(true);
    expect(fleet.heartbeats().filter((b) => b.at > endedAt && b.message.usage !== undefined).every((b) => isFinal(b.message.usage))).toBe(true);

    // The fleet goes away and comes back on its port: the new connection gets them again.
    const connectionsBefore = fleet.verified().length;
    await fleet.stop();
    await fleet.listen();
    expect(await waitUntil(() => fleet.verified().length > connectionsBefore && fleet.verified().at(-1)!.registered === true, 15_000), relay.report()).toBe(true);
    const second = fleet.verified().at(-1)!;
    expect(await waitUntil(() => fleet.usageReports(second).some(isFinal), REPORT_WITHIN_MS), JSON.stringify(fleet.usageReports(second))).toBe(true);
    const seqs = fleet.usageReports().map((r) => r.seq);
    expect(seqs, "seq increases with every report of the boot").toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);

    // Acknowledged: the next reports are empty.
    fleet.ackUsage = true;
    const ackedFrom = fleet.usageReports(second).length;
    expect(await waitUntil(() => fleet.usageReports(second).slice(ackedFrom + 1).some((r) => r.entries.length === 0), REPORT_WITHIN_MS), JSON.stringify(fleet.usageReports(second).slice(ackedFrom))).toBe(true);
    const afterAck = await metrics(setup.metrics);
    expect(sampleValue(afterAck, "relay_fleet_usage_members", { state: "settled" })).toBe(2);
    expect(sampleValue(afterAck, "relay_fleet_usage_members", { state: "unacked" })).toBe(0);
    expect(sampleValue(afterAck, "relay_fleet_usage_members", { state: "live" })).toBe(0);
    expect(sampleValue(afterAck, "relay_fleet_usage_acks_total")).toBeGreaterThanOrEqual(1);
    expect(sampleValue(afterAck, "relay_fleet_usage_dropped_total")).toBe(0);
    expect(fleet.usageReports().flatMap((r) => r.entries).some((entry) => entry.peerId === "carol")).toBe(false);
    expect(fleet.badMessages()).toEqual([]);
    expect(relay.exit(), relay.report()).toBeUndefined();
  }, 90_000);

  it("a stopping relay sends its members' final figures before it closes the channel", async () => {
    const fleet = await startFleet(true);
    const relay = startFleetRelay(0, setup.stop, fleet.url, { RELAY_FLEET_KEY: KEY }, ["--fleet-relay-id=usage-stop", "--drain-timeout=0", `--relay-threads=${threads}`]);
    const listening = await waitForListening(relay);
    await waitForEvent(relay, "fleet-registered", 10_000);
    const peer = await UdpPeer.open();
    sockets.push(peer);
    const dave = await allocated("dave", "udp", portOf(listening, "udp"), await mint(roomMemberUser("stop", "dave"), 600), peer);
    await toPeer(dave, peer, 3, 200);
    await toClient(dave, peer, 1, 99);
    await stopProcess(relay);
    expect(relay.exit(), relay.report()).toMatchObject({ code: 0 });
    const line = ends(relay).find((l) => l.user === "stop/dave");
    expect(line, relay.report()).toMatchObject({ reason: "relay stopping", room: "stop", peerId: "dave", bytesToPeers: 600, bytesToClient: 99 });
    const final = { room: "stop", peerId: "dave", bytesToPeers: 600, bytesToClient: 99, allocationMs: line!.lifetimeMs };
    expect(fleet.usageReports().some((r) => JSON.stringify(entryOf(r, "stop", "dave")) === JSON.stringify(final)), JSON.stringify(fleet.usageReports().slice(-3))).toBe(true);
    expect(fleet.badMessages()).toEqual([]);
  }, 60_000);
});
