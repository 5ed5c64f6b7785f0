/**
 * The relay process under an orchestrator's signals, as `npm run relay` runs it (relay/main.ts
 * through tsx), on loopback:
 * - SIGTERM drains: /readyz turns 503, new allocations are refused, a live allocation keeps
 *   relaying, and the process exits 0 once it ends, or once --drain-timeout passes;
 * - a second SIGTERM exits 1 at once;
 * - SIGHUP takes a rotated secret, a renewed TLS certificate and a new metrics token while a live
 *   allocation carries on relaying; a broken secret file is refused and changes nothing;
 * - no secret, password or token ever reaches the output.
 * Relay ports 42500-42699 are this file's own.
 */
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, describe, expect, it } from "vitest";
import { TurnKeyring, type TurnCredential } from "../../../shared/turn/credentials.js";
import { StunClass } from "../../../relay/stun/constants.js";
import { SECRET, TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, type ClientTransport } from "../turn-client.js";
import {
  allocate,
  allocateOk,
  cleanEnv,
  createPermission,
  deleteAllocation,
  httpGet,
  parsePrometheus,
  sampleValue,
  spawnRelay,
  startRelay,
  stopAllProcesses,
  waitForEvent,
  waitUntil,
  type StartedRelay,
  type TestRelayOptions,
} from "./ops-helpers.js";

const EXIT_TIMEOUT_MS = 10_000;
const tempDirs: string[] = [];
const sockets: { close(): void }[] = [];

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await stopAllProcesses();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}, 30_000);

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-ops-"));
  tempDirs.push(dir);
  return dir;
}

/** The relay on relay ports `minPort`..+49, metrics on any free port, with `options` on top. */
function startFrom(minPort: number, options: Omit<TestRelayOptions, "relayPorts" | "metricsPort">): Promise<StartedRelay> {
  return startRelay({ relayPorts: [minPort, minPort + 49], metricsPort: 0, ...options });
}

async function openClient(port: number, transport: ClientTransport = "udp"): Promise<TurnTestClient> {
  const client = transport === "udp" ? await TurnTestClient.open(port) : await TurnTestClient.openStream(port, transport);
  sockets.push(client);
  return client;
}

async function openPeer(): Promise<UdpPeer> {
  const peer = await UdpPeer.open();
  sockets.push(peer);
  return peer;
}

/** An allocation with a permission for a fresh peer: the client and the peer, ready to exchange. */
async function relayingPair(port: number, credential: TurnCredential): Promise<{ client: TurnTestClient; peer: UdpPeer; relayedPort: number }> {
  const client = await openClient(port);
  const peer = await openPeer();
  const relayed = await allocateOk(client, credential);
  const permission = await createPermission(client, credential, { family: 4, address: "127.0.0.1", port: peer.port });
  expect(permission.messageClass, `CreatePermission: ${errorCodeOf(permission)}`).toBe(StunClass.SuccessResponse);
  return { client, peer, relayedPort: relayed.port };
}

/** One datagram each way through the allocation; true when both arrived. */
async function relaysBothWays(pair: { client: TurnTestClient; peer: UdpPeer; relayedPort: number }, label: string): Promise<boolean> {
  const already = pair.peer.received.length;
  pair.client.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: pair.peer.port }, Buffer.from(`to peer ${label}`)));
  const toPeer = (await pair.peer.waitFor(already + 1)) && pair.peer.received[already]!.data.toString() === `to peer ${label}`;
  pair.peer.send(Buffer.from(`to client ${label}`), pair.relayedPort);
  const back = await pair.client.receive(2_000);
  return toPeer && back !== null && back.includes(Buffer.from(`to client ${label}`));
}

async function readyStatus(metricsPort: number): Promise<number> {
  return (await httpGet(metricsPort, "/readyz")).status;
}

describe("SIGTERM drains", () => {
  it("refuses new allocations, turns /readyz to 503, keeps a live allocation relaying, and exits 0 when it ends", async () => {
    const { process: relay, udpPort: port, metricsPort } = await startFrom(42500, { args: ["--drain-timeout=60"] });
    const credential = await mint("drain-user");
    const pair = await relayingPair(port, credential);
    expect(await readyStatus(metricsPort)).toBe(200);

    process.kill(relay.pid, "SIGTERM");
    const stopping = await waitForEvent(relay, "stopping", 5_000);
    expect(stopping).toMatchObject({ signal: "SIGTERM", allocations: 1, drainTimeoutSeconds: 60 });
    expect(await readyStatus(metricsPort), relay.report()).toBe(503);
    expect((await httpGet(metricsPort, "/livez")).status).toBe(200);

    const latecomer = await openClient(port);
    const refused = await allocate(latecomer, await mint("late-user")).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${relay.report()}`);
    });
    expect(errorCodeOf(refused)).toBe(508);
    expect(await relaysBothWays(pair, "while draining"), relay.report()).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(relay.exit(), "the relay left before its allocation ended").toBeUndefined();

    const deletedAt = Date.now();
    expect((await deleteAllocation(pair.client, credential)).messageClass).toBe(StunClass.SuccessResponse);
    expect(await waitUntil(() => relay.exit() !== undefined, EXIT_TIMEOUT_MS), relay.report()).toBe(true);
    expect(Date.now() - deletedAt).toBeLessThan(5_000);
    expect(relay.exit(), relay.report()).toEqual({ code: 0, signal: null });
    const events = relay.events().map((line) => line.event);
    expect(events.indexOf("allocation-end")).toBeGreaterThan(events.indexOf("stopping"));
    expect(relay.events().find((line) => line.event === "allocation-end")).toMatchObject({ reason: "deleted by the client", user: "drain-user" });
    expect(relay.events().find((line) => line.event === "drained")).toMatchObject({ reason: "every allocation ended", allocations: 0 });
    expect(relay.stderr()).toBe("");
  }, 40_000);

  it("closes what is left once --drain-timeout passes, then exits 0", async () => {
    const { process: relay, udpPort } = await startFrom(42550, { args: ["--drain-timeout=2"] });
    await relayingPair(udpPort, await mint("slow-user"));
    const signalledAt = Date.now();
    process.kill(relay.pid, "SIGTERM");
    expect(await waitUntil(() => relay.exit() !== undefined, EXIT_TIMEOUT_MS), relay.report()).toBe(true);
    const waited = Date.now() - signalledAt;
    expect(waited).toBeGreaterThanOrEqual(1_900);
    expect(waited).toBeLessThan(6_000);
    expect(relay.exit(), relay.report()).toEqual({ code: 0, signal: null });
    expect(relay.events().find((line) => line.event === "drained")).toMatchObject({ reason: "drain timeout", allocations: 1 });
    expect(relay.events().find((line) => line.event === "allocation-end")).toMatchObject({ reason: "relay stopping", user: "slow-user" });
  }, 40_000);

  it("exits 1 at once on a second signal", async () => {
    const { process: relay, udpPort } = await startFrom(42600, { args: ["--drain-timeout=600"] });
    await relayingPair(udpPort, await mint("stuck-user"));
    process.kill(relay.pid, "SIGTERM");
    await waitForEvent(relay, "stopping", 5_000);
    const secondAt = Date.now();
    process.kill(relay.pid, "SIGTERM");
    expect(await waitUntil(() => relay.exit() !== undefined, EXIT_TIMEOUT_MS), relay.report()).toBe(true);
    expect(Date.now() - secondAt).toBeLessThan(3_000);
    expect(relay.exit(), relay.report()).toEqual({ code: 1, signal: null });
    expect(relay.events().find((line) => line.event === "stopping-now")).toMatchObject({ signal: "SIGTERM", allocations: 1 });
  }, 40_000);
});

describe("SIGHUP reloads", () => {
  it("takes a rotated secret, a renewed certificate and a new metrics token, while a live allocation relays on", async () => {
    const dir = tempDir();
    const secretA = `rotate-a-${Math.random().toString(36).slice(2)}-secret`;
    const secretB = `rotate-b-${Math.random().toString(36).slice(2)}-secret`;
    const tokenA = `token-a-${Math.random().toString(36).slice(2)}`;
    const tokenB = `token-b-${Math.random().toString(36).slice(2)}`;
    const secretFile = join(dir, "turn_secret");
    const tokenFile = join(dir, "metrics_token");
    const certFile = join(dir, "cert.pem");
    const keyFile = join(dir, "key.pem");
    const newCertificate = (name: string) => {
      execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", `/CN=${name}`, "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
      return new X509Certificate(readFileSync(certFile)).fingerprint256;
    };
    writeFileSync(secretFile, `${secretA}\n`);
    writeFileSync(tokenFile, `${tokenA}\n`);
    const firstCertificate = newCertificate("relay-first");

    const started = await startFrom(42650, {
      secret: null,
      args: [`--static-auth-secret-file=${secretFile}`, `--prometheus-token-file=${tokenFile}`, `--cert=${certFile}`, `--pkey=${keyFile}`, "--tls-listening-port=0"],
    });
    const { process: relay, udpPort: port, metricsPort } = started;
    const tlsPort = started.port("tls");
    expect(await servedCertificate(tlsPort)).toBe(firstCertificate);

    const credentialA = await new TurnKeyring([secretA]).mint("rotating-user", 600);
    const pair = await relayingPair(port, credentialA);
    expect(await relaysBothWays(pair, "before the reload")).toBe(true);

    // Rotate everything in place, as a secret store or certbot would, then SIGHUP.
    writeFileSync(secretFile, `${secretB}\n`);
    writeFileSync(tokenFile, `${tokenB}\n`);
    const secondCertificate = newCertificate("relay-second");
    expect(secondCertificate).not.toBe(firstCertificate);
    process.kill(relay.pid, "SIGHUP");
    expect(await waitForEvent(relay, "reloaded", 5_000)).toMatchObject({ secretCount: 1, tls: true, metricsToken: true });

    expect(relay.exit(), relay.report()).toBeUndefined();
    expect(await relaysBothWays(pair, "after the reload"), relay.report()).toBe(true);
    expect(relay.events().filter((line) => line.event === "allocation-end")).toEqual([]);

    const withOldSecret = await openClient(port);
    expect(errorCodeOf(await allocate(withOldSecret, await new TurnKeyring([secretA]).mint("new-user-a", 600)))).toBe(401);
    const credentialB = await new TurnKeyring([secretB]).mint("new-user-b", 600);
    await allocateOk(await openClient(port), credentialB);
    // TLS clients get the new certificate, and can allocate over it.
    expect(await servedCertificate(tlsPort)).toBe(secondCertificate);
    await allocateOk(await openClient(tlsPort, "tls"), await new TurnKeyring([secretB]).mint("tls-user", 600));

    expect((await httpGet(metricsPort, "/metrics", { authorization: `Bearer ${tokenA}` })).status).toBe(401);
    const scraped = await httpGet(metricsPort, "/metrics", { authorization: `Bearer ${tokenB}` });
    expect(scraped.status).toBe(200);
    expect(sampleValue(parsePrometheus(scraped.body), "relay_reloads_total", { result: "ok" })).toBe(1);

    // A broken secret file: refused, logged, and the running secret stays.
    writeFileSync(secretFile, "\n\n");
    process.kill(relay.pid, "SIGHUP");
    const failed = await waitForEvent(relay, "reload-failed", 5_000);
    expect(failed.level).toBe("error");
    expect(String(failed.error)).toMatch(/--static-auth-secret-file .* has no secret in it/);
    await allocateOk(await openClient(port), await new TurnKeyring([secretB]).mint("after-failed-reload", 600));
    expect(await readyStatus(metricsPort)).toBe(200);
    expect(await relaysBothWays(pair, "after a failed reload")).toBe(true);

    process.kill(relay.pid, "SIGTERM");
    expect(await waitUntil(() => relay.exit() !== undefined, EXIT_TIMEOUT_MS), relay.report()).toBe(true);
    expect(relay.exit()).toEqual({ code: 0, signal: null });

    // Secrets never reach the logs: not the secrets, not a password, not the tokens.
    const output = relay.stdout() + relay.stderr();
    for (const secret of [secretA, secretB, tokenA, tokenB, credentialA.password, credentialB.password]) {
      expect(output.includes(secret), `a secret appears in the output:\n${output}`).toBe(false);
    }
    const starts = relay.events().filter((line) => line.event === "allocation-start");
    expect(starts.length).toBe(4);
    for (const start of starts) {
      expect(start).not.toHaveProperty("password");
      expect(String(start.user)).not.toContain(":");
    }
  }, 60_000);
});

describe("bad configuration", () => {
  it("fails fast with one line naming the option and where it was given", async () => {
    const dir = tempDir();
    const configFile = join(dir, "relay.conf");
    writeFileSync(configFile, `# relay\nlistening-ip=127.0.0.1\nstatic-auth-secret=${SECRET}\nmin-port=70000\n`);
    // Nothing but the config file: no flag, no secret in the environment.
    const relay = spawnRelay([], cleanEnv({ RELAY_CONFIG: configFile }));
    expect(await waitUntil(() => relay.exit() !== undefined, EXIT_TIMEOUT_MS), relay.report()).toBe(true);
    expect(relay.exit()).toEqual({ code: 2, signal: null });
    expect(relay.stderr().trim()).toBe(`relay: min-port in ${configFile} line 4 is "70000"; it must be a whole number from 1 to 65535`);
    expect(relay.stdout()).toBe("");
    expect(relay.stdout() + relay.stderr()).not.toContain(SECRET);
  }, 20_000);
});

/** The SHA-256 fingerprint of the certificate a TLS listener presents now. */
function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const certificate = socket.getPeerX509Certificate();
      socket.destroy();
      if (certificate === undefined) reject(new Error("no certificate presented"));
      else resolve(certificate.fingerprint256);
    });
    socket.setTimeout(3_000, () => socket.destroy(new Error(`no TLS handshake on port ${port} within 3 s`)));
    socket.on("error", reject);
  });
}
