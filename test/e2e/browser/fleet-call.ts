/**
 * A call that outlives its relay. Runs INSIDE a fresh network namespace (fleet-call.test.ts starts it
 * through runBrowserScript):
 *
 *   node --import tsx test/e2e/browser/fleet-call.ts --mode=drain|kill [--timeout-ms=N]
 *
 * It starts a local fleet the README's way (`npm start -- --relays 2`: the Worker and two relays
 * registered over the control channel, relay-1 nearest the Worker's default location, FLEET_PICK 1),
 * opens `/r/<room>?relay=1` in two Chromium contexts and waits until the call is up relay-only on
 * relay-1. Then, while both pages send a chat line every 100 ms, it ends relay-1:
 * - `drain`: SIGTERM. The relay reports draining, the room pushes an `ice-servers` frame without it,
 *   the client library restarts ICE, and the selected pair moves to relay-2; relay-1 exits on its
 *   own once its allocations are gone.
 * - `kill`: SIGKILL. Nothing is announced; the fleet sees the control channel close, and the client
 *   library, seeing the connection drop, fetches fresh servers (without relay-1) and restarts ICE.
 * It records when each page's selected pair reached relay-2 (relay ports 52000-53999; relay-1's are
 * 50000-51999, start-local.mjs), every connection state, which chat lines arrived, and when relay-1's
 * process ended. The last stdout line is the JSON summary the test asserts on; see harness.ts.
 */
import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { launchChromium } from "../chromium.js";
import { sleep } from "../../node/processes.js";
import { startLocalFleet, waitForReadyRelays, type LocalFleet } from "./local-fleet.js";
import type { FleetView } from "../../../shared/fleet/view.js";
import { numberFlag, parseFlags, pollUntil, runScript } from "./harness.js";
import {
  collectPageErrors,
  demoSnapshot,
  joinDemoPage,
  peerConnectionLog,
  selectedLocalCandidate,
  sendChat,
  type DemoPeer,
  type DemoSnapshot,
} from "./pages.js";

/** start-local.mjs gives relay N the relay ports 50000 + 2000 (N - 1) .. + 1999. */
const RELAY_PORTS = { "relay-1": [50_000, 51_999], "relay-2": [52_000, 53_999] } as const;
const CONNECT_TIMEOUT_MS = 25_000;
const MOVE_TIMEOUT_MS = 40_000;
const CHAT_INTERVAL_MS = 100;
/** Chat keeps flowing this long after both pages reached relay-2... */
const AFTER_MOVE_MS = 2_000;
/** ...then every line sent has this long to arrive. */
const DELIVERY_WAIT_MS = 5_000;
const RELAY_EXIT_WAIT_MS = 30_000;

const flags = parseFlags(process.argv.slice(2), ["mode", "timeout-ms"]);
const mode = flags.get("mode") ?? "drain";
if (mode !== "drain" && mode !== "kill") throw new Error(`--mode must be drain or kill, not ${mode}`);
const timeoutMs = numberFlag(flags, "timeout-ms", 120_000);

function relayOfPort(port: number): string | null {
  for (const [relay, [low, high]] of Object.entries(RELAY_PORTS)) if (port >= low && port <= high) return relay;
  return null;
}

function peerIn(snapshot: DemoSnapshot, id: string | null): DemoPeer | undefined {
  return snapshot.peers.find((peer) => peer.id === id);
}

function callIsUp(peer: DemoPeer | undefined): boolean {
  return peer !== undefined && peer.connectionState === "connected" && peer.pair?.local === "relay" && peer.pair.remote === "relay" && peer.chatState === "open";
}

/** The lines of npm start's output that tell how the move went. */
function relayOutputOf(output: string): string[] {
  return output.split("\n").filter((line) => /fleet|drain|stopping|allocation-|ice-servers|error|warn/i.test(line)).slice(-80);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Which relay each page's selected pair goes through now (null: no pair yet). */
async function relaysInUse(pages: { name: string; page: Page }[]): Promise<Record<string, string | null>> {
  const seen: Record<string, string | null> = {};
  for (const { name, page } of pages) {
    const local = await selectedLocalCandidate(page).catch(() => null);
    seen[name] = local === null || local.candidateType !== "relay" ? null : relayOfPort(local.port);
  }
  return seen;
}

/** Each relay's state, channel, liveness and load as GET /v1/fleet gives them (null: no answer). */
async function fleetState(fleet: LocalFleet): Promise<unknown> {
  const response = await fleet.admin("GET", "/v1/fleet").catch(() => null);
  if (response === null || response.status !== 200) return null;
  const view = (await response.json()) as FleetView;
  return view.relays.map(({ id, state, connected, live, lastHeartbeatAt, allocations }) => ({ id, state, connected, live, lastHeartbeatAt, allocations }));
}

runScript("fleet-call", timeoutMs, async ({ summary, phase, onCleanup }) => {
  const pageErrors: string[] = [];
  summary["mode"] = mode;
  summary["pageErrors"] = pageErrors;

  phase("start npm start -- --relays 2");
  const fleet = await startLocalFleet(2);
  const { local, workerUrl, apiKey, pids } = fleet;
  onCleanup(() => local.stop());
  summary["relayPids"] = pids;
  const relay1Pid = pids["relay-1"];
  const relay2Pid = pids["relay-2"];
  if (relay1Pid === undefined || relay2Pid === undefined) throw new Error(`npm start named no relay-1 and relay-2: ${JSON.stringify(pids)}`);

  phase("both relays registered");
  await waitForReadyRelays(fleet, 2);

  phase("launch Chromium");
  const chrome = await launchChromium({ extraArgs: [] });
  onCleanup(() => chrome.close());
  const room = `fleet-${randomBytes(4).toString("hex")}`;
  const roomUrl = `${workerUrl}/r/${room}?relay=1`;

  phase("open both pages");
  const pages: { name: string; page: Page; peerId: string }[] = [];
  for (const name of ["a", "b"]) {
    const { page, joined } = await joinDemoPage(chrome.browser, roomUrl, name, pageErrors);
    pages.push({ name, page, peerId: joined.peerId! });
  }
  const [a, b] = pages as [(typeof pages)[0], (typeof pages)[0]];

  phase("connect on relay-1");
  let last: Record<string, unknown> = {};
  await pollUntil("a relay-only call on relay-1 on both pages", CONNECT_TIMEOUT_MS, 250, async () => {
    const snapshots = { a: peerIn(await demoSnapshot(a.page), b.peerId), b: peerIn(await demoSnapshot(b.page), a.peerId) };
    const relays = await relaysInUse(pages);
    const onRelay1 = callIsUp(snapshots.a) && callIsUp(snapshots.b) && relays["a"] === "relay-1" && relays["b"] === "relay-1";
    // Kept for the failure message: how the fleet saw both relays while the call was not (yet) on relay-1.
    last = { snapshots, relays, fleet: onRelay1 ? null : await fleetState(fleet) };
    return onRelay1 ? true : undefined;
  }, () => `${JSON.stringify(last)}\n${relayOutputOf(local.output()).join("\n")}`);

  phase("chat flows while relay-1 ends");
  const sent: Record<string, string[]> = { a: [], b: [] };
  let streaming = true;
  const stream = (async () => {
    for (let n = 0; streaming; n++) {
      for (const { name, page } of pages) {
        const line = `${name}-${n}`;
        await sendChat(page, line).then(() => sent[name]!.push(line), () => undefined);
      }
      await sleep(CHAT_INTERVAL_MS);
    }
  })();
  await sleep(1_000);

  const endedAt = Date.now();
  process.kill(relay1Pid, mode === "drain" ? "SIGTERM" : "SIGKILL");
  summary["relay1Signal"] = mode === "drain" ? "SIGTERM" : "SIGKILL";

  phase("the call moves to relay-2");
  const movedAt: Record<string, number> = {};
  const timeline: { atMs: number; relays: Record<string, string | null>; states: Record<string, string | undefined> }[] = [];
  try {
    await pollUntil("both pages' selected pair on relay-2", MOVE_TIMEOUT_MS, 200, async () => {
      const relays = await relaysInUse(pages);
      const states = {
        a: peerIn(await demoSnapshot(a.page), b.peerId)?.connectionState,
        b: peerIn(await demoSnapshot(b.page), a.peerId)?.connectionState,
      };
      const atMs = Date.now() - endedAt;
      if (timeline.length < 300) timeline.push({ atMs, relays, states });
      for (const name of ["a", "b"]) if (relays[name] === "relay-2" && states[name as "a" | "b"] === "connected" && movedAt[name] === undefined) movedAt[name] = atMs;
      return movedAt["a"] !== undefined && movedAt["b"] !== undefined ? true : undefined;
    }, () => JSON.stringify(timeline.slice(-5)));
  } finally {
    summary["movedAfterMs"] = movedAt;
    summary["timeline"] = timeline;
    // Kept on failure too: how each connection went, and what the Worker and relays logged.
    summary["peerConnectionLog"] = { a: await peerConnectionLog(a.page), b: await peerConnectionLog(b.page) };
    summary["relayOutput"] = relayOutputOf(local.output());
  }

  phase("chat after the move");
  await sleep(AFTER_MOVE_MS);
  streaming = false;
  await stream;
  const received: Record<string, string[]> = {};
  const allArrived = async () => {
    received["a"] = peerIn(await demoSnapshot(a.page), b.peerId)?.chatReceived ?? [];
    received["b"] = peerIn(await demoSnapshot(b.page), a.peerId)?.chatReceived ?? [];
    return sent["a"]!.every((line) => received["b"]!.includes(line)) && sent["b"]!.every((line) => received["a"]!.includes(line));
  };
  const deliveryDeadline = Date.now() + DELIVERY_WAIT_MS;
  while (!(await allArrived()) && Date.now() < deliveryDeadline) await sleep(200);
  summary["chat"] = {
    sent: { a: sent["a"]!.length, b: sent["b"]!.length },
    lost: { a: sent["a"]!.filter((line) => !received["b"]!.includes(line)), b: sent["b"]!.filter((line) => !received["a"]!.includes(line)) },
  };

  phase("relay-1's process");
  if (mode === "drain") {
    const exitDeadline = Date.now() + RELAY_EXIT_WAIT_MS;
    while (processAlive(relay1Pid) && Date.now() < exitDeadline) await sleep(200);
  }
  summary["relay1ExitedAfterMs"] = processAlive(relay1Pid) ? null : Date.now() - endedAt;
  summary["relay2Alive"] = processAlive(relay2Pid);
  summary["peerConnectionLog"] = { a: await peerConnectionLog(a.page), b: await peerConnectionLog(b.page) };
  summary["final"] = { a: peerIn(await demoSnapshot(a.page), b.peerId) ?? null, b: peerIn(await demoSnapshot(b.page), a.peerId) ?? null };
  summary["relayOutput"] = relayOutputOf(local.output());

  phase("the fleet page");
  // The operator's view in the browser: the key typed into the form, then the table as it refreshes.
  const fleetPage = await (await chrome.browser.newContext()).newPage();
  collectPageErrors(fleetPage, pageErrors, "fleet");
  await fleetPage.goto(`${workerUrl}/fleet`, { timeout: 15_000 });
  await fleetPage.fill("#api-key", apiKey);
  await fleetPage.click("button[type=submit]");
  let rows: string[][] = [];
  await pollUntil("the fleet page listing both relays", 10_000, 250, async () => {
    rows = await fleetPage.$$eval("#relays tr", (trs) => trs.map((tr) => Array.from(tr.children, (cell) => cell.textContent ?? "")));
    return rows.length === 2 ? true : undefined;
  }, () => JSON.stringify(rows));
  summary["fleetPage"] = { rows: rows.map((cells) => ({ relay: cells[0], state: cells[1], region: cells[2] })), status: await fleetPage.textContent("#status") };
});
