/**
 * The relay's control client against the real Worker: `wrangler dev` (local workerd, the fleet
 * Durable Object at /v1/fleet) and the real relay process, on loopback.
 * - the relay connects and registers; the operator view (GET /v1/fleet) shows what it said, and
 *   /v1/ice-servers hands out its URLs;
 * - heartbeats carry live figures: an allocation made with the Worker's own room-scoped credential
 *   shows up as that room in the fleet's view;
 * - with the Worker down the relay keeps serving (an Allocate succeeds); when the Worker comes
 *   back on the same port, the relay reconnects by itself and is handed out again;
 * - SIGTERM with an allocation up: the fleet sees `draining` at once and stops handing the relay out.
 * Ports (below the system's ephemeral range): the relay's listener 31250, relay ports 31300-31399, the Worker 31501. Every wait is
 * bounded; every process is ended by its PID.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { FleetView, RelayView } from "../../../shared/fleet/view.js";
import type { IceServersResponse } from "../../../shared/turn/ice-servers.js";
import type { TurnCredential } from "../../../shared/turn/credentials.js";
import { quietWrangler, repoRoot, signalGroup, sleep } from "../../node/processes.js";
import { unwatchedWranglerConfigArgs } from "../../node/wrangler-config.js";
import { SECRET, TurnTestClient, mint } from "../turn-client.js";
import { allocateOk, spawnTestRelay, stopAllProcesses, waitForListening, waitUntil, type RelayProcess } from "../ops/ops-helpers.js";

const WORKER_PORT = 31501;
const RELAY_PORT = 31250;
const FLEET_KEY = "fleet-worker-test-key-0123456789abcdefgh";
const API_KEY = "fleet-worker-test-api-key";
const WORKER = `http://127.0.0.1:${WORKER_PORT}`;
const WORKER_START_MS = 60_000;
const RELAY_ID = "relay-under-test";

interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
}

const workers: WorkerProcess[] = [];
const sockets: { close(): void }[] = [];
const persistDir = mkdtempSync(join(tmpdir(), "relaykit-fleet-worker-"));

afterAll(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await stopAllProcesses();
  await Promise.all(workers.splice(0).map(stopWorker));
  rmSync(persistDir, { recursive: true, force: true });
}, 30_000);

/** `wrangler dev` with a fleet; its state persists in `persistDir`, as a deployed Worker's does across restarts. */
async function startWorker(): Promise<WorkerProcess> {
  const vars = { TURN_SECRETS: SECRET, FLEET_KEYS: FLEET_KEY, API_KEYS: API_KEY, AUTH_MODE: "open", FLEET_PICK: "2" };
  const child = spawn(
    process.execPath,
    [
      "node_modules/wrangler/bin/wrangler.js", "dev", ...unwatchedWranglerConfigArgs(), "--local", "--ip", "127.0.0.1", "--port", String(WORKER_PORT), "--inspector-port", "0",
      "--persist-to", persistDir, ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
    ],
    { cwd: repoRoot, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...quietWrangler } },
  );
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const worker = { child, output: () => output };
  workers.push(worker);
  const up = await waitUntil(async () => {
    try {
      const response = await fetch(`${WORKER}/v1/rooms/probe`, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      return response.status === 426;
    } catch {
      return false;
    }
  }, WORKER_START_MS, 200);
  expect(up, `wrangler dev did not answer within ${WORKER_START_MS} ms:\n${output}`).toBe(true);
  return worker;
}

async function stopWorker(worker: WorkerProcess): Promise<void> {
  const pid = worker.child.pid;
  if (pid === undefined || !signalGroup(pid, "SIGTERM")) return;
  const deadline = Date.now() + 5_000;
  while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(100);
  signalGroup(pid, "SIGKILL");
  worker.child.stdout?.destroy();
  worker.child.stderr?.destroy();
  workers.splice(workers.indexOf(worker), 1);
}

async function fleetView(): Promise<FleetView> {
  const response = await fetch(`${WORKER}/v1/fleet`, { headers: { Authorization: `Bearer ${API_KEY}` }, signal: AbortSignal.timeout(3_000) });
  expect(response.status).toBe(200);
  return (await response.json()) as FleetView;
}

async function relayInView(): Promise<RelayView | undefined> {
  try {
    return (await fleetView()).relays.find((relay) => relay.id === RELAY_ID);
  } catch {
    return undefined;
  }
}

async function iceServers(query = ""): Promise<IceServersResponse> {
  const response = await fetch(`${WORKER}/v1/ice-servers${query}`, { headers: { Authorization: `Bearer ${API_KEY}` }, signal: AbortSignal.timeout(3_000) });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  return JSON.parse(text) as IceServersResponse;
}

function turnUrlsOf(response: IceServersResponse): string[] {
  return response.iceServers.filter((server) => server.username !== undefined).flatMap((server) => (Array.isArray(server.urls) ? server.urls : [server.urls]));
}

function startRelay(): RelayProcess {
  return spawnTestRelay({
    listeningPort: RELAY_PORT,
    relayPorts: [31300, 31399],
    args: [
      `--fleet-url=ws://127.0.0.1:${WORKER_PORT}/v1/fleet`, `--fleet-relay-id=${RELAY_ID}`, "--fleet-region=test-lab", "--fleet-location=50.11,8.68",
      "--total-quota=100", "--drain-timeout=60",
    ],
    env: { RELAY_FLEET_KEY: FLEET_KEY },
  });
}

async function allocateWith(credential: TurnCredential): Promise<TurnTestClient> {
  const client = await TurnTestClient.open(RELAY_PORT);
  sockets.push(client);
  await allocateOk(client, credential);
  return client;
}

/** The TURN credential of the Worker's own answer, as a relay client uses it. */
function credentialOf(response: IceServersResponse): TurnCredential {
  const turn = response.iceServers.find((server) => server.username !== undefined)!;
  return { username: turn.username!, password: turn.credential!, ttl: response.ttl, expiresAt: Math.floor(Date.parse(response.expiresAt) / 1000) };
}

describe("the relay's control channel to the real Worker (wrangler dev)", () => {
  it("registers, reports its rooms, serves while the Worker is down, reconnects, and drains", async () => {
    let worker = await startWorker();
    const relay = startRelay();
    await waitForListening(relay);

    // Registered and live: the view shows what the relay said, and the API hands it out.
    const registered = await waitUntil(async () => (await relayInView())?.live === true, 15_000, 250);
    expect(registered, `the relay never showed up live in GET /v1/fleet\n${relay.report()}\n${worker.output()}`).toBe(true);
    const view = (await relayInView())!;
    expect(view).toMatchObject({
      state: "ready",
      connected: true,
      region: "test-lab",
      location: { lat: 50.11, lon: 8.68 },
      capacity: { allocations: 100, bps: 0 },
      urls: [`turn:127.0.0.1:${RELAY_PORT}?transport=udp`, `turn:127.0.0.1:${RELAY_PORT}?transport=tcp`],
    });
    expect(turnUrlsOf(await iceServers())).toEqual(view.urls);

    // A room member's credential, minted by the Worker, counted by the relay, reported in a heartbeat.
    const memberCredential = credentialOf(await iceServers("?room=standup-7&peer=ann"));
    expect(memberCredential.username).toMatch(/^\d+:standup-7\/ann$/);
    await allocateWith(memberCredential);
    const roomReported = await waitUntil(async () => {
      const seen = await relayInView();
      return seen?.allocations === 1 && seen.rooms.some((room) => room.room === "standup-7" && room.allocations === 1);
    }, 12_000, 250);
    expect(roomReported, `the fleet never saw the room's allocation: ${JSON.stringify(await relayInView())}\n${relay.report()}`).toBe(true);

    // The Worker goes away: the relay serves on its own.
    await stopWorker(worker);
    // (The credential comes from the shared secret, as an app backend would mint one: the Worker is gone.)
    await allocateWith(await mint("solo"));
    expect(relay.exit(), relay.report()).toBeUndefined();

    // Back on the same port: the relay finds it again by itself (backoff of at most 30 s).
    worker = await startWorker();
    const back = await waitUntil(async () => {
      const seen = await relayInView();
      return seen?.connected === true && seen.live && seen.allocations === 2;
    }, 40_000, 500);
    expect(back, `the relay did not reconnect to the restarted Worker: ${JSON.stringify(await relayInView())}\n${relay.report()}`).toBe(true);
    expect(relay.events().filter((line) => line.event === "fleet-registered").length).toBeGreaterThanOrEqual(2);

    // SIGTERM with allocations up: draining at once, and no longer handed out.
    const signalled = Date.now();
    process.kill(relay.pid, "SIGTERM");
    const draining = await waitUntil(async () => (await relayInView())?.state === "draining", 5_000, 100);
    expect(draining, `the fleet never saw the relay draining: ${JSON.stringify(await relayInView())}`).toBe(true);
    expect(Date.now() - signalled).toBeLessThan(3_000);
    const noLongerHandedOut = await waitUntil(async () => {
      const response = await fetch(`${WORKER}/v1/ice-servers`, { headers: { Authorization: `Bearer ${API_KEY}` } });
      await response.body?.cancel();
      return response.status === 503;
    }, 3_000, 100);
    expect(noLongerHandedOut, "a draining relay, the only one, must not be handed out (no TURN_URLS: 503 no-relay-available)").toBe(true);
  }, 180_000);
});
