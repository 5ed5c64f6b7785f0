/**
 * The relay as operators run it: `node --import tsx relay/main.ts` (what `npm run relay` and
 * `npm start` run) with coturn-style flags and `RELAY_*`
 * variables, JSON log lines on stdout, coturn's `turnutils_uclient` relaying through it with
 * credentials the Worker's keyring minted, and SIGTERM stopping it cleanly (exit 0). Bad
 * configurations exit 2 with one `relay: …` line naming the option, never a stack trace, and no
 * secret or password ever reaches the output.
 *
 * Each relay runs detached, leading its own process group that afterAll ends by PID; the spawned
 * process is the relay itself, so SIGTERM reaches it as `docker stop` would. Every wait is bounded. Relay ports 47000-47149 are this suite's own.
 */
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TurnKeyring } from "../../shared/turn/credentials.js";
import { requireCoturn, uclientTotals } from "../node/coturn.js";
import { freeTcpAndUdpPort, run, signalGroup } from "../node/processes.js";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { StunClass, StunMethod } from "../../relay/stun/constants.js";
import { decodeStunMessage } from "../../relay/stun/message.js";
import { cleanEnv, httpGet, parsePrometheus, sampleValue, spawnRelay, STOP_TIMEOUT_MS, stopAllProcesses, waitForListening, waitUntil, type RelayProcess } from "./ops/ops-helpers.js";

const STARTUP_TIMEOUT_MS = 30_000;
const UCLIENT_TIMEOUT_MS = 30_000;
const SHORT_RUN_TIMEOUT_MS = 30_000;

const tempDirs: string[] = [];

afterAll(async () => {
  await stopAllProcesses();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}, STOP_TIMEOUT_MS + 5_000);


// ---------------------------------------------------------------------------------------------------------------

describe("relay/main.ts under turnutils_uclient, stopped with SIGTERM", () => {
  const runs: [string, number, (secret: string) => { args: string[]; env: Record<string, string> }][] = [
    ["the secret in RELAY_STATIC_AUTH_SECRET", 47000, (secret) => ({ args: [], env: { RELAY_STATIC_AUTH_SECRET: secret } })],
    [
      "the secret in --static-auth-secret-file",
      47100,
      (secret) => {
        const dir = mkdtempSync(join(tmpdir(), "relaykit-main-"));
        tempDirs.push(dir);
        const file = join(dir, "turn-secret");
        writeFileSync(file, `\n  ${secret}  \n\n`, { mode: 0o600 });
        return { args: [`--static-auth-secret-file=${file}`], env: {} };
      },
    ],
  ];

  it.each(runs)(
    "relays and logs every allocation: %s",
    async (_, minPort, secretSource) => {
      requireCoturn();
      const secret = `main-test-secret-${minPort}-${Math.random().toString(36).slice(2)}`;
      const userId = `operator-${minPort}`;
      const port = await freeTcpAndUdpPort();
      const { args: secretArgs, env } = secretSource(secret);
      const relay = spawnRelay(
        [
          "--listening-ip=127.0.0.1",
          `--listening-port=${port}`,
          `--min-port=${minPort}`,
          `--max-port=${minPort + 49}`,
          "--realm=relaykit.main.test",
          // uclient -y relays client to client, between two relay addresses on 127.0.0.1.
          "--allow-loopback-peers",
          ...secretArgs,
        ],
        cleanEnv(env),
      );
      const listening = await waitUntil(() => relay.exit() !== undefined || relay.events().some((event) => event.event === "listening"), STARTUP_TIMEOUT_MS);
      expect(listening && relay.exit() === undefined, `no "listening" line within ${STARTUP_TIMEOUT_MS} ms\n${relay.report()}`).toBe(true);
      const listeningEvent = relay.events().find((event) => event.event === "listening")!;
      expect(listeningEvent.listeners).toEqual(
        expect.arrayContaining([
          { transport: "udp", address: "127.0.0.1", port },
          { transport: "tcp", address: "127.0.0.1", port },
        ]),
      );
      expect(listeningEvent.relayPorts).toBe(`${minPort}-${minPort + 49}`);

      const credential = await new TurnKeyring([secret]).mint(userId, 600);
      const uclientArgs = ["-y", "-c", "-n", "5", "-u", credential.username, "-w", credential.password, "-p", String(port), "127.0.0.1"];
      const uclient = await run("turnutils_uclient", uclientArgs, UCLIENT_TIMEOUT_MS);
      const uclientReport = `turnutils_uclient ${uclientArgs.join(" ")}\nexit ${uclient.code}\n${uclient.stdout}\n${uclient.stderr}\n${relay.report()}`;
      expect(uclient.code, uclientReport).toBe(0);
      const totals = uclientTotals(uclient.stdout + uclient.stderr);
      expect(totals, uclientReport).toBeDefined();
      expect(totals!.sent, uclientReport).toBeGreaterThan(0);
      expect(totals!.received, uclientReport).toBe(totals!.sent);

      process.kill(relay.child.pid!, "SIGTERM");
      const stopped = await waitUntil(() => relay.exit() !== undefined, STOP_TIMEOUT_MS);
      expect(stopped, `the relay did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n${relay.report()}`).toBe(true);
      expect(relay.exit(), relay.report()).toEqual({ code: 0, signal: null });
      // tsx's esbuild helper shares the group and leaves when it sees the relay gone: give it a moment.
      const groupGone = await waitUntil(() => !signalGroup(relay.child.pid!, 0), 2_000);
      expect(groupGone, "a process of the relay's group outlived it by more than 2 s").toBe(true);

      const events = relay.events();
      expect(events.filter((event) => event.event === "stopping"), relay.report()).toEqual([expect.objectContaining({ signal: "SIGTERM", level: "info" })]);
      for (const event of events) expect(typeof event.time === "string" && !Number.isNaN(Date.parse(event.time)), JSON.stringify(event)).toBe(true);

      const starts = events.filter((event) => event.event === "allocation-start");
      const ends = events.filter((event) => event.event === "allocation-end");
      // -y: two clients, one allocation each.
      expect(starts.length, relay.report()).toBeGreaterThanOrEqual(2);
      for (const start of starts) {
        expect(start.user, JSON.stringify(start)).toBe(userId);
        expect(start.client, JSON.stringify(start)).toMatch(/^udp:127\.0\.0\.1:\d+@127\.0\.0\.1:\d+$/);
        const relayed = /^127\.0\.0\.1:(\d+)$/.exec(String(start.relayed));
        expect(relayed, JSON.stringify(start)).not.toBeNull();
        expect(Number(relayed![1])).toBeGreaterThanOrEqual(minPort);
        expect(Number(relayed![1])).toBeLessThanOrEqual(minPort + 49);
      }
      // Every allocation ended and was logged once: deleted by uclient, or closed by the stop.
      expect(ends.map((end) => end.client).sort(), relay.report()).toEqual(starts.map((start) => start.client).sort());
      const counters = ["packetsToPeers", "bytesToPeers", "packetsToClient", "bytesToClient"] as const;
      for (const end of ends) {
        expect(end.user, JSON.stringify(end)).toBe(userId);
        expect(end.reason, JSON.stringify(end)).toMatch(/^(deleted by the client|relay stopping)$/);
        expect(typeof end.seconds === "number" && Number.isInteger(end.seconds) && end.seconds >= 0, JSON.stringify(end)).toBe(true);
        for (const counter of [...counters, "droppedFromPeers", "droppedOverBandwidth"]) expect(typeof end[counter], `${counter} in ${JSON.stringify(end)}`).toBe("number");
      }
      // uclient opens a third allocation it never uses nor deletes (the stop closes it); the two it
      // relays through carry every message, counted both ways, and are deleted by uclient.
      const used = ends.filter((end) => end.reason === "deleted by the client");
      expect(used.length, relay.report()).toBe(2);
      for (const end of used) {
        for (const counter of counters) expect(end[counter], `${counter} in ${JSON.stringify(end)}`).toBeGreaterThan(0);
        expect(end.droppedFromPeers, JSON.stringify(end)).toBe(0);
      }
      const sum = (counter: string) => ends.reduce((total, end) => total + Number(end[counter]), 0);
      expect(sum("packetsToPeers"), relay.report()).toBe(totals!.sent);
      expect(sum("packetsToClient"), relay.report()).toBe(totals!.received);
      expect(sum("bytesToPeers"), relay.report()).toBe(sum("bytesToClient"));
      for (const end of ends.filter((end) => end.reason === "relay stopping")) {
        expect(events.indexOf(end), "an allocation the stop closed is logged after \"stopping\"").toBeGreaterThan(events.findIndex((event) => event.event === "stopping"));
      }
      // The "stopping" line comes before the allocations the stop closed, and after the listening line.
      const lines = events.map((event) => event.event);
      expect(lines[0]).toBe("listening");
      expect(lines.indexOf("stopping")).toBeGreaterThan(lines.lastIndexOf("allocation-start"));

      const output = relay.stdout() + relay.stderr();
      expect(output.includes(secret), "the secret appears in the relay's output").toBe(false);
      expect(output.includes(credential.password), "the password appears in the relay's output").toBe(false);
      // Only npm's own warnings may be on stderr: no relay error, no stack trace.
      expect(relay.stderr().split("\n").filter((line) => line.trim() !== "" && !line.startsWith("npm warn")), relay.report()).toEqual([]);
    },
    STARTUP_TIMEOUT_MS + UCLIENT_TIMEOUT_MS + STOP_TIMEOUT_MS + 10_000,
  );
});

// ---------------------------------------------------------------------------------------------------------------

/** Runs relay/main.ts to completion (it must exit by itself within the bound). */
async function runToExit(args: string[], env: NodeJS.ProcessEnv): Promise<RelayProcess> {
  const relay = spawnRelay(args, env);
  const exited = await waitUntil(() => relay.exit() !== undefined, SHORT_RUN_TIMEOUT_MS);
  expect(exited, `relay/main.ts ${args.join(" ")} did not exit within ${SHORT_RUN_TIMEOUT_MS} ms\n${relay.report()}`).toBe(true);
  return relay;
}

/** stderr without npm's own warnings. */
function relayStderr(relay: RelayProcess): string[] {
  return relay
    .stderr()
    .split("\n")
    .filter((line) => line.trim() !== "" && !line.startsWith("npm warn"));
}

describe("relay/main.ts command line", () => {
  it(
    "--help prints the options and exits 0",
    async () => {
      const relay = await runToExit(["--help"], cleanEnv());
      expect(relay.exit(), relay.report()).toEqual({ code: 0, signal: null });
      const help = relay.stdout();
      for (const option of ["--listening-ip", "--listening-port", "--relay-ip", "--external-ip", "--min-port", "--max-port", "--realm", "--static-auth-secret", "--static-auth-secret-file", "--help"]) {
        expect(help, option).toContain(option);
      }
      expect(help).toContain("RELAY_MIN_PORT");
      expect(relayStderr(relay), relay.report()).toEqual([]);
    },
    SHORT_RUN_TIMEOUT_MS + 5_000,
  );

  const secret = "cli-test-secret-d41d8cd98f00";
  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ["a port above 65535", ["--listening-ip=127.0.0.1", `--static-auth-secret=${secret}`, "--min-port=70000"], {}, /--min-port is "70000"; it must be a whole number from 1 to 65535/],
    ["an unknown option", ["--listening-ip=127.0.0.1", "--bogus", `--static-auth-secret=${secret}`], {}, /unknown option --bogus/],
    ["no secret at all", ["--listening-ip=127.0.0.1"], {}, /no secret given.*--static-auth-secret/],
    ["a bad variable", ["--listening-ip=127.0.0.1"], { RELAY_STATIC_AUTH_SECRET: secret, RELAY_MAX_PORT: "65536" }, /RELAY_MAX_PORT is "65536"/],
    ["a missing secret file", ["--listening-ip=127.0.0.1", "--static-auth-secret-file=/nonexistent/relaykit-secret"], {}, /--static-auth-secret-file "\/nonexistent\/relaykit-secret" cannot be read \(there is no such file\)/],
    // Regression: the position once came from argv.indexOf(the stray text), which found the same
    // text earlier as --static-auth-secret's value and named argument 3.
    ["a stray argument equal to the secret before it", ["--listening-ip=127.0.0.1", "--static-auth-secret", secret, secret], {}, /unexpected argument 4 that is not an option/],
    ["a stray argument", ["--listening-ip=127.0.0.1", `--static-auth-secret=${secret}`, "stray-text"], {}, /unexpected argument 3 that is not an option \(not shown/],
  ];

  it.concurrent.each(bad)(
    "exits 2 with one line naming the option: %s",
    async (_, args, env, message) => {
      const relay = await runToExit(args, cleanEnv(env));
      expect(relay.exit(), relay.report()).toEqual({ code: 2, signal: null });
      const lines = relayStderr(relay);
      expect(lines, relay.report()).toHaveLength(1);
      expect(lines[0], relay.report()).toMatch(/^relay: /);
      expect(lines[0], relay.report()).toMatch(message);
      expect(relay.stderr(), "a stack trace").not.toMatch(/^\s+at /m);
      expect(relay.stderr() + relay.stdout(), "the secret appears in the output").not.toContain(secret);
      expect(relay.stdout(), "nothing is logged before the config is valid").toBe("");
    },
    SHORT_RUN_TIMEOUT_MS + 5_000,
  );
});

// ---------------------------------------------------------------------------------------------------------------

/** One UDP datagram from 127.0.0.1 port 0 (a raw socket: root only), as in relay-udp-abuse.test.ts. */
function sendFromPortZero(port: number, payload: Buffer): Promise<void> {
  const script = [
    "import socket, struct, sys",
    "port, payload = int(sys.argv[1]), bytes.fromhex(sys.argv[2])",
    "raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)",
    "raw.sendto(struct.pack('!HHHH', 0, port, 8 + len(payload), 0) + payload, ('127.0.0.1', 0))",
  ].join("\n");
  return new Promise((resolve, reject) =>
    execFile("python3", ["-c", script, String(port), payload.toString("hex")], { timeout: 5_000 }, (error, _stdout, stderr) =>
      error === null ? resolve() : reject(new Error(`python3 could not send from port 0: ${error.message} ${stderr}`)),
    ),
  );
}

/** A Binding over a fresh UDP socket; resolves whether it was answered within `timeoutMs`. */
async function bindingAnswered(port: number, timeoutMs = 2_000): Promise<boolean> {
  const socket = createSocket("udp4");
  try {
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    const answered = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      socket.on("message", (data) => {
        const decoded = decodeStunMessage(data);
        if (decoded.ok && decoded.message.messageClass === StunClass.SuccessResponse) {
          clearTimeout(timer);
          resolve(true);
        }
      });
    });
    socket.send(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() }), port, "127.0.0.1");
    return await answered;
  } finally {
    socket.close();
  }
}

const isRoot = process.getuid?.() === 0;
if (!isRoot) {
  // As test/node/netns.ts does it: fail in CI, skip elsewhere, saying why.
  if (process.env["CI"]) {
    describe("relay/main.ts and a datagram from source port 0", () => {
      it("needs root", () => {
        throw new Error("a datagram from source port 0 needs a raw socket, which needs root");
      });
    });
  } else {
    console.warn("relay-main: the source-port-0 test is skipped: it needs root for a raw socket");
  }
}

describe.skipIf(!isRoot)("relay/main.ts and a datagram from source port 0", () => {
  // Once, on dgram, a Binding from port 0 threw ERR_SOCKET_BAD_PORT in the request handler and ended the process.
  it.each(["dgram", "native"] as const)(
    "on --udp-io=%s: the relay lives, counts it, logs no error, and answers the next Binding",
    async (io) => {
      const minPort = io === "dgram" ? 47600 : 47610;
      const relay = spawnRelay(
        ["--listening-ip=127.0.0.1", "--listening-port=0", `--min-port=${minPort}`, `--max-port=${minPort + 9}`, `--udp-io=${io}`, "--prometheus", "--prometheus-port=0"],
        cleanEnv({ RELAY_STATIC_AUTH_SECRET: "main-port-zero-secret-6b1f" }),
      );
      const listening = await waitForListening(relay, STARTUP_TIMEOUT_MS);
      expect(listening.udpIo, relay.report()).toBe(io);
      const port = listening.listeners.find((listener) => listener.transport === "udp")!.port;
      const binding = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() });
      await sendFromPortZero(port, binding);
      await sendFromPortZero(port, binding);
      expect(await bindingAnswered(port), `no Binding answer after the port-0 datagrams\n${relay.report()}`).toBe(true);
      expect(relay.exit(), relay.report()).toBeUndefined();
      const metrics = parsePrometheus((await httpGet(listening.metrics!.port, "/metrics")).body);
      expect(sampleValue(metrics, "relay_udp_source_port_zero_total"), relay.report()).toBe(2);
      expect(sampleValue(metrics, "relay_uncaught_errors_total", { kind: "exception" }), relay.report()).toBe(0);
      expect(sampleValue(metrics, "relay_uncaught_errors_total", { kind: "rejection" }), relay.report()).toBe(0);
      expect(relay.events().filter((event) => event.level === "error" || event.level === "warn"), relay.report()).toEqual([]);
      expect(relayStderr(relay), relay.report()).toEqual([]);
    },
    STARTUP_TIMEOUT_MS + 15_000,
  );
});
