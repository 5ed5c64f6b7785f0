/**
 * Two werift peers find each other through the Worker's signaling (the client library's RoomClient
 * and Mesh) and talk relay-only through our relay, over TURN/UDP and TURN/TCP: a data channel
 * carries ten messages each way, and both selected candidate pairs are relay ↔ relay.
 * Everything runs in a fresh loopback-only network namespace (test/node/netns.ts).
 */
import { describe, expect, it } from "vitest";
import { netnsSuiteUnavailable, runInNetns, type NetnsRunResult } from "../node/netns.js";
import type { PeerSummary } from "./peer-process.js";
import type { RelayLogLine } from "./stack.js";

const SCRIPT = "node --import tsx test/e2e/netns/werift-call.ts";
const PROCESS_TIMEOUT_MS = 90_000;

interface CallSummary {
  ok: boolean;
  error?: string;
  callMs?: number;
  transport?: string;
  room?: string;
  sender?: PeerSummary;
  echoer?: PeerSummary;
  relayEvents?: RelayLogLine[];
  stderr?: string;
}

function describeRun(result: NetnsRunResult): string {
  return `exit ${result.code} timedOut ${result.timedOut} after ${result.elapsedMs} ms\nstdout:\n${result.stdout.slice(-4000)}\nstderr:\n${result.stderr.slice(-4000)}`;
}

function summaryOf(result: NetnsRunResult): CallSummary {
  const line = result.stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  if (line === undefined) throw new Error(`no JSON summary: ${describeRun(result)}`);
  return JSON.parse(line) as CallSummary;
}

const unavailable = await netnsSuiteUnavailable("werift ↔ werift");

describe.skipIf(unavailable !== null)("werift ↔ werift through the local Worker and the relay", () => {
  for (const transport of ["udp", "tcp"] as const) {
    it(`connect relay-only over TURN/${transport.toUpperCase()} and echo every message`, async () => {
      const result = await runInNetns(`${SCRIPT} "$@"`, [`--transport=${transport}`], PROCESS_TIMEOUT_MS);
      const summary = summaryOf(result);
      expect(summary.ok, describeRun(result)).toBe(true);
      console.log(`werift ↔ werift over TURN/${transport.toUpperCase()}: call took ${summary.callMs} ms, whole run ${result.elapsedMs} ms`);
      const { sender, echoer } = summary;
      const sent = Array.from({ length: 10 }, (_, i) => `${sender!.peerId}:${i}`);
      // Each side saw the other's messages, in order: ours echoed back, theirs as sent.
      expect(echoer!.received).toEqual(sent);
      expect(sender!.received).toEqual(sent.map((text) => `echo:${text}`));
      for (const peer of [sender!, echoer!]) {
        expect(peer.pair).toMatchObject({ local: "relay", remote: "relay", pairState: "succeeded", localTypes: ["relay"] });
        expect(peer.connectionStates).toContain("connected");
        // The ICE servers came from the welcome: STUN and TURN on the relay, with the transport asked for.
        expect(peer.iceServers).toEqual(expect.arrayContaining([expect.stringMatching(/^stun:127\.0\.0\.1:\d+$/), expect.stringMatching(new RegExp(`^turn:127\\.0\\.0\\.1:\\d+\\?transport=${transport}$`))]));
      }
      // Both peers allocated on the relay over the transport asked for, as the room members the Worker
      // named (`<room>/<peer-id>`, shared/turn/turn-user.ts).
      const starts = (summary.relayEvents ?? []).filter((event) => event.event === "allocation-start");
      expect(starts.map((event) => String(event["client"]).split(":")[0])).toEqual([transport, transport]);
      expect(new Set(starts.map((event) => event["user"]))).toEqual(new Set([`${summary.room}/${sender!.peerId}`, `${summary.room}/${echoer!.peerId}`]));
    });
  }
});
