/**
 * The metrics and health listener, in process: a relay on loopback with createRelayMetrics and the
 * ops listener in front of it, scraped over HTTP as Prometheus would. The numbers must follow what
 * the clients do (allocations come and go, bytes relayed both ways, refusals of every kind), no
 * series may name a user or an address, and the bearer token guards /metrics but not the probes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createRelayMetrics, type RelayMetrics } from "../../../relay/ops/metrics.js";
import { startOpsListener, bearerMatches, type OpsListener } from "../../../relay/ops/http.js";
import type { RelayServer } from "../../../relay/server/relay-server.js";
import { udpSendTotals, type RelayUdpSocket } from "../../../relay/transport/udp-socket.js";
import { buildStunMessage, newTransactionId } from "../../../relay/stun/builder.js";
import { StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, startRelay } from "../turn-client.js";
import { allocate, allocateOk, createPermission, deleteAllocation, httpGet, parsePrometheus, sampleValue, type Sample } from "./ops-helpers.js";

const TOKEN = "metrics-test-token-5d1c0a";
const USER = "metrics-user-77";

let relay: RelayServer;
let relayPort: number;
let metrics: RelayMetrics;
let ops: OpsListener;
let token: string | null = null;
const clients: TurnTestClient[] = [];
const peers: UdpPeer[] = [];

beforeAll(async () => {
  // Ports 42300-42399 are this file's own; one allocation per user keeps the quota test short.
  ({ relay, port: relayPort } = await startRelay(["--allow-loopback-peers", "--min-port=42300", "--max-port=42399", "--user-quota=1"]));
  metrics = createRelayMetrics(relay);
  ops = await startOpsListener({
    address: "127.0.0.1",
    port: 0,
    token: () => token,
    readiness: () => relay.readiness(),
    metrics: async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
  });
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  for (const peer of peers.splice(0)) peer.close();
  token = null;
});

afterAll(async () => {
  await ops?.close();
  await relay?.stop();
});

async function scrape(): Promise<Sample[]> {
  const answer = await httpGet(ops.port, "/metrics", token === null ? {} : { authorization: `Bearer ${token}` });
  expect(answer.status, answer.body).toBe(200);
  expect(String(answer.headers["content-type"])).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(answer.body);
}

async function openClient(): Promise<TurnTestClient> {
  const client = await TurnTestClient.open(relayPort);
  clients.push(client);
  return client;
}

async function openPeer(): Promise<UdpPeer> {
  const peer = await UdpPeer.open();
  peers.push(peer);
  return peer;
}

describe("metrics follow the traffic", () => {
  it("counts allocations as they come and go, and relayed bytes and packets both ways, never going down", async () => {
    const before = await scrape();
    expect(sampleValue(before, "relay_allocations_active", { transport: "udp" })).toBe(0);
    const totalBefore = sampleValue(before, "relay_allocations_total", { transport: "udp" }) ?? -1;
    expect(totalBefore).toBeGreaterThanOrEqual(0);

    const credential = await mint(USER);
    const client = await openClient();
    const peer = await openPeer();
    const relayed = await allocateOk(client, credential);
    const permission = await createPermission(client, credential, { family: 4, address: "127.0.0.1", port: peer.port });
    expect(permission.messageClass).toBe(StunClass.SuccessResponse);

    const during = await scrape();
    expect(sampleValue(during, "relay_allocations_active", { transport: "udp" })).toBe(1);
    expect(sampleValue(during, "relay_allocations_total", { transport: "udp" })).toBe(totalBefore + 1);
    expect(sampleValue(before, "relay_ports_free")).toBe(100);
    expect(sampleValue(during, "relay_ports_free")).toBe(99);

    // Three datagrams of 100 bytes out, two of 50 back.
    for (let i = 0; i < 3; i++) client.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: peer.port }, Buffer.alloc(100, i)));
    expect(await peer.waitFor(3)).toBe(true);
    for (let i = 0; i < 2; i++) peer.send(Buffer.alloc(50, i), relayed.port);
    let received = 0;
    while (received < 2 && (await client.receive(2_000)) !== null) received++;
    expect(received).toBe(2);

    const bytes = (samples: Sample[], direction: string) => sampleValue(samples, "relay_relayed_bytes_total", { direction }) ?? -1;
    const packets = (samples: Sample[], direction: string) => sampleValue(samples, "relay_relayed_packets_total", { direction }) ?? -1;
    const live = await scrape();
    expect(bytes(live, "to_peer") - bytes(before, "to_peer")).toBe(300);
    expect(packets(live, "to_peer") - packets(before, "to_peer")).toBe(3);
    expect(bytes(live, "to_client") - bytes(before, "to_client")).toBe(100);
    expect(packets(live, "to_client") - packets(before, "to_client")).toBe(2);

    expect((await deleteAllocation(client, credential)).messageClass).toBe(StunClass.SuccessResponse);
    const after = await scrape();
    expect(sampleValue(after, "relay_allocations_active", { transport: "udp" })).toBe(0);
    // Totals keep what the ended allocation carried: counters never go down.
    expect(sampleValue(after, "relay_allocations_total", { transport: "udp" })).toBe(totalBefore + 1);
    expect(bytes(after, "to_peer")).toBe(bytes(live, "to_peer"));
    expect(bytes(after, "to_client")).toBe(bytes(live, "to_client"));
    expect(packets(after, "to_client")).toBe(packets(live, "to_client"));
    expect(sampleValue(after, "relay_requests_total", { method: "allocate", result: "success" })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "relay_requests_total", { method: "refresh", result: "success" })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "relay_requests_total", { method: "allocate", result: "401" })).toBeGreaterThanOrEqual(1);
  });

  it("counts auth failures by reason, refused peers and quota refusals", async () => {
    const before = await scrape();
    const count = (samples: Sample[], name: string, labels: Record<string, string> = {}) => sampleValue(samples, name, labels) ?? 0;

    // A password from another secret: bad integrity.
    const forged = { ...(await mint(USER)), password: "not-the-password" };
    const forger = await openClient();
    expect(errorCodeOf(await allocate(forger, forged))).toBe(401);

    // A private peer address: refused with 403 (no datagram is ever sent there).
    const credential = await mint(USER);
    const client = await openClient();
    await allocateOk(client, credential);
    expect(errorCodeOf(await createPermission(client, credential, { family: 4, address: "10.1.2.3", port: 9 }))).toBe(403);

    // --user-quota=1: the same user's second allocation is refused with 486.
    const second = await openClient();
    expect(errorCodeOf(await allocate(second, await mint(USER)))).toBe(486);

    const after = await scrape();
    expect(count(after, "relay_auth_failures_total", { reason: "bad_integrity" }) - count(before, "relay_auth_failures_total", { reason: "bad_integrity" })).toBe(1);
    // Every client's first, unsigned Allocate is a no_credentials failure (forger, client, second).
    expect(count(after, "relay_auth_failures_total", { reason: "no_credentials" }) - count(before, "relay_auth_failures_total", { reason: "no_credentials" })).toBe(3);
    expect(count(after, "relay_peers_refused_total") - count(before, "relay_peers_refused_total")).toBe(1);
    expect(count(after, "relay_quota_refusals_total", { quota: "user" }) - count(before, "relay_quota_refusals_total", { quota: "user" })).toBe(1);
    expect(count(after, "relay_quota_refusals_total", { quota: "total" })).toBe(count(before, "relay_quota_refusals_total", { quota: "total" }));
    expect(count(after, "relay_requests_total", { method: "create_permission", result: "403" }) - count(before, "relay_requests_total", { method: "create_permission", result: "403" })).toBe(1);
    expect((await deleteAllocation(client, credential)).messageClass).toBe(StunClass.SuccessResponse);
  });

  it("counts answers held back by --unauthenticated-rate", async () => {
    // A relay of its own: every test client shares 127.0.0.1, so a tight rate would starve the others.
    const limited = await startRelay(["--min-port=42400", "--max-port=42409", "--unauthenticated-rate=1", "--unauthenticated-burst=2"]);
    try {
      const limitedMetrics = createRelayMetrics(limited.relay);
      const read = async (name: string, labels: Record<string, string> = {}) => sampleValue(parsePrometheus(await limitedMetrics.registry.metrics()), name, labels) ?? 0;
      expect(await read("relay_rate_limited_total")).toBe(0);
      const prober = await TurnTestClient.open(limited.port);
      clients.push(prober);
      for (let i = 0; i < 6; i++) {
        prober.sendRaw(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [] }));
      }
      let answered = 0;
      while ((await prober.receive(300)) !== null) answered++;
      expect(answered).toBeGreaterThanOrEqual(2);
      expect(answered).toBeLessThan(6);
      expect(await read("relay_rate_limited_total")).toBe(6 - answered);
      expect(await read("relay_requests_total", { method: "binding", result: "success" })).toBe(answered);
    } finally {
      await limited.relay.stop();
    }
  });

  it("counts datagrams from source port 0, reports the UDP send queues' running totals, and counts uncaught errors", async () => {
    const before = await scrape();
    expect(sampleValue(before, "relay_udp_source_port_zero_total")).toBe(0);
    // What a raw socket would deliver (relay-udp-abuse.test.ts sends real ones): a Binding from port 0.
    const listener = (relay as unknown as { listeners: RelayUdpSocket[] }).listeners[0]!;
    const binding = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [] });
    listener.onDatagram(binding, 0, binding.length, "127.0.0.1", 0);
    listener.onDatagram(binding, 0, binding.length, "127.0.0.1", 0);
    const after = await scrape();
    expect(sampleValue(after, "relay_udp_source_port_zero_total")).toBe(2);
    // Read from the transport's totals at scrape time (test/relay/udp-socket.test.ts fills real queues).
    const totals = udpSendTotals();
    expect(sampleValue(after, "relay_udp_send_queued_total")).toBe(totals.queued);
    expect(sampleValue(after, "relay_udp_send_dropped_total")).toBe(totals.dropped);
    expect(sampleValue(after, "relay_udp_send_queue_bytes")).toBe(totals.queuedBytes);
    expect(sampleValue(after, "relay_udp_sent_segmented_total")).toBe(totals.segmented);
    expect(sampleValue(after, "relay_uncaught_errors_total", { kind: "exception" })).toBe(0);
    expect(sampleValue(after, "relay_uncaught_errors_total", { kind: "rejection" })).toBe(0);
    metrics.countUncaughtError("rejection");
    const counted = await scrape();
    expect(sampleValue(counted, "relay_uncaught_errors_total", { kind: "rejection" })).toBe(1);
    expect(sampleValue(counted, "relay_uncaught_errors_total", { kind: "exception" })).toBe(0);
  });

  it("has process metrics, and no series that names a user, an address or a port", async () => {
    const credential = await mint(USER);
    const client = await openClient();
    await allocateOk(client, credential);
    const samples = await scrape();
    expect(sampleValue(samples, "process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(sampleValue(samples, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(sampleValue(samples, "nodejs_eventloop_lag_seconds")).toBeDefined();
    const relaySeries = samples.filter((sample) => sample.name.startsWith("relay_"));
    expect(relaySeries.length).toBeGreaterThan(20);
    const allowedLabels = new Set(["transport", "direction", "reason", "method", "result", "quota", "kind", "state"]);
    for (const sample of relaySeries) {
      for (const [name, value] of Object.entries(sample.labels)) {
        expect(allowedLabels.has(name), `${sample.name} has label ${name}`).toBe(true);
        expect(value, `${sample.name}{${name}}`).toMatch(/^[a-z_0-9]+$/);
        expect(value).not.toContain(USER);
        expect(value).not.toContain("127");
      }
    }
    expect((await deleteAllocation(client, credential)).messageClass).toBe(StunClass.SuccessResponse);
  });
});

describe("health and the bearer token", () => {
  it("answers /livez and /readyz without a token, and /metrics only with it", async () => {
    token = TOKEN;
    expect((await httpGet(ops.port, "/livez")).status).toBe(200);
    expect((await httpGet(ops.port, "/readyz")).status).toBe(200);
    const without = await httpGet(ops.port, "/metrics");
    expect(without.status).toBe(401);
    expect(without.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(without.body).not.toContain("relay_");
    expect((await httpGet(ops.port, "/metrics", { authorization: "Bearer wrong-token" })).status).toBe(401);
    expect((await httpGet(ops.port, "/metrics", { authorization: `Basic ${TOKEN}` })).status).toBe(401);
    const withToken = await httpGet(ops.port, "/metrics", { authorization: `Bearer ${TOKEN}` });
    expect(withToken.status).toBe(200);
    expect(withToken.body).toContain("relay_allocations_active");
    expect((await httpGet(ops.port, "/nothing-here")).status).toBe(404);
  });

  it("compares bearer tokens exactly", () => {
    expect(bearerMatches(`Bearer ${TOKEN}`, TOKEN)).toBe(true);
    expect(bearerMatches(`bearer  ${TOKEN} `, TOKEN)).toBe(true);
    expect(bearerMatches(`Bearer ${TOKEN}x`, TOKEN)).toBe(false);
    expect(bearerMatches(`Bearer ${TOKEN.slice(1)}`, TOKEN)).toBe(false);
    expect(bearerMatches(undefined, TOKEN)).toBe(false);
    expect(bearerMatches(TOKEN, TOKEN)).toBe(false);
  });

  it("turns /readyz to 503 once the relay drains, and the draining gauge to 1", async () => {
    // Last in this file: a drain cannot be undone.
    expect((await scrape()).find((sample) => sample.name === "relay_draining")?.value).toBe(0);
    relay.drain();
    const ready = await httpGet(ops.port, "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/draining/);
    expect((await httpGet(ops.port, "/livez")).status).toBe(200);
    expect(sampleValue(await scrape(), "relay_draining")).toBe(1);
    const client = await openClient();
    const refused = await allocate(client, await mint("another-user"));
    expect(errorCodeOf(refused)).toBe(508);
    expect(sampleValue(await scrape(), "relay_quota_refusals_total", { quota: "draining" })).toBe(1);
  });
});
