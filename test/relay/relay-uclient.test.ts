/**
 * Clients we did not write, against our relay on loopback: coturn's `turnutils_stunclient` and
 * `turnutils_uclient` in its main modes (channels, Send indications, client-to-client, TCP, TLS),
 * with credentials the Worker's keyring minted. Every message must come back: zero loss.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RelayServer } from "../../relay/server/relay-server.js";
import { requireCoturn, uclientTotals } from "../node/coturn.js";
import { run } from "../node/processes.js";
import { mint, startRelay, testCertificate } from "./turn-client.js";

const UCLIENT_TIMEOUT_MS = 30_000;

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
    const result = await run("turnutils_uclient", args, UCLIENT_TIMEOUT_MS);
    const report = `turnutils_uclient ${args.join(" ")}\nexit ${result.code}\n${result.stdout}\n${result.stderr}`;
    expect(result.code, report).toBe(0);
    const totals = uclientTotals(result.stdout + result.stderr);
    expect(totals, report).toBeDefined();
    expect(totals!.sent, report).toBeGreaterThan(0);
    expect(totals!.received, report).toBe(totals!.sent);
  }, UCLIENT_TIMEOUT_MS + 5_000);

  it.concurrent("relays every message over TLS (turns:)", async () => {
    const credential = await mint("uclient-tls", 600);
    const args = ["-y", "-t", "-S", "-c", "-n", "20", "-u", credential.username, "-w", credential.password, "-p", String(tlsPort), "127.0.0.1"];
    const result = await run("turnutils_uclient", args, UCLIENT_TIMEOUT_MS);
    const report = `turnutils_uclient ${args.join(" ")}\nexit ${result.code}\n${result.stdout}\n${result.stderr}`;
    expect(result.code, report).toBe(0);
    const totals = uclientTotals(result.stdout + result.stderr);
    expect(totals!.received, report).toBe(totals!.sent);
    expect(totals!.sent, report).toBeGreaterThan(0);
  }, UCLIENT_TIMEOUT_MS + 5_000);

  it("is refused with a credential signed by another secret", async () => {
    const args = ["-y", "-c", "-n", "1", "-u", `${Math.floor(Date.now() / 1000) + 600}:eve`, "-w", "bm90LXRoZS1wYXNzd29yZA==", "-p", String(port), "127.0.0.1"];
    const result = await run("turnutils_uclient", args, UCLIENT_TIMEOUT_MS);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toMatch(/Cannot complete Allocation/);
  }, UCLIENT_TIMEOUT_MS + 5_000);
});
