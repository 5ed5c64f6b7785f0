/**
 * --external-ip-stun-server: the relay asks a STUN server, at start, which public address its relay
 * IP maps to. Only loopback here: a stand-in STUN server that answers with a documentation address
 * (as a server beyond a 1:1 NAT would see the relay), a second relay as a real STUN server, one that
 * never answers (bounded in time), and one that loses the first request (resent).
 * Relay ports 42700-42799 are this file's own.
 */
import { createSocket, type Socket } from "node:dgram";
import { afterAll, describe, expect, it } from "vitest";
import { DiscoveryError, discoverMappedAddress, externalAddressesFrom } from "../../../relay/ops/discovery.js";
import { encodeXorAddress } from "../../../relay/stun/attributes.js";
import { buildStunMessage } from "../../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { decodeStunMessage } from "../../../relay/stun/message.js";
import { REALM, SECRET, TurnTestClient, mint, startRelay } from "../turn-client.js";
import { allocateOk, cleanEnv, spawnRelay, stopAllProcesses, waitForEvent, waitForListening, portOf, waitUntil } from "./ops-helpers.js";

const PUBLIC_ADDRESS = "203.0.113.7";
const sockets: Socket[] = [];
const clients: TurnTestClient[] = [];

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  for (const client of clients.splice(0)) client.close();
  await stopAllProcesses();
}, 30_000);

interface FakeStunServer {
  port: number;
  /** Source addresses of the requests seen. */
  seen: string[];
}

/**
 * A STUN server on 127.0.0.1 that answers Binding requests with XOR-MAPPED-ADDRESS `mapped`,
 * ignoring the first `drop` requests (as a lossy path would).
 */
async function fakeStunServer(mapped: string, drop = 0, answer = true): Promise<FakeStunServer> {
  const socket = createSocket("udp4");
  sockets.push(socket);
  const seen: string[] = [];
  socket.on("message", (data, from) => {
    seen.push(from.address);
    const decoded = decodeStunMessage(data);
    if (!answer || !decoded.ok || decoded.message.method !== StunMethod.Binding || seen.length <= drop) return;
    const id = decoded.message.transactionId;
    socket.send(
      buildStunMessage({
        method: StunMethod.Binding,
        messageClass: StunClass.SuccessResponse,
        transactionId: id,
        attributes: [encodeXorAddress(AttributeType.XorMappedAddress, { family: 4, address: mapped, port: 40_000 }, id)],
      }),
      from.port,
      from.address,
    );
  });
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return { port: socket.address().port, seen };
}

describe("discoverMappedAddress", () => {
  it("returns the address the STUN server saw, asking from the relay IP", async () => {
    const server = await fakeStunServer(PUBLIC_ADDRESS);
    expect(await discoverMappedAddress({ host: "127.0.0.1", port: server.port }, "127.0.0.1", 2_000)).toBe(PUBLIC_ADDRESS);
    expect(server.seen).toEqual(["127.0.0.1"]);
  });

  it("works against a real STUN server: a second relay", async () => {
    const { relay, port } = await startRelay(["--min-port=42700", "--max-port=42709"]);
    try {
      expect(await discoverMappedAddress({ host: "127.0.0.1", port }, "127.0.0.1", 2_000)).toBe("127.0.0.1");
    } finally {
      await relay.stop();
    }
  });

  it("resends a lost request", async () => {
    const server = await fakeStunServer(PUBLIC_ADDRESS, 1);
    expect(await discoverMappedAddress({ host: "127.0.0.1", port: server.port }, "127.0.0.1", 3_000)).toBe(PUBLIC_ADDRESS);
    expect(server.seen.length).toBeGreaterThanOrEqual(2);
  });

  it("gives up after its timeout, saying what to do", async () => {
    const silent = await fakeStunServer(PUBLIC_ADDRESS, 0, false);
    const startedAt = Date.now();
    const error = await discoverMappedAddress({ host: "127.0.0.1", port: silent.port }, "127.0.0.1", 800).catch((caught: unknown) => caught);
    const took = Date.now() - startedAt;
    expect(error).toBeInstanceOf(DiscoveryError);
    expect((error as Error).message).toBe(
      `--external-ip-stun-server 127.0.0.1:${silent.port}: no answer within 800 ms from relay IP 127.0.0.1; check that UDP to it is open, or give --external-ip PUBLIC/PRIVATE instead`,
    );
    expect(took).toBeGreaterThanOrEqual(750);
    expect(took).toBeLessThan(2_000);
    expect(silent.seen.length).toBeGreaterThanOrEqual(2);
  });

  it("turns answers into --external-ip mappings, skipping relay IPs that are public already", () => {
    expect(
      externalAddressesFrom([
        { relayIp: "10.0.0.5", mapped: "203.0.113.10" },
        { relayIp: "2001:db8::5", mapped: "2001:db8::5" },
        { relayIp: "0.0.0.0", mapped: "198.51.100.2" },
      ]),
    ).toEqual([{ public: "203.0.113.10", private: "10.0.0.5" }, { public: "198.51.100.2" }]);
  });
});

describe("relay/main.ts with --external-ip-stun-server", () => {
  it("advertises the discovered address in XOR-RELAYED-ADDRESS", async () => {
    const server = await fakeStunServer(PUBLIC_ADDRESS);
    const relay = spawnRelay(
      ["--listening-ip=127.0.0.1", "--listening-port=0", "--relay-ip=127.0.0.1", "--min-port=42750", "--max-port=42759", `--realm=${REALM}`, `--external-ip-stun-server=127.0.0.1:${server.port}`],
      cleanEnv({ RELAY_STATIC_AUTH_SECRET: SECRET }),
    );
    const discovered = await waitForEvent(relay, "external-ip-discovered", 20_000);
    expect(discovered).toMatchObject({ externalIps: [{ public: PUBLIC_ADDRESS, private: "127.0.0.1" }] });
    const listening = await waitForListening(relay);
    const client = await TurnTestClient.open(portOf(listening, "udp"));
    clients.push(client);
    const relayed = await allocateOk(client, await mint("discovered-user"));
    expect(relayed.address).toBe(PUBLIC_ADDRESS);
    expect(relayed.port).toBeGreaterThanOrEqual(42750);
  }, 30_000);

  it("does not start when the STUN server does not answer, and says so on one line", async () => {
    const silent = await fakeStunServer(PUBLIC_ADDRESS, 0, false);
    const relay = spawnRelay(
      ["--listening-ip=127.0.0.1", "--listening-port=0", "--relay-ip=127.0.0.1", "--min-port=42760", "--max-port=42769", `--external-ip-stun-server=127.0.0.1:${silent.port}`],
      cleanEnv({ RELAY_STATIC_AUTH_SECRET: SECRET }),
    );
    expect(await waitUntil(() => relay.exit() !== undefined, 20_000), relay.report()).toBe(true);
    expect(relay.exit()).toEqual({ code: 1, signal: null });
    expect(relay.stderr().trim()).toMatch(/^relay: --external-ip-stun-server 127\.0\.0\.1:\d+: no answer within 5000 ms from relay IP 127\.0\.0\.1; .*--external-ip/);
    expect(relay.events().find((line) => line.event === "listening")).toBeUndefined();
  }, 30_000);
});
