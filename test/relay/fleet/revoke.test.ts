/**
 * Revocations from the fleet, end to end on loopback: the real relay process (relay/main.ts through
 * tsx) against the test fleet server (./test-fleet-server.ts), which pushes `revoke` messages and
 * replays them after a register as the fleet object does.
 * - a pushed revocation ends the matching allocations over UDP, TCP and TLS within 2 s: a peer's
 *   datagrams stop reaching the client, the next Refresh is refused (403), a new Allocate with the
 *   same credential is refused (403); allocations of another room, another peer and a plain user keep
 *   relaying; a credential issued after the revocation (later expiry) is not covered;
 * - a username revocation ends exactly that credential's allocation; a room revocation the room's;
 * - revocations replayed at register are enforced, and end at `until`;
 * - metrics (relay_revocations_active, relay_allocations_revoked_total, relay_revoked_requests_total)
 *   and `allocation-end` lines with reason "revoked".
 * Ports (this file's own): relay listeners 29300-29349, relay ports 29400-29899, and
 * metrics 31560-31562 (below the system's ephemeral range); the fleet servers take any free port. Every wait is bounded; every process is ended by PID.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { Revocation } from "../../../shared/fleet/protocol.js";
import type { TurnCredential } from "../../../shared/turn/credentials.js";
import { roomMemberUser } from "../../../shared/turn/turn-user.js";
import { encodeLifetime } from "../../../relay/stun/attributes.js";
import { StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { TurnTestClient, UdpPeer, errorCodeOf, mint, testCertificate, type ClientTransport } from "../turn-client.js";
import {
  allocate,
  allocateOk,
  createPermission,
  httpGet,
  parsePrometheus,
  sampleValue,
  stopAllProcesses,
  waitForEvent,
  waitForListening,
  waitUntil,
  type RelayProcess,
} from "../ops/ops-helpers.js";
import { TestFleetServer, startFleetRelay } from "./test-fleet-server.js";

const KEY = "relay-revoke-test-key-0123456789abcdef0123";
/** The bound the issue sets: matching allocations are gone within this of the revocation. */
const END_WITHIN_MS = 2_000;

const fleets: TestFleetServer[] = [];
const sockets: { close(): void }[] = [];
const certificates: { remove(): void }[] = [];

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await stopAllProcesses();
  await Promise.all(fleets.splice(0).map((fleet) => fleet.stop()));
  for (const certificate of certificates.splice(0)) certificate.remove();
}, 30_000);

const nowSeconds = () => Math.floor(Date.now() / 1000);

async function startFleet(port: number): Promise<TestFleetServer> {
  const fleet = await TestFleetServer.start(port, [KEY], { heartbeatIntervalMs: 1_000 });
  fleets.push(fleet);
  return fleet;
}

function startRelay(listeningPort: number, relayPorts: [number, number], fleetUrl: string, extra: string[] = []): RelayProcess {
  return startFleetRelay(listeningPort, relayPorts, fleetUrl, { RELAY_FLEET_KEY: KEY }, extra);
}

interface Allocated {
  name: string;
  client: TurnTestClient;
  credential: TurnCredential;
  relayedPort: number;
}

async function openClient(transport: ClientTransport, ports: { udp: number; tls: number }): Promise<TurnTestClient> {
  const client = transport === "udp" ? await TurnTestClient.open(ports.udp) : await TurnTestClient.openStream(transport === "tls" ? ports.tls : ports.udp, transport);
  sockets.push(client);
  return client;
}

/** Allocates with `credential` over `transport` and permits `peer`. */
async function allocated(name: string, transport: ClientTransport, ports: { udp: number; tls: number }, credential: TurnCredential, peer: UdpPeer): Promise<Allocated> {
  const client = await openClient(transport, ports);
  const relayed = await allocateOk(client, credential);
  const permitted = await createPermission(client, credential, { family: 4, address: "127.0.0.1", port: peer.port });
  expect(permitted.messageClass, `${name}: CreatePermission ${errorCodeOf(permitted)}`).toBe(StunClass.SuccessResponse);
  return { name, client, credential, relayedPort: relayed.port };
}

/** Whether a datagram the peer sends to the allocation's relayed port reaches its client (within `timeoutMs`). */
async function relays(allocation: Allocated, peer: UdpPeer, timeoutMs = 1_000): Promise<boolean> {
  while ((await allocation.client.receive(1)) !== null) {
    // drain anything left over
  }
  peer.send(Buffer.from(`to ${allocation.name}`), allocation.relayedPort);
  return (await allocation.client.receive(timeoutMs)) !== null;
}

function refresh(allocation: Allocated) {
  return allocation.client.request(StunMethod.Refresh, [encodeLifetime(600)], allocation.credential);
}

async function metrics(port: number) {
  return parsePrometheus((await httpGet(port, "/metrics")).body);
}

function revokedEnds(relay: RelayProcess) {
  return relay.events().filter((line) => line.event === "allocation-end" && line.reason === "revoked");
}

describe("a pushed revocation", () => {
  // With --relay-threads 2 the revocation reaches the primary, which hands it to both workers.
  const setups: [number, { udp: number; tls: number; relayPorts: [number, number]; metrics: number }][] = [
    [1, { udp: 29300, tls: 29301, relayPorts: [29400, 29499], metrics: 31560 }],
    [2, { udp: 29304, tls: 29305, relayPorts: [29600, 29699], metrics: 31562 }],
  ];
  it.each(setups)("ends the matching allocations over UDP, TCP and TLS within 2 s, refuses their credentials, and leaves the others relaying (%i relay threads)", async (threads, setup) => {
    const fleet = await startFleet(0);
    const cert = testCertificate();
    certificates.push(cert);
    const relay = startRelay(setup.udp, setup.relayPorts, fleet.url, [...cert.flags, `--tls-listening-port=${setup.tls}`, "--fleet-relay-id=revoke-relay", "--prometheus", `--prometheus-port=${setup.metrics}`, `--relay-threads=${threads}`]);
    await waitForListening(relay);
    await waitForEvent(relay, "fleet-registered", 10_000);
    const ports = { udp: setup.udp, tls: setup.tls };
    const peer = await UdpPeer.open();
    sockets.push(peer);

    // Bob of room "kick" over every transport (one credential, as a browser would use), and bystanders.
    const bob = await mint(roomMemberUser("kick", "bob"), 600);
    const victims = [
      await allocated("bob/udp", "udp", ports, bob, peer),
      await allocated("bob/tcp", "tcp", ports, bob, peer),
      await allocated("bob/tls", "tls", ports, bob, peer),
    ];
    const bystanders = [
      await allocated("alice of kick", "udp", ports, await mint(roomMemberUser("kick", "alice"), 600), peer),
      await allocated("alice of kick/tls", "tls", ports, await mint(roomMemberUser("kick", "alice"), 600), peer),
      await allocated("bob of another room", "udp", ports, await mint(roomMemberUser("other", "bob"), 600), peer),
      await allocated("a plain user bob", "tcp", ports, await mint("bob", 600), peer),
    ];
    for (const allocation of [...victims, ...bystanders]) expect(await relays(allocation, peer), `${allocation.name} relays before`).toBe(true);

    // The fleet revokes bob of "kick" until his credential expires.
    const revokedAt = Date.now();
    expect(fleet.revoke([{ room: "kick", peerId: "bob", username: null, until: bob.expiresAt }])).toBe(1);
    const ended = await waitUntil(() => revokedEnds(relay).length >= victims.length, END_WITHIN_MS);
    expect(ended, `3 allocation-end lines with reason revoked within ${END_WITHIN_MS} ms\n${relay.report()}`).toBe(true);
    expect(Date.now() - revokedAt).toBeLessThan(END_WITHIN_MS);
    expect(revokedEnds(relay).map((line) => line.user).sort()).toEqual(["kick/bob", "kick/bob", "kick/bob"]);
    expect(await waitForEvent(relay, "fleet-revoke", 1_000)).toMatchObject({ revocations: 1, held: 1, ended: 3, active: 1 });

    // Data stops; the next request on each is refused; a new Allocate with the credential too.
    for (const victim of victims) {
      expect(await relays(victim, peer, 500), `${victim.name} relays after the revocation`).toBe(false);
      const answer = await refresh(victim);
      expect(answer.messageClass, victim.name).toBe(StunClass.ErrorResponse);
      expect(errorCodeOf(answer), victim.name).toBe(403);
    }
    const again = await openClient("udp", ports);
    expect(errorCodeOf(await allocate(again, bob))).toBe(403);
    const againTls = await openClient("tls", ports);
    expect(errorCodeOf(await allocate(againTls, bob))).toBe(403);

    // Everyone else relays as before and refreshes.
    for (const bystander of bystanders) {
      expect(await relays(bystander, peer), `${bystander.name} relays after the revocation`).toBe(true);
      expect((await refresh(bystander)).messageClass, bystander.name).toBe(StunClass.SuccessResponse);
    }

    // A credential issued after the revocation (it expires later than until) is not covered: a peer may rejoin.
    const rejoined = await allocated("bob rejoined", "udp", ports, await mint(roomMemberUser("kick", "bob"), 900), peer);
    expect(await relays(rejoined, peer)).toBe(true);

    const samples = await metrics(setup.metrics);
    expect(sampleValue(samples, "relay_revocations_active")).toBe(1);
    expect(sampleValue(samples, "relay_allocations_revoked_total", { transport: "udp" })).toBe(1);
    expect(sampleValue(samples, "relay_allocations_revoked_total", { transport: "tcp" })).toBe(1);
    expect(sampleValue(samples, "relay_allocations_revoked_total", { transport: "tls" })).toBe(1);
    expect(sampleValue(samples, "relay_revoked_requests_total")).toBe(5);
    expect(fleet.badMessages()).toEqual([]);
    expect(relay.exit(), relay.report()).toBeUndefined();
  }, 60_000);

  it("by username ends exactly that credential's allocations, by room every member's, and refuses them", async () => {
    const fleet = await startFleet(0);
    const relay = startRelay(29302, [29500, 29549], fleet.url, ["--fleet-relay-id=revoke-username"]);
    await waitForListening(relay);
    await waitForEvent(relay, "fleet-registered", 10_000);
    const ports = { udp: 29302, tls: 0 };
    const peer = await UdpPeer.open();
    sockets.push(peer);

    const carol = await mint("carol", 600);
    const carolLater = await mint("carol", 700);
    const target = await allocated("carol", "udp", ports, carol, peer);
    const sameUser = await allocated("carol, another credential", "tcp", ports, carolLater, peer);
    const roomA = await allocated("team/a", "udp", ports, await mint(roomMemberUser("team", "a"), 600), peer);
    const roomB = await allocated("team/b", "tcp", ports, await mint(roomMemberUser("team", "b"), 600), peer);
    const elsewhere = await allocated("teams/a", "udp", ports, await mint(roomMemberUser("teams", "a"), 600), peer);

    fleet.revoke([{ room: null, peerId: null, username: carol.username, until: carol.expiresAt + 30 }]);
    expect(await waitUntil(() => revokedEnds(relay).length === 1, END_WITHIN_MS), relay.report()).toBe(true);
    expect(await relays(target, peer, 500)).toBe(false);
    expect(errorCodeOf(await refresh(target))).toBe(403);
    expect(await relays(sameUser, peer)).toBe(true);

    fleet.revoke([{ room: "team", peerId: null, username: null, until: nowSeconds() + 600 }]);
    expect(await waitUntil(() => revokedEnds(relay).length === 3, END_WITHIN_MS), relay.report()).toBe(true);
    for (const member of [roomA, roomB]) {
      expect(await relays(member, peer, 500), member.name).toBe(false);
      expect(errorCodeOf(await refresh(member)), member.name).toBe(403);
    }
    expect(await relays(elsewhere, peer)).toBe(true);
    expect(await relays(sameUser, peer)).toBe(true);
    expect(revokedEnds(relay).map((line) => line.user).sort()).toEqual(["carol", "team/a", "team/b"]);
  }, 60_000);
});

describe("replayed revocations", () => {
  it("are enforced from the register on, and end at until", async () => {
    const fleet = await startFleet(0);
    const now = nowSeconds();
    // Expires in 2 s; the revocation holds until 8 s from now (a relay with worker processes takes a
    // few seconds to start under load). The relay accepts a credential up to its clock skew (30 s)
    // past expiry, so after `until` the credential works again.
    const short = await mint(roomMemberUser("late", "dave"), 2, now);
    const long = await mint(roomMemberUser("late", "erin"), 600, now);
    const revocations: Revocation[] = [
      { room: "late", peerId: "dave", username: null, until: now + 8 },
      { room: "late", peerId: "erin", username: null, until: now + 600 },
    ];
    fleet.revocations.push(...revocations);
    const relay = startRelay(29303, [29550, 29599], fleet.url, ["--fleet-relay-id=revoke-replay", "--prometheus", "--prometheus-port=31561"]);
    await waitForListening(relay);
    await waitForEvent(relay, "fleet-registered", 10_000);
    // The replay came before registered, so it is held by now.
    expect(await waitForEvent(relay, "fleet-revoke", 1_000)).toMatchObject({ revocations: 2, held: 2, ended: 0, active: 2 });

    expect(errorCodeOf(await allocate(await openClient("udp", { udp: 29303, tls: 0 }), short))).toBe(403);
    expect(errorCodeOf(await allocate(await openClient("tcp", { udp: 29303, tls: 0 }), long))).toBe(403);

    // Past until (now + 8 s, whole seconds): dave's revocation is gone, erin's holds.
    expect(await waitUntil(() => nowSeconds() > now + 8, 11_000)).toBe(true);
    const daveBack = await openClient("udp", { udp: 29303, tls: 0 });
    const answer = await allocate(daveBack, short);
    expect(answer.messageClass, `Allocate after until: ${errorCodeOf(answer)}`).toBe(StunClass.SuccessResponse);
    expect(errorCodeOf(await allocate(await openClient("udp", { udp: 29303, tls: 0 }), long))).toBe(403);
    const samples = await metrics(31561);
    expect(sampleValue(samples, "relay_revocations_active")).toBe(1);
    expect(fleet.badMessages()).toEqual([]);
  }, 60_000);
});
