/**
 * `--relay-threads 2`: one relay to the outside, two worker processes inside
 * (relay/cluster/primary.ts, relay/cluster/worker.ts). The relay runs as operators run it
 * (`node --import tsx relay/main.ts`, detached, ended by PID); every worker's log line names its
 * slot (`worker`), which is how the test sees where a client landed.
 *
 * The kernel picks a UDP client's worker from its 4-tuple, so the test first learns, for a set of
 * client sockets, which worker each reaches (an allocation it ends at once), and then uses clients
 * of known workers to show that the quotas hold over both, that a restarted worker takes back its
 * clients, and that reloads and drains reach both.
 *
 * Relay ports 32400-32499 are this suite's own (below Linux's ephemeral range).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readdirSync, readFileSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TurnKeyring, type TurnCredential } from "../../../shared/turn/credentials.js";
import type { TransportAddress } from "../../../relay/stun/attributes.js";
import { encodeEvenPort, encodeRequestedTransport, TRANSPORT_PROTOCOL_UDP } from "../../../relay/stun/attributes.js";
import { AttributeType, StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { findAttribute, type StunMessage } from "../../../relay/stun/message.js";
import { requireCoturn, uclientTotals } from "../../node/coturn.js";
import { run } from "../../node/processes.js";
import {
  allocate,
  createPermission,
  deleteAllocation,
  httpGet,
  parsePrometheus,
  sampleValue,
  spawnTestRelay,
  startRelay,
  STOP_TIMEOUT_MS,
  stopAllProcesses,
  waitForEvent,
  waitUntil,
  type StartedRelay,
} from "../ops/ops-helpers.js";
import { errorCodeOf, SECRET, sendIndication, testCertificate, TurnTestClient, UdpPeer, xorAddressOf, type ClientTransport } from "../turn-client.js";

const MIN_PORT = 32400;
const STARTUP_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 60_000;

const clients: TurnTestClient[] = [];
const peers: UdpPeer[] = [];
const tempDirs: string[] = [];

afterAll(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const peer of peers.splice(0)) peer.close();
  await stopAllProcesses();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}, STOP_TIMEOUT_MS + 5_000);

/** The relay with two workers, relay ports `ports` from `minPort`, metrics on any free port. */
function startThreadedRelay(minPort: number, extra: string[] = [], env: Record<string, string> = {}, ports = 20): Promise<StartedRelay> {
  return startRelay({ relayPorts: [minPort, minPort + ports - 1], metricsPort: 0, args: ["--relay-threads=2", ...extra], env }, STARTUP_TIMEOUT_MS);
}

const credentialsByUser = new Map<string, TurnCredential>();

async function credential(userId: string, secret = SECRET): Promise<TurnCredential> {
  const key = `${secret}/${userId}`;
  let minted = credentialsByUser.get(key);
  if (minted === undefined) {
    minted = await new TurnKeyring([secret]).mint(userId, 600);
    credentialsByUser.set(key, minted);
  }
  return minted;
}

async function openClient(port: number, transport: ClientTransport = "udp"): Promise<TurnTestClient> {
  const client = transport === "udp" ? await TurnTestClient.open(port) : await TurnTestClient.openStream(port, transport);
  clients.push(client);
  return client;
}

/** The worker whose "allocation-start" line names this client, waiting for the line. */
async function workerOf(relay: StartedRelay, client: TurnTestClient): Promise<number> {
  const mine = (line: Record<string, unknown>) => line.event === "allocation-start" && typeof line.client === "string" && line.client.includes(`:${client.port}@`);
  const seen = await waitUntil(() => relay.process.events().some(mine), 5_000);
  expect(seen, `no allocation-start line for client port ${client.port}\n${relay.process.report()}`).toBe(true);
  return relay.process.events().filter(mine).at(-1)!.worker as number;
}

/**
 * UDP clients sorted by the worker they reach: each allocates as a user of its own and deletes the
 * allocation at once. The kernel keeps a 4-tuple on one member while the group stays as it is.
 */
async function clientsByWorker(relay: StartedRelay, perWorker: number): Promise<TurnTestClient[][]> {
  const byWorker: TurnTestClient[][] = [[], []];
  for (let probe = 0; probe < 60 && byWorker.some((list) => list.length < perWorker); probe++) {
    const client = await openClient(relay.udpPort);
    const userId = `probe-${probe}`;
    const answer = await allocate(client, await credential(userId));
    expect(answer.messageClass, `probe ${probe}: Allocate answered ${errorCodeOf(answer)}`).toBe(StunClass.SuccessResponse);
    const worker = await workerOf(relay, client);
    expect((await deleteAllocation(client, await credential(userId))).messageClass).toBe(StunClass.SuccessResponse);
    byWorker[worker]!.push(client);
  }
  expect(byWorker.map((list) => list.length >= perWorker), "60 client ports did not reach both workers").toEqual([true, true]);
  return byWorker.map((list) => list.slice(0, perWorker));
}

async function metric(relay: StartedRelay, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const answer = await httpGet(relay.metricsPort, "/metrics");
  expect(answer.status).toBe(200);
  return sampleValue(parsePrometheus(answer.body), name, labels);
}

async function openPeer(): Promise<UdpPeer> {
  const peer = await UdpPeer.open();
  peers.push(peer);
  return peer;
}

/** The RESERVATION-TOKEN of an Allocate's answer, or undefined. */
function tokenOf(message: StunMessage): Buffer | undefined {
  const attribute = findAttribute(message, AttributeType.ReservationToken);
  return attribute === undefined ? undefined : Buffer.from(message.buffer.subarray(attribute.offset, attribute.offset + attribute.length));
}

/** Permits the peer, sends one Send indication through the allocation, and checks the peer got it from `relayed`. */
async function sendThrough(client: TurnTestClient, userId: string, peer: UdpPeer, payload: string, relayed: TransportAddress): Promise<void> {
  expect((await createPermission(client, await credential(userId), { family: 4, address: "127.0.0.1", port: peer.port })).messageClass).toBe(StunClass.SuccessResponse);
  const before = peer.received.length;
  client.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: peer.port }, Buffer.from(payload)));
  expect(await peer.waitFor(before + 1, 5_000), `"${payload}" did not reach the peer`).toBe(true);
  const got = peer.received.at(-1)!;
  expect(got.data.toString()).toBe(payload);
  expect(got.port).toBe(relayed.port);
}

/** Allocates, permits the peer, sends one Send indication through, and checks the peer got it from the relayed address. */
async function relayOnce(client: TurnTestClient, userId: string, peer: UdpPeer, payload: string): Promise<TransportAddress> {
  const allocated = await allocate(client, await credential(userId));
  expect(allocated.messageClass, `Allocate answered ${errorCodeOf(allocated)}`).toBe(StunClass.SuccessResponse);
  const relayed = xorAddressOf(allocated)!;
  await sendThrough(client, userId, peer, payload, relayed);
  return relayed;
}

/** Processes whose command line holds `marker` (a relay's or its workers'), from /proc. */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(marker)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe("--relay-threads: a start that cannot work", () => {
  const run = async (relayPorts: [number, number], args: string[]) => {
    const relay = spawnTestRelay({ relayPorts, loopbackPeers: false, args });
    expect(await waitUntil(() => relay.exit() !== undefined, STARTUP_TIMEOUT_MS), relay.report()).toBe(true);
    return relay;
  };

  it("refuses, with what to change, a port range too small for the workers or an explicit count without the native UDP I/O", async () => {
    const small = await run([MIN_PORT + 240, MIN_PORT + 245], ["--relay-threads=4"]);
    expect(small.exit()).toEqual({ code: 2, signal: null });
    expect(small.stderr()).toMatch(/^relay: the relay port range 32640-32645 is too small for 4 worker processes: .*widen --min-port\.\.--max-port or lower --relay-threads\n$/);
    const dgram = await run([MIN_PORT + 240, MIN_PORT + 249], ["--relay-threads=2", "--udp-io=dgram"]);
    expect(dgram.exit()).toEqual({ code: 2, signal: null });
    expect(dgram.stderr()).toMatch(/^relay: --relay-threads 2: --udp-io=dgram cannot share a UDP port between processes; use --udp-io=native or auto, or run --relay-threads 1\n$/);
  }, TEST_TIMEOUT_MS);

  it("fails the start with one line and leaves no worker behind when the metrics port is taken", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const metricsPort = (taken.address() as AddressInfo).port;
    const marker = `relaykit.threads.metrics-taken.${process.pid}`;
    try {
      const relay = await run([MIN_PORT + 240, MIN_PORT + 249], ["--relay-threads=2", "--prometheus", `--prometheus-port=${metricsPort}`, `--software=${marker}`]);
      expect(relay.exit()).toEqual({ code: 1, signal: null });
      expect(relay.stderr()).toMatch(new RegExp(`^relay: cannot listen for metrics on 127\\.0\\.0\\.1:${metricsPort} \\(EADDRINUSE\\); check --prometheus-address and --prometheus-port\\n$`));
      expect(await waitUntil(() => processesWith(marker).length === 0, 5_000), `workers left: ${processesWith(marker)}`).toBe(true);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  }, TEST_TIMEOUT_MS);
});

describe("--relay-threads 2", () => {
  it(
    "spreads UDP clients over both workers; each relays its clients' traffic from a port of its own slice",
    async () => {
      const relay = await startThreadedRelay(MIN_PORT);
      expect(relay.listening.relayThreads).toBe(2);
      expect(relay.workerPids).toHaveLength(2);
      const slices = relay.listening.workers!.map((worker) => worker.relayPorts.split("-").map(Number) as [number, number]);
      expect(slices).toEqual([
        [MIN_PORT, MIN_PORT + 9],
        [MIN_PORT + 10, MIN_PORT + 19],
      ]);
      const peer = await openPeer();
      const byWorker = await clientsByWorker(relay, 3);
      for (const [worker, list] of byWorker.entries()) {
        for (const [index, client] of list.entries()) {
          const relayed = await relayOnce(client, `user-${worker}-${index}`, peer, `from worker ${worker} client ${index}`);
          const [low, high] = slices[worker]!;
          expect(relayed.port, `worker ${worker}'s relay port`).toBeGreaterThanOrEqual(low);
          expect(relayed.port).toBeLessThanOrEqual(high);
        }
      }
      // The one /metrics sums both workers: 6 live allocations, and as many opened as both logged
      // (a log line is written up to 25 ms after the event, so the count is awaited).
      expect(await metric(relay, "relay_allocations_active", { transport: "udp" })).toBe(6);
      const total = await metric(relay, "relay_allocations_total", { transport: "udp" });
      const started = () => relay.process.events().filter((line) => line.event === "allocation-start");
      expect(await waitUntil(() => started().length === total, 5_000), `${started().length} allocation-start lines for ${total} allocations`).toBe(true);
      expect(new Set(started().map((line) => line.worker))).toEqual(new Set([0, 1]));
      expect(await metric(relay, "relay_workers")).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "holds the user and total quotas over both workers exactly: the N+1th is refused whichever worker gets it",
    async () => {
      const relay = await startThreadedRelay(MIN_PORT + 20, ["--user-quota=3", "--total-quota=5"]);
      const [zero, one] = await clientsByWorker(relay, 4);
      const ok = async (client: TurnTestClient, userId: string) => expect((await allocate(client, await credential(userId))).messageClass).toBe(StunClass.SuccessResponse);
      const refusedWith = async (client: TurnTestClient, userId: string) => errorCodeOf(await allocate(client, await credential(userId)));
      // alice: two on worker 0, one on worker 1; her fourth is refused on either.
      await ok(zero![0]!, "alice");
      await ok(zero![1]!, "alice");
      await ok(one![0]!, "alice");
      expect(await refusedWith(one![1]!, "alice")).toBe(486);
      expect(await refusedWith(zero![2]!, "alice")).toBe(486);
      // bob takes the last two of the five in all; the sixth is refused on either worker.
      await ok(one![1]!, "bob");
      await ok(zero![2]!, "bob");
      expect(await refusedWith(one![2]!, "carol")).toBe(508);
      expect(await refusedWith(zero![3]!, "carol")).toBe(508);
      // One of alice's ends on worker 0: worker 1 may now make one for carol.
      expect((await deleteAllocation(zero![0]!, await credential("alice"))).messageClass).toBe(StunClass.SuccessResponse);
      await ok(one![2]!, "carol");
      expect(await refusedWith(one![3]!, "carol")).toBe(508);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "serves TCP and TLS connections on both workers",
    async () => {
      const certificate = testCertificate();
      try {
        const relay = await startThreadedRelay(MIN_PORT + 40, [...certificate.flags, "--tls-listening-port=0"]);
        const tcpPort = relay.port("tcp");
        const tlsPort = relay.port("tls");
        const peer = await openPeer();
        for (const [transport, port] of [["tcp", tcpPort], ["tls", tlsPort]] as const) {
          const workers = new Set<number>();
          for (let index = 0; index < 4; index++) {
            const client = await openClient(port, transport);
            await relayOnce(client, `${transport}-${index}`, peer, `${transport} ${index}`);
            workers.add(await workerOf(relay, client));
          }
          expect([...workers].sort(), `${transport} connections reached workers ${[...workers]}`).toEqual([0, 1]);
        }
      } finally {
        certificate.remove();
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "holds --max-connections-per-ip over both workers: connections past the cap are closed, whichever worker took them",
    async () => {
      const relay = await startThreadedRelay(MIN_PORT + 180, ["--max-connections-per-ip=3"]);
      const tcpPort = relay.port("tcp");
      const open = async (): Promise<{ socket: Socket; closed: () => boolean }> => {
        const socket = connect({ host: "127.0.0.1", port: tcpPort });
        let closed = false;
        socket.on("error", () => {});
        socket.on("close", () => (closed = true));
        await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
        return { socket, closed: () => closed };
      };
      try {
        // Dealt round-robin: 3 and 2 per worker, so neither worker's own count reaches 3.
        const first: { socket: Socket; closed: () => boolean }[] = [];
        for (let index = 0; index < 5; index++) first.push(await open());
        expect(await waitUntil(() => first.filter((connection) => connection.closed()).length === 2, 5_000), "two of five should be closed").toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(first.filter((connection) => !connection.closed())).toHaveLength(3);
        expect(await metric(relay, "relay_stream_closed_total", { reason: "per_ip_limit" })).toBe(2);
        // One closes: the next one is kept.
        first.find((connection) => !connection.closed())!.socket.destroy();
        await new Promise((resolve) => setTimeout(resolve, 300));
        const next = await open();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        expect(next.closed()).toBe(false);
        for (const connection of [...first, next]) connection.socket.destroy();
      } catch (error) {
        throw new Error(`${String(error)}\n${relay.process.report()}`);
      }
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "honours a RESERVATION-TOKEN on the other worker: the port is lent to it, relays there, and goes back to its owner",
    async () => {
      const relay = await startThreadedRelay(MIN_PORT + 100);
      const [zero, one] = await clientsByWorker(relay, 2);
      const peer = await openPeer();
      const freeBefore = await metric(relay, "relay_ports_free");
      // Worker 0 allocates an even port P and holds P+1 under a token.
      const rtp = await zero![0]!.request(StunMethod.Allocate, [encodeRequestedTransport(TRANSPORT_PROTOCOL_UDP), encodeEvenPort(true)], await credential("pair"));
      expect(rtp.messageClass, `EVEN-PORT R answered ${errorCodeOf(rtp)}`).toBe(StunClass.SuccessResponse);
      const token = tokenOf(rtp)!;
      const rtpPort = xorAddressOf(rtp)!.port;
      // A client of worker 1 brings the token: worker 1 borrows P+1.
      const rtcp = await one![0]!.request(StunMethod.Allocate, [encodeRequestedTransport(TRANSPORT_PROTOCOL_UDP), { type: AttributeType.ReservationToken, value: token }], await credential("pair"));
      expect(rtcp.messageClass, `the token's Allocate answered ${errorCodeOf(rtcp)}`).toBe(StunClass.SuccessResponse);
      expect(xorAddressOf(rtcp)!.port).toBe(rtpPort + 1);
      expect(await workerOf(relay, one![0]!)).toBe(1);
      await sendThrough(one![0]!, "pair", peer, "over the borrowed port", xorAddressOf(rtcp)!);
      // A token is good once, on any worker.
      const again = await zero![1]!.request(StunMethod.Allocate, [encodeRequestedTransport(TRANSPORT_PROTOCOL_UDP), { type: AttributeType.ReservationToken, value: token }], await credential("pair"));
      expect(errorCodeOf(again)).toBe(508);
      // Both end: every port is free again, the borrowed one back in worker 0's pool.
      expect((await deleteAllocation(one![0]!, await credential("pair"))).messageClass).toBe(StunClass.SuccessResponse);
      expect((await deleteAllocation(zero![0]!, await credential("pair"))).messageClass).toBe(StunClass.SuccessResponse);
      expect(await waitUntil(async () => (await metric(relay, "relay_ports_free")) === freeBefore, 5_000), "a port was not given back").toBe(true);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "counts a user's port reservations over both workers against --user-quota",
    async () => {
      const relay = await startThreadedRelay(MIN_PORT + 200, ["--user-quota=2"]);
      const [zero, one] = await clientsByWorker(relay, 2);
      const reserve = async (client: TurnTestClient) => client.request(StunMethod.Allocate, [encodeRequestedTransport(TRANSPORT_PROTOCOL_UDP), encodeEvenPort(true)], await credential("reserver"));
      // One reservation made on each worker; each allocation is deleted at once, its reservation stays (30 s).
      for (const client of [zero![0]!, one![0]!]) {
        const answer = await reserve(client);
        expect(answer.messageClass, `EVEN-PORT R answered ${errorCodeOf(answer)}`).toBe(StunClass.SuccessResponse);
        expect(tokenOf(answer)).toBeDefined();
        expect((await deleteAllocation(client, await credential("reserver"))).messageClass).toBe(StunClass.SuccessResponse);
      }
      // A third, on either worker (each holds only one): the user holds two, the quota.
      for (const client of [zero![1]!, one![1]!]) {
        const answer = await reserve(client);
        expect(errorCodeOf(answer)).toBe(486);
      }
      // Without the R bit the user may still allocate (no reservation asked for).
      expect((await allocate(zero![1]!, await credential("reserver"))).messageClass).toBe(StunClass.SuccessResponse);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "relays every message of turnutils_uclient in its default mode (RTP/RTCP pairs through reservations) over both workers",
    async () => {
      requireCoturn();
      const relay = await startThreadedRelay(MIN_PORT + 120, [], {}, 60);
      const user = await credential("uclient-threads");
      const args = ["-y", "-m", "10", "-n", "20", "-u", user.username, "-w", user.password, "-p", String(relay.udpPort), "127.0.0.1"];
      const result = await run("turnutils_uclient", args, 30_000);
      const report = `turnutils_uclient ${args.join(" ")}\nexit ${result.code}\n${result.stdout.slice(-2000)}\n${result.stderr.slice(-2000)}\n${relay.process.report()}`;
      expect(result.code, report).toBe(0);
      const totals = uclientTotals(result.stdout + result.stderr);
      expect(totals, report).toBeDefined();
      expect(totals!.received, report).toBe(totals!.sent);
      const started = relay.process.events().filter((line) => line.event === "allocation-start");
      expect(new Set(started.map((line) => line.worker)), report).toEqual(new Set([0, 1]));
      expect(await metric(relay, "relay_port_reservations_total", { result: "used" }), report).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "replaces a killed worker in its slot: its clients reach the new one, the other worker's allocations live on",
    async () => {
      const relay = await startThreadedRelay(MIN_PORT + 60);
      const [zero, one] = await clientsByWorker(relay, 2);
      const peer = await openPeer();
      await relayOnce(zero![0]!, "survivor", peer, "before");
      await relayOnce(one![0]!, "victim", peer, "before");
      process.kill(relay.workerPids[1]!, "SIGKILL");
      const exited = await waitForEvent(relay.process, "worker-exited", 10_000);
      expect(exited).toMatchObject({ worker: 1, pid: relay.workerPids[1], signal: "SIGKILL", allocationsEnded: 1 });
      const restarted = await waitForEvent(relay.process, "worker-restarted", STARTUP_TIMEOUT_MS);
      expect(restarted.worker).toBe(1);
      expect(restarted.pid).not.toBe(relay.workerPids[1]);
      expect(await metric(relay, "relay_worker_restarts_total")).toBe(1);
      // Worker 0's allocation was not touched: it still relays, without a new Allocate.
      const before = peer.received.length;
      zero![0]!.sendRaw(sendIndication({ family: 4, address: "127.0.0.1", port: peer.port }, Buffer.from("still here")));
      expect(await peer.waitFor(before + 1, 5_000)).toBe(true);
      // Worker 1's client lost its allocation; it allocates again, on the new worker 1 (same socket, same group).
      const linesBefore = relay.process.events().length;
      await relayOnce(one![1]!, "victim-again", peer, "after");
      const startedSince = () => relay.process.events().slice(linesBefore).find((event) => event.event === "allocation-start");
      expect(await waitUntil(() => startedSince() !== undefined, 5_000), "no allocation-start line").toBe(true);
      expect(startedSince()?.worker).toBe(1);
      expect(await metric(relay, "relay_workers")).toBe(2);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "reloads and drains every worker: a new secret works on both; SIGTERM refuses new allocations on both and exits when the last one ends",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "relaykit-threads-"));
      tempDirs.push(dir);
      const secretFile = join(dir, "turn-secret");
      writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
      const relay = await startThreadedRelay(MIN_PORT + 80, [`--static-auth-secret-file=${secretFile}`, "--drain-timeout=30"], { RELAY_STATIC_AUTH_SECRET: "" });
      const [zero, one] = await clientsByWorker(relay, 3);
      const rotated = "rotated-threads-secret-0123456789";
      writeFileSync(secretFile, `${rotated}\n`);
      process.kill(relay.process.pid, "SIGHUP");
      const reloaded = await waitForEvent(relay.process, "reloaded", 10_000);
      expect(reloaded).toMatchObject({ secretCount: 1, workers: 2 });
      for (const [worker, client] of [zero![0]!, one![0]!].entries()) {
        expect((await allocate(client, await credential(`rotated-${worker}`, rotated))).messageClass, `worker ${worker} with the new secret`).toBe(StunClass.SuccessResponse);
        expect(errorCodeOf(await allocate(zero![1 + worker]!, await credential(`old-${worker}`)))).toBe(401);
      }
      expect((await httpGet(relay.metricsPort, "/readyz")).status).toBe(200);

      process.kill(relay.process.pid, "SIGTERM");
      await waitForEvent(relay.process, "stopping", 5_000);
      expect(await waitUntil(async () => (await httpGet(relay.metricsPort, "/readyz")).status === 503, 5_000)).toBe(true);
      expect(await metric(relay, "relay_draining")).toBe(1);
      expect(errorCodeOf(await allocate(zero![2]!, await credential("late-0", rotated)))).toBe(508);
      expect(errorCodeOf(await allocate(one![2]!, await credential("late-1", rotated)))).toBe(508);
      // The relay waits for the two live allocations, one on each worker; it exits once both end.
      expect(relay.process.exit()).toBeUndefined();
      for (const [worker, client] of [zero![0]!, one![0]!].entries()) {
        expect((await deleteAllocation(client, await credential(`rotated-${worker}`, rotated))).messageClass).toBe(StunClass.SuccessResponse);
      }
      expect(await waitUntil(() => relay.process.exit() !== undefined, 10_000), relay.process.report()).toBe(true);
      expect(relay.process.exit()).toEqual({ code: 0, signal: null });
    },
    TEST_TIMEOUT_MS,
  );
});
