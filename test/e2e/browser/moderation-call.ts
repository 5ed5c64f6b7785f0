/**
 * Moderation reaches the relay, end to end. Runs INSIDE a fresh network namespace
 * (moderation-call.test.ts starts it through runBrowserScript):
 *
 *   node --import tsx test/e2e/browser/moderation-call.ts [--timeout-ms=N]
 *
 * It starts a local webhook receiver and a local fleet the README's way (`npm start -- --relays 2`,
 * with JOIN_SECRET, WEBHOOK_URL and WEBHOOK_SECRET in its environment), opens the demo room in two
 * Chromium contexts with join tokens for `alice` and `bob`, relay-only, and waits until the call is
 * up on relay-1 with video decoding both ways. Then, through the admin API:
 * - kicks bob with a 60 s ban, his page playing a client that ignores it (it never closes its peer
 *   connections): it records when every allocation bob's credentials made on relay-1 had ended, and
 *   how each one still live at the kick ended (the relay's own `allocation-end` log lines), when
 *   alice's page stopped listing bob, whether bob's page kept receiving video, and what a rejoin
 *   with bob's token was answered;
 * - closes the room, waits until every allocation of the room has ended, and reads the room's usage
 *   (GET /v1/rooms/:room/usage) until it stops changing, beside the bytes the relay's `allocation-end`
 *   lines counted for the room;
 * - collects every webhook the receiver got for the room, until `room-finished`.
 * The last stdout line is the JSON summary the test asserts on; see harness.ts.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Page } from "playwright-core";
import WebSocket from "ws";
import { mintJoinToken } from "../../../shared/signaling/join-token.js";
import { SIGNALING_SUBPROTOCOL, tokenSubprotocol } from "../../../shared/signaling/protocol.js";
import type { RoomUsage } from "../../../shared/signaling/protocol.js";
import { launchChromium } from "../chromium.js";
import { sleep } from "../../node/processes.js";
import { startLocalFleet, waitForReadyRelays } from "./local-fleet.js";
import { numberFlag, parseFlags, pollUntil, runScript } from "./harness.js";
import { demoSnapshot, joinDemoPage, type DemoPeer, type DemoSnapshot } from "./pages.js";
import { startReceiver } from "../../node/webhook-receiver.js";
import type { RecordedRequest } from "../../recorded-webhook.js";

/** start-local.mjs gives relay-1 the relay ports 50000-51999. */
const CONNECT_TIMEOUT_MS = 25_000;
const BAN_SECONDS = 60;
/** How long the script looks for each outcome; the test's bounds are tighter where the issue sets one. */
const OBSERVE_MS = 10_000;
const USAGE_SETTLE_MS = 20_000;
/** room-finished comes ROOM_FINISH_DELAY after the room empties, once relays had time to report. */
const WEBHOOKS_WAIT_MS = 40_000;

const flags = parseFlags(process.argv.slice(2), ["timeout-ms"]);
const timeoutMs = numberFlag(flags, "timeout-ms", 150_000);

/** One `allocation-start` or `allocation-end` line of the relays' JSON log. */
interface AllocationLine {
  event: "allocation-start" | "allocation-end";
  client: string;
  user: string;
  reason?: string;
  bytesToPeers?: number;
  bytesToClient?: number;
}

function allocationLines(output: string): AllocationLine[] {
  const lines: AllocationLine[] = [];
  for (const text of output.split("\n")) {
    if (!text.includes('"allocation-')) continue;
    try {
      const parsed = JSON.parse(text.slice(text.indexOf("{"))) as AllocationLine;
      if (parsed.event === "allocation-start" || parsed.event === "allocation-end") lines.push(parsed);
    } catch {
      // Not a log line of ours.
    }
  }
  return lines;
}

/** Allocations a TURN user (`<room>/<peer>`, or a room prefix) started and ended so far. */
function allocationsOf(output: string, matches: (user: string) => boolean): { started: number; ended: AllocationLine[] } {
  const lines = allocationLines(output).filter((line) => matches(line.user));
  return { started: lines.filter((line) => line.event === "allocation-start").length, ended: lines.filter((line) => line.event === "allocation-end") };
}

function peerIn(snapshot: DemoSnapshot, id: string): DemoPeer | undefined {
  return snapshot.peers.find((peer) => peer.id === id);
}

function callIsUp(peer: DemoPeer | undefined): boolean {
  return peer !== undefined && peer.connectionState === "connected" && peer.pair?.local === "relay" && peer.pair.remote === "relay" && peer.framesDecoded > 0;
}

/** What the room answers a join with `token`: the first frame and the close. Bounded. */
async function tryJoin(url: string, token: string): Promise<{ frame: unknown; close: { code: number; reason: string } | null }> {
  const ws = new WebSocket(url, [SIGNALING_SUBPROTOCOL, tokenSubprotocol(token)]);
  let frame: unknown = null;
  ws.on("message", (data) => {
    if (frame === null) frame = JSON.parse(data.toString());
  });
  const close = await new Promise<{ code: number; reason: string } | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), 5_000);
    ws.once("close", (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
    ws.once("error", () => undefined);
  });
  ws.terminate();
  return { frame, close };
}

runScript("moderation-call", timeoutMs, async ({ summary, phase, onCleanup }) => {
  const pageErrors: string[] = [];
  summary["pageErrors"] = pageErrors;

  phase("webhook receiver");
  const webhookSecret = randomBytes(32).toString("base64url");
  const receiver = await startReceiver(0);
  onCleanup(() => new Promise<void>((resolve) => receiver.close(() => resolve())));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const webhooksOf = async (room: string): Promise<RecordedRequest[]> =>
    (await (await fetch(`${receiverUrl}/control/requests?match=${encodeURIComponent(`"room":"${room}"`)}`)).json()) as RecordedRequest[];

  phase("start npm start -- --relays 2");
  const joinSecret = randomBytes(32).toString("base64url");
  const fleet = await startLocalFleet(2, { JOIN_SECRET: joinSecret, WEBHOOK_URL: `${receiverUrl}/hook`, WEBHOOK_SECRET: webhookSecret });
  const { local, admin, workerUrl } = fleet;
  onCleanup(() => local.stop());

  phase("relays registered");
  await waitForReadyRelays(fleet, 2);

  phase("launch Chromium");
  const chrome = await launchChromium({ extraArgs: [] });
  onCleanup(() => chrome.close());
  const room = `mod-${randomBytes(4).toString("hex")}`;
  const tokens = {
    alice: await mintJoinToken(joinSecret, { room, sub: "alice", ttlSeconds: 600 }),
    bob: await mintJoinToken(joinSecret, { room, sub: "bob", ttlSeconds: 600 }),
  };
  summary["room"] = room;

  phase("open both pages");
  const pages: Record<"alice" | "bob", Page> = {} as Record<"alice" | "bob", Page>;
  for (const name of ["alice", "bob"] as const) {
    pages[name] = (await joinDemoPage(chrome.browser, `${workerUrl}/r/${room}?relay=1#token=${tokens[name]}`, name, pageErrors)).page;
  }

  phase("call up on the relay");
  let last: unknown;
  await pollUntil("a relay-only call with video both ways", CONNECT_TIMEOUT_MS, 250, async () => {
    const seen = { alice: peerIn(await demoSnapshot(pages.alice), "bob"), bob: peerIn(await demoSnapshot(pages.bob), "alice") };
    last = seen;
    return callIsUp(seen.alice) && callIsUp(seen.bob) ? true : undefined;
  }, () => JSON.stringify(last));
  const isBob = (user: string) => user === `${room}/bob`;
  // Bob's page plays a client that ignores the kick: it never closes its peer connections. An honest
  // page closes them when the room says it was kicked, and Chromium then deletes its allocations
  // itself, racing the revocation (in CI it won half the time); here only the relay can end them.
  await pages.bob.evaluate(() => {
    RTCPeerConnection.prototype.close = () => undefined;
  });
  // Chromium may already have let go of an allocation it no longer uses (its pair switched before
  // the kick): only those live at the kick are the revocation's to end.
  const atKick = allocationsOf(local.output(), isBob);
  summary["bobAllocationsBeforeKick"] = atKick.started;
  summary["bobAllocationsLiveAtKick"] = atKick.started - atKick.ended.length;

  phase("kick bob");
  const kickedAt = Date.now();
  const kick = await admin("POST", `/v1/rooms/${room}/peers/bob/kick`, { banSeconds: BAN_SECONDS });
  summary["kick"] = { status: kick.status, body: await kick.json() };
  const gone: Record<string, number | null> = { bobAllocations: null, bobOnAlicePage: null };
  const deadline = Date.now() + OBSERVE_MS;
  while ((gone["bobAllocations"] === null || gone["bobOnAlicePage"] === null) && Date.now() < deadline) {
    const bob = allocationsOf(local.output(), isBob);
    if (gone["bobAllocations"] === null && bob.started > 0 && bob.ended.length >= bob.started) gone["bobAllocations"] = Date.now() - kickedAt;
    if (gone["bobOnAlicePage"] === null && peerIn(await demoSnapshot(pages.alice), "bob") === undefined) gone["bobOnAlicePage"] = Date.now() - kickedAt;
    await sleep(50);
  }
  summary["goneAfterMs"] = gone;
  const bobEnds = allocationsOf(local.output(), isBob).ended.slice(atKick.ended.length);
  summary["bobAllocationEnds"] = bobEnds.map(({ reason, bytesToPeers, bytesToClient }) => ({ reason, bytesToPeers, bytesToClient }));

  phase("bob's media stopped");
  // What bob's page still receives: nothing may be decoded from alice once his relay is gone.
  const bobBefore = peerIn(await demoSnapshot(pages.bob), "alice")?.framesDecoded ?? null;
  await sleep(2_000);
  const bobAfter = peerIn(await demoSnapshot(pages.bob), "alice")?.framesDecoded ?? null;
  summary["bobPage"] = { framesDecodedThen: bobBefore, framesDecoded2sLater: bobAfter, snapshot: await demoSnapshot(pages.bob) };
  // No allocation for bob after the kick: his credentials are refused while the ban holds.
  summary["bobAllocationsAfterKick"] = allocationsOf(local.output(), isBob).started - (summary["bobAllocationsBeforeKick"] as number);

  phase("bob cannot rejoin");
  summary["rejoin"] = await tryJoin(`ws://127.0.0.1:${local.port}/v1/rooms/${room}`, tokens.bob);

  phase("close the room");
  const closed = await admin("DELETE", `/v1/rooms/${room}`);
  summary["close"] = { status: closed.status, body: await closed.json() };
  const inRoom = (user: string) => user.startsWith(`${room}/`);
  await pollUntil("every allocation of the room ended", OBSERVE_MS, 100, async () => {
    const all = allocationsOf(local.output(), inRoom);
    return all.started > 0 && all.ended.length >= all.started ? true : undefined;
  }, () => JSON.stringify(allocationsOf(local.output(), inRoom)));
  const ends = allocationsOf(local.output(), inRoom).ended;
  const relayCounted = {
    bytesToPeers: ends.reduce((sum, line) => sum + (line.bytesToPeers ?? 0), 0),
    bytesToClient: ends.reduce((sum, line) => sum + (line.bytesToClient ?? 0), 0),
  };
  summary["relayCounted"] = relayCounted;

  phase("usage settles");
  let usage: RoomUsage | undefined;
  await pollUntil("the room's usage to reach the relay's figures", USAGE_SETTLE_MS, 500, async () => {
    const response = await admin("GET", `/v1/rooms/${room}/usage`);
    if (response.status !== 200) return undefined;
    usage = (await response.json()) as RoomUsage;
    return usage.total.bytesToPeers >= relayCounted.bytesToPeers && usage.total.bytesToClient >= relayCounted.bytesToClient ? true : undefined;
  }, () => JSON.stringify(usage)).catch(() => undefined);
  summary["usage"] = usage;

  phase("webhooks");
  let hooks: RecordedRequest[] = [];
  await pollUntil("room-finished at the webhook receiver", WEBHOOKS_WAIT_MS, 250, async () => {
    hooks = await webhooksOf(room);
    return hooks.some((hook) => hook.body.includes('"type":"room-finished"')) ? true : undefined;
  }, () => JSON.stringify(hooks.map((hook) => hook.body.slice(0, 200)))).catch(() => undefined);
  summary["webhooks"] = hooks;
  summary["webhookSecret"] = webhookSecret;
  summary["relayOutput"] = local.output().split("\n").filter((line) => /webhook|usage|revok|error|warn/i.test(line)).slice(-60);
});
