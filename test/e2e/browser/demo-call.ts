/**
 * Two headless Chromium pages in one room of the demo page, relay-only, with the fake camera. Runs
 * INSIDE a fresh network namespace (browser-call.test.ts starts it through runInNetns):
 *
 *   node --import tsx test/e2e/browser/demo-call.ts --transport=udp|tcp|tls
 *        [--hold-ms=N] [--max-allocate-lifetime=S] [--turn-ttl=S --strict-expiry] [--timeout-ms=N]
 *
 * It starts the relay and the Worker (test/e2e/stack.ts) with the Worker handing out one TURN URL of
 * the given transport, opens `/r/<room>?relay=1` in two browser contexts, waits until each page
 * shows the other peer connected with a relay/relay pair, decoded video and an open chat channel,
 * checks the frame counters keep rising, sends a chat line each way, optionally keeps the call up
 * for `--hold-ms` while watching it, and closes the pages. The relay's allocation log is read at the
 * end of the hold (which allocations are still up, and since when) and after the pages closed.
 *
 * `--npm-start` runs the stack the way the README's first command does (`npm start`: relay and Worker,
 * TURN over UDP and TCP) and opens the room without `?relay=1`, as a newcomer would: any path goes.
 *
 * `--turn-ttl` makes the Worker issue credentials that live S seconds, and `--strict-expiry` makes the
 * relay refuse to refresh anything allocated with an expired credential (no clock skew allowed): a
 * call held past the TTL then survives only if the pages fetched fresh credentials and restarted ICE
 * with them (the client library's job).
 *
 * The last stdout line is the JSON summary the test asserts on; see harness.ts.
 */
import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { launchChromium, trustTlsKeyArgs } from "../chromium.js";
import { parseRelayLog, startStack, type RelayLogLine, type Stack, type TurnTransport } from "../stack.js";
import { sleep, startLocalWorker } from "../../node/processes.js";
import { numberFlag, parseFlags, pollUntil, runScript } from "./harness.js";
import {
  demoSnapshot,
  joinDemoPage,
  peerConnectionLog,
  sendChat,
  type DemoPeer,
  type DemoSnapshot,
  type PeerConnectionEvent,
} from "./pages.js";

const CONNECT_TIMEOUT_MS = 25_000;
const CHAT_TIMEOUT_MS = 5_000;
/** Frames must rise between two snapshots this far apart (the fake camera sends ~30 fps). */
const FRAME_WINDOW_MS = 2_000;
const WATCH_INTERVAL_MS = 1_000;
const ALLOCATION_END_WAIT_MS = 5_000;

const flags = parseFlags(process.argv.slice(2), ["transport", "hold-ms", "max-allocate-lifetime", "turn-ttl", "strict-expiry", "npm-start", "timeout-ms"]);
const transport = flags.get("transport") ?? "udp";
if (transport !== "udp" && transport !== "tcp" && transport !== "tls") throw new Error(`--transport must be udp, tcp or tls, not ${transport}`);
const holdMs = flags.has("hold-ms") ? numberFlag(flags, "hold-ms", 0) : 0;
const maxAllocateLifetime = flags.has("max-allocate-lifetime") ? numberFlag(flags, "max-allocate-lifetime", 0) : undefined;
const timeoutMs = numberFlag(flags, "timeout-ms", 60_000);
const turnTtlSeconds = flags.has("turn-ttl") ? numberFlag(flags, "turn-ttl", 0) : undefined;
const strictExpiry = flags.has("strict-expiry");
const viaNpmStart = flags.has("npm-start");
const relayOnly = !viaNpmStart;

/** `npm start` (test/node/processes.ts), seen through the same interface as startStack's. */
async function startNpmStart(): Promise<Pick<Stack, "workerUrl" | "turnUrls" | "relay" | "relayEvents" | "stop">> {
  const local = await startLocalWorker();
  return {
    workerUrl: `http://127.0.0.1:${local.port}`,
    turnUrls: [`turn:127.0.0.1:${local.relayPort}?transport=udp`, `turn:127.0.0.1:${local.relayPort}?transport=tcp`],
    relay: { host: "127.0.0.1", udpPort: local.relayPort, tcpPort: local.relayPort },
    relayEvents: () => parseRelayLog(local.output()),
    stop: local.stop,
  };
}

/** What the page shows about the other peer once the call is fully up. */
function callIsUp(peer: DemoPeer | undefined): boolean {
  return (
    peer !== undefined &&
    peer.connectionState === "connected" &&
    peer.pair !== null &&
    (!relayOnly || (peer.pair.local === "relay" && peer.pair.remote === "relay")) &&
    peer.framesDecoded > 0 &&
    peer.chatState === "open"
  );
}

function peerIn(snapshot: DemoSnapshot, id: string | null): DemoPeer | undefined {
  return snapshot.peers.find((peer) => peer.id === id);
}

function ended(events: RelayLogLine[]): number {
  return events.filter((event) => event.event === "allocation-end").length;
}

interface PageRecord {
  name: string;
  page: Page;
  peerId: string;
}

runScript("demo-call", timeoutMs, async ({ summary, phase, onCleanup }) => {
  const pageErrors: string[] = [];
  summary["transport"] = transport;
  summary["pageErrors"] = pageErrors;

  phase("start relay and Worker");
  const stack = viaNpmStart ? await startNpmStart() : await startStack({
    turnTransports: [transport as TurnTransport],
    ...(maxAllocateLifetime !== undefined ? { maxAllocateLifetime } : {}),
    ...(turnTtlSeconds !== undefined ? { turnTtlSeconds } : {}),
    ...(strictExpiry ? { relayArgs: ["--strict-expiry", "--credential-clock-skew=0"] } : {}),
  });
  onCleanup(() => stack.stop());
  summary["turnUrls"] = stack.turnUrls;
  const relayAllocations = () => stack.relayEvents().filter((event) => event.event === "allocation-start" || event.event === "allocation-end");

  phase("launch Chromium");
  const tlsPort = stack.relay.tlsPort;
  const extraArgs = transport === "tls" && tlsPort !== undefined ? await trustTlsKeyArgs(stack.relay.host, tlsPort) : [];
  const chrome = await launchChromium({ extraArgs });
  onCleanup(() => chrome.close());

  const room = `call-${randomBytes(4).toString("hex")}`;
  const roomUrl = `${stack.workerUrl}/r/${room}${relayOnly ? "?relay=1" : ""}`;
  summary["roomUrl"] = roomUrl;

  phase("open both pages");
  const pages: PageRecord[] = [];
  for (const name of ["a", "b"]) {
    // The second page joins once the first is in with its camera, so every run goes the same way.
    const { page, joined } = await joinDemoPage(chrome.browser, roomUrl, name, pageErrors);
    summary[`${name}Joined`] = { peerId: joined.peerId, localMedia: joined.localMedia, relayOnly: joined.relayOnly, error: joined.error };
    pages.push({ name, page, peerId: joined.peerId! });
  }
  const [a, b] = pages as [PageRecord, PageRecord];
  const otherOf = (record: PageRecord) => (record === a ? b : a);

  phase("connect");
  const connectStarted = Date.now();
  let last: Record<string, DemoSnapshot> = {};
  try {
    await pollUntil("both pages showing a relay-only call with video and chat", CONNECT_TIMEOUT_MS, 250, async () => {
      last = { a: await demoSnapshot(a.page), b: await demoSnapshot(b.page) };
      return callIsUp(peerIn(last["a"]!, b.peerId)) && callIsUp(peerIn(last["b"]!, a.peerId)) ? true : undefined;
    }, () => JSON.stringify(last));
  } catch (error) {
    // How far each side's negotiation got, for the failure message.
    summary["peerConnectionLog"] = { a: await peerConnectionLog(a.page), b: await peerConnectionLog(b.page) };
    summary["relayEvents"] = relayAllocations();
    throw error;
  }
  summary["callUpAfterMs"] = Date.now() - connectStarted;

  phase("video keeps arriving");
  const framesBefore = { a: peerIn(await demoSnapshot(a.page), b.peerId)!.framesDecoded, b: peerIn(await demoSnapshot(b.page), a.peerId)!.framesDecoded };
  await sleep(FRAME_WINDOW_MS);
  const framesAfter = { a: peerIn(await demoSnapshot(a.page), b.peerId)?.framesDecoded ?? 0, b: peerIn(await demoSnapshot(b.page), a.peerId)?.framesDecoded ?? 0 };
  summary["framesDecoded"] = { before: framesBefore, after: framesAfter, windowMs: FRAME_WINDOW_MS };

  phase("chat both ways");
  const sent: Record<string, string> = {};
  for (const sender of pages) {
    const text = `hello from ${sender.name} ${randomBytes(3).toString("hex")}`;
    sent[sender.name] = text;
    await sendChat(sender.page, text);
  }
  const received: Record<string, string[]> = {};
  await pollUntil("each chat line arriving on the other page", CHAT_TIMEOUT_MS, 100, async () => {
    for (const receiver of pages) received[receiver.name] = peerIn(await demoSnapshot(receiver.page), otherOf(receiver).peerId)?.chatReceived ?? [];
    return received["a"]!.includes(sent["b"]!) && received["b"]!.includes(sent["a"]!) ? true : undefined;
  }, () => JSON.stringify({ sent, received }));
  summary["chat"] = { sent, received };

  if (holdMs > 0) {
    phase("hold the call");
    const holdStarted = Date.now();
    const watched: { atMs: number; a: DemoPeer | null; b: DemoPeer | null }[] = [];
    while (Date.now() - holdStarted < holdMs) {
      await sleep(Math.min(WATCH_INTERVAL_MS, Math.max(0, holdMs - (Date.now() - holdStarted))));
      const snapshotA = peerIn(await demoSnapshot(a.page), b.peerId) ?? null;
      const snapshotB = peerIn(await demoSnapshot(b.page), a.peerId) ?? null;
      watched.push({ atMs: Date.now() - holdStarted, a: snapshotA, b: snapshotB });
    }
    summary["holdMs"] = Date.now() - holdStarted;
    // Kept small: the states seen and the frame counters over time.
    summary["watched"] = watched.map((sample) => ({
      atMs: sample.atMs,
      a: sample.a === null ? null : { state: sample.a.connectionState, frames: sample.a.framesDecoded, kbps: sample.a.bitrateKbps },
      b: sample.b === null ? null : { state: sample.b.connectionState, frames: sample.b.framesDecoded, kbps: sample.b.bitrateKbps },
    }));
    const end = watched.at(-1);
    const beforeEnd = watched.findLast((sample) => end !== undefined && end.atMs - sample.atMs >= FRAME_WINDOW_MS);
    summary["framesAtEndOfHold"] = {
      windowMs: end !== undefined && beforeEnd !== undefined ? end.atMs - beforeEnd.atMs : null,
      before: { a: beforeEnd?.a?.framesDecoded ?? null, b: beforeEnd?.b?.framesDecoded ?? null },
      after: { a: end?.a?.framesDecoded ?? null, b: end?.b?.framesDecoded ?? null },
    };
  }

  phase("read what both pages saw");
  const checkedAt = Date.now();
  const finalSnapshots = { a: await demoSnapshot(a.page), b: await demoSnapshot(b.page) };
  summary["final"] = { a: peerIn(finalSnapshots.a, b.peerId) ?? null, b: peerIn(finalSnapshots.b, a.peerId) ?? null };
  summary["errorsShown"] = { a: finalSnapshots.a.error, b: finalSnapshots.b.error };
  const logs: Record<string, PeerConnectionEvent[]> = { a: await peerConnectionLog(a.page), b: await peerConnectionLog(b.page) };
  summary["peerConnectionLog"] = logs;
  // Allocations as the relay saw them while the call was still up: each one's age, and whether it ended.
  const allocationsWhileUp = relayAllocations();
  summary["allocationsWhileUp"] = allocationsWhileUp.map((event) => ({
    ...event,
    ...(event.event === "allocation-start" ? { ageSeconds: (checkedAt - Date.parse(String(event["time"]))) / 1000 } : {}),
  }));

  phase("close the pages");
  // Closing a page deletes its allocations (Chromium sends a Refresh with lifetime 0), so the relay
  // logs each call allocation's end with its packet counts and age.
  const endedBeforeClose = ended(allocationsWhileUp);
  for (const record of pages) await record.page.context().close();
  const waitUntil = Date.now() + ALLOCATION_END_WAIT_MS;
  while (ended(relayAllocations()) < endedBeforeClose + pages.length && Date.now() < waitUntil) await sleep(200);
  summary["allocationsAfterClose"] = relayAllocations();
});
