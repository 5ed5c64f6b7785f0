/**
 * werift peers that connect relay-only through our relay: two real WebRTC stacks (werift, pure
 * TypeScript) open a data channel whose every packet goes through a RelayServer allocation, over
 * TURN/UDP and TURN/TCP, and a negative control where the credentials are signed with the wrong
 * secret and the call must never come up.
 *
 * Every WebRTC stack runs in test/relay/netns/werift-relay-call.ts inside a fresh network namespace
 * with only loopback (test/node/netns.ts), so werift can reach nothing but our relay on 127.0.0.1.
 * Where namespaces cannot be made the suite fails in CI and is skipped, with the reason, elsewhere.
 */
import { describe, expect, it } from "vitest";
import { netnsSuiteUnavailable, runInNetns, type NetnsRunResult } from "../node/netns.js";

const SCRIPT = "npx tsx test/relay/netns/werift-relay-call.ts";
/** The script's own global timeout for a call that should work, and the bound on the whole process. */
const CALL_TIMEOUT_MS = 20_000;
const PROCESS_TIMEOUT_MS = 40_000;
/** A good call comes up in well under a second on loopback; a bad one gets this long to (not) connect. */
const NEGATIVE_TIMEOUT_MS = 6_000;

interface Summary {
  ok: boolean;
  error?: string;
  transport?: string;
  messagesSent?: number;
  messagesEchoed?: number;
  selectedPairs?: Record<string, { local: string; remote: string; pairState: string; localTypes: string[] }>;
  clientTransports?: string[];
  connectionStates?: Record<string, string[]>;
  candidatesSignaled?: Record<string, number>;
  relayEvents?: { event: string; [field: string]: unknown }[];
  stunSeenByTap?: Record<string, number>;
  phase?: string;
}

function describeRun(result: NetnsRunResult): string {
  return `exit ${result.code} signal ${result.signal} timedOut ${result.timedOut} after ${result.elapsedMs} ms\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
}

function summaryOf(result: NetnsRunResult): Summary {
  const line = result.stdout.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  if (line === undefined) throw new Error(`no JSON summary from the script: ${describeRun(result)}`);
  return JSON.parse(line) as Summary;
}

const unavailable = await netnsSuiteUnavailable("werift through the relay");

describe.skipIf(unavailable !== null)("werift through the relay (loopback-only network namespace)", () => {
  for (const transport of ["udp", "tcp"] as const) {
    it(`two werift peers connect relay-only over TURN/${transport.toUpperCase()} and every message is echoed`, async () => {
      const result = await runInNetns(`${SCRIPT} "$@"`, [transport, `--timeout-ms=${CALL_TIMEOUT_MS}`], PROCESS_TIMEOUT_MS);
      expect(result.timedOut, describeRun(result)).toBe(false);
      expect(result.code, describeRun(result)).toBe(0);
      const summary = summaryOf(result);
      expect(summary.ok, describeRun(result)).toBe(true);
      expect(summary.transport).toBe(transport);
      expect(summary.messagesSent).toBe(20);
      expect(summary.messagesEchoed).toBe(20);
      for (const side of ["alice", "bob"]) {
        const pair = summary.selectedPairs?.[side];
        expect(pair, `${side}'s selected pair`).toBeDefined();
        expect(pair!.local).toBe("relay");
        expect(pair!.remote).toBe("relay");
        expect(pair!.pairState).toBe("succeeded");
        expect(pair!.localTypes).toEqual(["relay"]);
      }
      // Both peers reached the relay over the transport the URL asked for, one allocation each.
      expect(summary.clientTransports).toEqual([transport, transport]);
      const ends = (summary.relayEvents ?? []).filter((event) => event.event === "allocation-end");
      expect(ends).toHaveLength(2);
      for (const end of ends) {
        expect(end["packetsToPeers"]).toBeGreaterThan(0);
        expect(end["packetsToClient"]).toBeGreaterThan(0);
      }
    }, PROCESS_TIMEOUT_MS + 5_000);
  }

  it("credentials signed with the wrong secret never connect", async () => {
    const result = await runInNetns(`${SCRIPT} "$@"`, ["udp", "--wrong-secret", `--timeout-ms=${NEGATIVE_TIMEOUT_MS}`], PROCESS_TIMEOUT_MS);
    expect(result.timedOut, describeRun(result)).toBe(false);
    expect(result.code, describeRun(result)).not.toBe(0);
    const summary = summaryOf(result);
    expect(summary.ok).toBe(false);
    expect(summary.error).toMatch(/global timeout/);
    // werift asked (its Allocate signed with the wrong key) and the relay refused every time: 401, no success.
    const seen = summary.stunSeenByTap ?? {};
    expect(seen["allocate/request/signed"] ?? 0, JSON.stringify(seen)).toBeGreaterThanOrEqual(1);
    expect(seen["allocate/error/401"] ?? 0, JSON.stringify(seen)).toBeGreaterThanOrEqual(2);
    expect(seen["allocate/success"], JSON.stringify(seen)).toBeUndefined();
    // The relay never allocated and no relay candidate was ever gathered or signaled.
    expect((summary.relayEvents ?? []).filter((event) => event.event === "allocation-start")).toEqual([]);
    expect(summary.candidatesSignaled).toEqual({ alice: 0, bob: 0 });
    for (const states of Object.values(summary.connectionStates ?? {})) expect(states).not.toContain("connected");
  }, PROCESS_TIMEOUT_MS + 5_000);
});
