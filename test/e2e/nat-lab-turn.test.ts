/**
 * The NAT lab's TURN cases (the lab and the other cases: nat-lab.test.ts): two homes behind symmetric
 * NATs, which STUN alone cannot connect, connect relay-only through our relay, over UDP and over TCP,
 * every message echoed, every packet across the relay and none straight from one home to the other.
 */
import { describe, expect, it } from "vitest";
import { CALL_TIMEOUT_MS, CASE_TIMEOUT_MS, expectPreconditions, expectRelayedCall, labUnavailable, runLabCase } from "./nat/lab-expectations.js";

const unavailable = await labUnavailable();

describe.skipIf(unavailable !== null)("NAT lab, TURN (ip netns + iptables, inside a namespace of its own)", () => {
  it("TURN over UDP connects the same two homes relay-only and every message is echoed", async () => {
    const { summary, context } = await runLabCase("turn-udp", CALL_TIMEOUT_MS);
    expectPreconditions(summary);
    expectRelayedCall(summary, "udp", context);
    expect(summary.counters?.pub["relay-udp-in"]).toBeGreaterThan(0);
  }, CASE_TIMEOUT_MS + 10_000);

  it("TURN over TCP connects the same two homes relay-only, the relay sees TCP clients", async () => {
    const { summary, context } = await runLabCase("turn-tcp", CALL_TIMEOUT_MS);
    expectPreconditions(summary);
    expectRelayedCall(summary, "tcp", context);
    expect(summary.counters?.pub["relay-tcp-in"]).toBeGreaterThan(0);
    expect(summary.counters?.pub["relay-udp-in"], "no UDP to the relay's port: TURN ran over TCP only").toBe(0);
  }, CASE_TIMEOUT_MS + 10_000);
});
