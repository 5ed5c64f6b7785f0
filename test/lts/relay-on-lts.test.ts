/**
 * The relay's whole suite (test/relay) once more, under the Node LTS its container image runs
 * (scripts/test-relay-on-lts.sh), as one file of `npm test`. It runs in a fresh loopback-only network
 * namespace, so its relays, fixed ports included, never meet the same suites running at the same time
 * under the main Node; and beside the other files rather than before them all.
 */
import { describe, expect, it } from "vitest";
import { netnsSuiteUnavailable, runInNetns } from "../node/netns.js";

/** The pass takes about 3 minutes alone on two cores; shared with the rest of the run, longer. */
const LTS_PASS_TIMEOUT_MS = 12 * 60_000;

/** vitest's closing lines (files, tests, duration), without colours: what the pass printed last. */
function closingLines(output: string): string {
  const plain = output.replace(/\u001b\[[0-9;]*m/g, "");
  return plain
    .split("\n")
    .filter((line) => /^\s*(Test Files|Tests|Duration|Relay tests under Node)/.test(line))
    .join("\n");
}

const unavailable = await netnsSuiteUnavailable("the relay's suite under the container's Node LTS");

describe.skipIf(unavailable !== null)("the relay's suite under the container's Node LTS (scripts/test-relay-on-lts.sh, own network namespace)", () => {
  it("passes every relay test", async () => {
    const result = await runInNetns("bash scripts/test-relay-on-lts.sh", [], LTS_PASS_TIMEOUT_MS);
    const summary = closingLines(result.stdout);
    console.log(`${summary}\n(whole pass ${(result.elapsedMs / 1000).toFixed(0)} s)`);
    const tail = `${result.stdout.replace(/\u001b\[[0-9;]*m/g, "").slice(-8_000)}\n${result.stderr.slice(-4_000)}`;
    expect(result.timedOut, `the pass did not end within ${LTS_PASS_TIMEOUT_MS / 60_000} min:\n${tail}`).toBe(false);
    expect(result.code, tail).toBe(0);
    // It really ran the suite, under the LTS binary.
    expect(summary, tail).toMatch(/Relay tests under Node v24\./);
    expect(summary, tail).toMatch(/Tests\s+\d+ passed/);
  }, LTS_PASS_TIMEOUT_MS + 10_000);
});
