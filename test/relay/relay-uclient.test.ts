/**
 * Clients we did not write, against our relay on loopback: coturn's `turnutils_stunclient` and
 * `turnutils_uclient` in its main modes (channels, Send indications, client-to-client, TCP, TLS), in
 * its default RTP/RTCP-pair mode (EVEN-PORT with the R bit, then RESERVATION-TOKEN) and with `-c`,
 * with credentials the Worker's keyring minted. Every message must come back: zero loss.
 */
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayServer } from "../../relay/server/relay-server.js";
import { trafficSoFar } from "../../relay/server/stats.js";
import { requireCoturn, uclientTotals } from "../node/coturn.js";
import { freePort, run, signalGroup } from "../node/processes.js";
import { canBindUdp, mint, startRelay, testCertificate } from "./turn-client.js";

const UCLIENT_TIMEOUT_MS = 30_000;
/**
 * Echoes uclient's TLS client may count lost although the relay wrote them to it: it waits a fixed time
 * for the last ones (see the TLS case). A tenth of the 40 it sends: in CI it counted 2, then 3 (the LTS
 * run beside npm test's three files at a time), while the relay's own counters were exact.
 */
const LATE_TLS_ECHOES = 4;
const PEER_START_TIMEOUT_MS = 10_000;

/** A UDP port P on 127.0.0.1 with P + 1 free too (turnutils_peer binds both). */
async function freeUdpPair(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await freePort();
    if (port < 65535 && (await canBindUdp(port)) && (await canBindUdp(port + 1))) return port;
  }
  throw new Error("no two consecutive UDP ports free on 127.0.0.1 after 20 tries");
}

/**
 * Waits, at most `timeoutMs`, until something on UDP `port` of 127.0.0.1 echoes a datagram (as
 * turnutils_peer does once it is up). Asking it, rather than trying to bind the port ourselves,
 * never holds the port at the moment the peer binds it.
 */
async function udpEchoes(port: number, timeoutMs: number): Promise<boolean> {
  const socket = createSocket("udp4");
  socket.on("error", () => undefined); // a send to a port nobody holds yet is not an error of the wait's
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  try {
    const echoed = new Promise<true>((resolve) => socket.once("message", () => resolve(true)));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      socket.send("ready?", port, "127.0.0.1");
      const answer = await Promise.race([echoed, new Promise<false>((resolve) => setTimeout(() => resolve(false), 100))]);
      if (answer) return true;
    }
    return false;
  } finally {
    socket.close();
  }
}

describe("coturn's clients against the relay", () => {
  let relay: RelayServer;
  let port: number;
  let tlsPort: number;
  let certificate: ReturnType<typeof testCertificate> | undefined;
  const events: unknown[] = [];

  beforeAll(async () => {
    requireCoturn();
    certificate = testCertificate();
    let listeners;
    ({ relay } = await startRelay(
      [
        "--allow-loopback-peers",
        "--min-port=41000",
        "--max-port=41199",
        ...certificate!.flags,
        "--tls-listening-port=0",
      ],
      (event) => events.push(event),
      (bound) => (listeners = bound),
    ));
    port = listeners!.find((l: { transport: string }) => l.transport === "udp")!.port;
    tlsPort = listeners!.find((l: { transport: string }) => l.transport === "tls")!.port;
  });

  afterAll(async () => {
    await relay?.stop();
    certificate?.remove();
  });

  it("answers turnutils_stunclient's Binding with the client's address", async () => {
    const result = await run("turnutils_stunclient", ["-p", String(port), "127.0.0.1"], 10_000);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout + result.stderr).toMatch(/UDP reflexive addr: 127\.0\.0\.1:\d+/);
  });

  /** Runs turnutils_uclient with `args` and expects it to exit 0 having sent messages; returns its totals and report. */
  async function runUclientSending(args: string[]): Promise<{ sent: number; received: number; report: string }> {
    const result = await run("turnutils_uclient", args, UCLIENT_TIMEOUT_MS);
    const report = `turnutils_uclient ${args.join(" ")}\nexit ${result.code}\n${result.stdout}\n${result.stderr}`;
    expect(result.code, report).toBe(0);
    const totals = uclientTotals(result.stdout + result.stderr);
    expect(totals, report).toBeDefined();
    expect(totals!.sent, report).toBeGreaterThan(0);
    return { sent: totals!.sent, received: totals!.received, report };
  }

  /** Runs turnutils_uclient with `args` and expects it to exit 0 with every message it sent echoed back; returns its report. */
  async function expectEveryMessageRelayed(args: string[]): Promise<string> {
    const { sent, received, report } = await runUclientSending(args);
    expect(received, report).toBe(sent);
    return report;
  }

  const modes: [string, string[]][] = [
    ["channels, client to client", ["-y"]],
    ["Send and Data indications, client to client", ["-y", "-s"]],
    ["ten clients at once", ["-y", "-m", "10"]],
    ["1000-byte messages", ["-y", "-l", "1000"]],
    ["TCP", ["-y", "-t"]],
    ["TCP with Send indications", ["-y", "-t", "-s"]],
  ];
  // uclient waits a random 1-6 s before sending, so the modes run side by side.
  it.concurrent.each(modes)("relays every message: %s", async (_, flags) => {
    const credential = await mint("uclient", 600);
    const args = [...flags, "-c", "-n", "20", "-u", credential.username, "-w", credential.password, "-p", String(port), "127.0.0.1"];
    await expectEveryMessageRelayed(args);
  }, UCLIENT_TIMEOUT_MS + 5_000);

  // Without -c, uclient asks for an RTP/RTCP pair: an Allocate with EVEN-PORT's R bit, then one carrying the
  // RESERVATION-TOKEN it got back (RFC 8656 §7.2). That is its default invocation.
  const defaultModes: [string, string[]][] = [
    ["channels, client to client", ["-y"]],
    ["Send and Data indications, client to client", ["-y", "-s"]],
    ["five clients at once", ["-y", "-m", "5"]],
    ["TCP", ["-y", "-t"]],
  ];
  it.concurrent.each(defaultModes)("relays every message in uclient's default mode (RTP/RTCP pair, no -c): %s", async (_, flags) => {
    const credential = await mint("uclient-pair", 600);
    const args = [...flags, "-n", "20", "-u", credential.username, "-w", credential.password, "-p", String(port), "127.0.0.1"];
    await expectEveryMessageRelayed(args);
  }, UCLIENT_TIMEOUT_MS + 5_000);

  it("relays every message in uclient's plain default invocation: to turnutils_peer, RTP/RTCP pair, no flags", async () => {
    const peerPort = await freeUdpPair();
    // turnutils_peer echoes on peerPort (RTP) and peerPort + 1 (RTCP); it is stopped by its process group.
    const peer = spawn("turnutils_peer", ["-p", String(peerPort), "-L", "127.0.0.1"], { stdio: "ignore", detached: true });
    try {
      expect(await udpEchoes(peerPort, PEER_START_TIMEOUT_MS), "turnutils_peer did not start").toBe(true);
      const before = { ...relay.stats.reservations };
      const credential = await mint("uclient-default", 600);
      const args = ["-n", "20", "-e", "127.0.0.1", "-r", String(peerPort), "-u", credential.username, "-w", credential.password, "-p", String(port), "127.0.0.1"];
      const report = await expectEveryMessageRelayed(args);
      // It asked for the pair: reservations were made and one was honoured.
      expect(relay.stats.reservations.issued - before.issued, report).toBeGreaterThan(0);
      expect(relay.stats.reservations.used - before.used, report).toBeGreaterThan(0);
    } finally {
      signalGroup(peer.pid!, "SIGKILL");
    }
  }, UCLIENT_TIMEOUT_MS + PEER_START_TIMEOUT_MS + 5_000);

  // Alone, after the concurrent modes: uclient's TLS client waits a fixed time for the last echoes, and
  // with a dozen other uclients busy beside it on two cores one arrived late (CI, twice), counted lost.
  // It still happens when the whole npm test runs beside this suite (the LTS run, once): so the relay's
  // own counters are the measure here, exact, and uclient may count at most LATE_TLS_ECHOES of the
  // messages the relay did write to it as lost.
  it("relays every message over TLS (turns:): the relay writes each one to the receiving client", async () => {
    const credential = await mint("uclient-tls", 600);
    const args = ["-y", "-t", "-S", "-c", "-n", "20", "-u", credential.username, "-w", credential.password, "-p", String(tlsPort), "127.0.0.1"];
    const before = trafficSoFar(relay.stats.endedTraffic, relay.table.values());
    const backlogDropsBefore = relay.stats.streamBacklogDropped;
    const { sent, received, report } = await runUclientSending(args);
    const after = trafficSoFar(relay.stats.endedTraffic, relay.table.values());
    // Every message uclient sent reached the relay, went to the other client's relay address, and was
    // written to that client's TLS connection: none dropped on the way.
    expect(after.packetsToPeers - before.packetsToPeers, report).toBe(sent);
    expect(after.packetsToClient - before.packetsToClient, report).toBe(sent);
    expect(after.droppedFromPeers - before.droppedFromPeers, report).toBe(0);
    expect(relay.stats.streamBacklogDropped - backlogDropsBefore, report).toBe(0);
    expect(received, report).toBeGreaterThanOrEqual(sent - LATE_TLS_ECHOES);
    expect(received, report).toBeLessThanOrEqual(sent);
  }, UCLIENT_TIMEOUT_MS + 5_000);

  it("is refused with a credential signed by another secret", async () => {
    const args = ["-y", "-c", "-n", "1", "-u", `${Math.floor(Date.now() / 1000) + 600}:eve`, "-w", "bm90LXRoZS1wYXNzd29yZA==", "-p", String(port), "127.0.0.1"];
    const result = await run("turnutils_uclient", args, UCLIENT_TIMEOUT_MS);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/Cannot complete Allocation/);
  }, UCLIENT_TIMEOUT_MS + 5_000);
});
