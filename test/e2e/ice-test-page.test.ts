/**
 * The ICE test page (`/ice-test`) in headless Chromium against the local Worker and our relay: with
 * TURN over UDP, TCP and TLS handed out it must say each one worked (and that STUN answered), and
 * with a relay that does not know the Worker's secret it must say every TURN check failed.
 *
 * Each case runs test/e2e/browser/ice-test-run.ts inside a fresh loopback-only network namespace; the
 * page's own hook (`window.relaykitIceTest.run()`, what its button runs) does the gathering.
 */
import { describe, expect, it } from "vitest";
import { netnsGate, runBrowserScript, type ScriptSummary } from "./browser/netns-run.js";
import type { IceTestResult } from "./browser/pages.js";

interface IceTestRunSummary extends ScriptSummary {
  turnUrls?: string[];
  result?: IceTestResult;
  relayAllocations?: { event: string; client?: string; reason?: string }[];
  pageErrors?: string[];
}

const SCRIPT = "ice-test-run.ts";
const RUN_TIMEOUT_MS = 50_000;
const PROCESS_TIMEOUT_MS = 75_000;
/** Gathering on loopback finishes in well under a second; failures need the page's whole timeout. */
const GATHER_TIMEOUT_MS = 8_000;

const unavailable = await netnsGate("the ICE test page");

describe.skipIf(unavailable !== null)("the ICE test page in Chromium (loopback-only network namespace)", () => {
  it("says STUN answered and TURN worked over UDP, TCP and TLS, with a relay candidate of each", async () => {
    const { summary, details } = await runBrowserScript<IceTestRunSummary>(SCRIPT, [`--gather-timeout-ms=${GATHER_TIMEOUT_MS}`, `--timeout-ms=${RUN_TIMEOUT_MS}`], PROCESS_TIMEOUT_MS);
    expect(summary.ok, details).toBe(true);
    const result = summary.result!;
    expect(result.verdicts.turnUdp, details).toBe("worked");
    expect(result.verdicts.turnTcp, details).toBe("worked");
    expect(result.verdicts.turnTls, details).toBe("worked");
    // On loopback there is no NAT: the STUN answer equals the host candidate, which Chromium drops.
    expect(["worked", "same-as-host"], details).toContain(result.verdicts.stun);
    expect(result.errors, details).toEqual([]);
    // The verdicts rest on candidates the page listed: a relay candidate per TURN transport, on our relay.
    const relays = result.candidates.filter((candidate) => candidate.type === "relay");
    expect(new Set(relays.map((candidate) => candidate.relayProtocol)), details).toEqual(new Set(["udp", "tcp", "tls"]));
    for (const candidate of result.candidates) {
      expect(candidate.address, JSON.stringify(candidate)).toBe("127.0.0.1");
      expect(candidate.port).toBeGreaterThan(0);
      expect(candidate.elapsedMs).toBeGreaterThanOrEqual(0);
    }
    expect(result.candidates.some((candidate) => candidate.type === "host"), details).toBe(true);
    // And the relay allocated for each transport.
    const clients = (summary.relayAllocations ?? []).filter((line) => line.event === "allocation-start").map((line) => line.client?.split(":")[0]);
    expect(new Set(clients), details).toEqual(new Set(["udp", "tcp", "tls"]));
  }, PROCESS_TIMEOUT_MS + 5_000);

  it("says every TURN check failed when the relay does not know the Worker's secret", async () => {
    const { summary, details } = await runBrowserScript<IceTestRunSummary>(
      SCRIPT,
      ["--wrong-secret", `--gather-timeout-ms=${GATHER_TIMEOUT_MS}`, `--timeout-ms=${RUN_TIMEOUT_MS}`],
      PROCESS_TIMEOUT_MS,
    );
    expect(summary.ok, details).toBe(true);
    const result = summary.result!;
    expect(result.verdicts.turnUdp, details).toBe("failed");
    expect(result.verdicts.turnTcp, details).toBe("failed");
    expect(result.verdicts.turnTls, details).toBe("failed");
    // STUN needs no credential: it still answers.
    expect(["worked", "same-as-host"], details).toContain(result.verdicts.stun);
    expect(result.candidates.filter((candidate) => candidate.type === "relay"), details).toEqual([]);
    // The page shows why: the relay's 401 for each TURN URL (Chromium 156 reports it as icecandidateerror 401).
    const turnErrors = result.errors.filter((error) => /^turns?:/.test(error.url));
    expect(new Set(turnErrors.map((error) => error.url)), details).toEqual(new Set(summary.turnUrls));
    for (const error of turnErrors) expect(error.errorCode, JSON.stringify(error)).toBe(401);
    // The relay refused every Allocate: it never allocated.
    expect((summary.relayAllocations ?? []).filter((line) => line.event === "allocation-start"), details).toEqual([]);
  }, PROCESS_TIMEOUT_MS + 5_000);
});
