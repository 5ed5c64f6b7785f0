/**
 * The primary's admission ledger (relay/cluster/admission-ledger.ts): the quotas hold across worker
 * slots exactly, a released hold frees its place once, and a dead worker's holds all come back.
 */
import { describe, expect, it } from "vitest";
import { AdmissionLedger } from "../../../relay/cluster/admission-ledger.js";

const NO_LIMITS = { userQuota: 0, maxAllocationsPerIp: 0, totalQuota: 0 };

function holdOf(admission: ReturnType<AdmissionLedger["admit"]>): number {
  if (!admission.ok) throw new Error(`refused: ${admission.refusal}`);
  return admission.hold;
}

describe("the admission ledger", () => {
  it("allows a user's quota across worker slots and refuses the next, whichever slot asks", () => {
    const ledger = new AdmissionLedger({ ...NO_LIMITS, userQuota: 3 });
    expect([0, 1, 2].map((slot) => ledger.admit(slot, "alice", `10.0.0.${slot}`).ok)).toEqual([true, true, true]);
    for (const slot of [0, 1, 2, 3]) expect(ledger.admit(slot, "alice", "10.0.0.9")).toEqual({ ok: false, refusal: "user-quota" });
    expect(ledger.admit(3, "bob", "10.0.0.9").ok).toBe(true);
  });

  it("counts a client source by its IPv4 address or IPv6 /64, over every slot", () => {
    const ledger = new AdmissionLedger({ ...NO_LIMITS, maxAllocationsPerIp: 2 });
    holdOf(ledger.admit(0, "a", "2001:db8:1:2::1"));
    holdOf(ledger.admit(1, "b", "2001:db8:1:2:ffff::9"));
    expect(ledger.admit(2, "c", "2001:db8:1:2::77")).toEqual({ ok: false, refusal: "ip-quota" });
    expect(ledger.admit(2, "c", "2001:db8:1:3::1").ok).toBe(true);
    holdOf(ledger.admit(0, "d", "192.0.2.1"));
    holdOf(ledger.admit(1, "e", "::ffff:192.0.2.1"));
    expect(ledger.admit(0, "f", "192.0.2.1")).toEqual({ ok: false, refusal: "ip-quota" });
  });

  it("holds the total quota exactly under interleaved admissions and releases", () => {
    const ledger = new AdmissionLedger({ ...NO_LIMITS, totalQuota: 100 });
    const holds: number[] = [];
    for (let i = 0; i < 100; i++) holds.push(holdOf(ledger.admit(i % 4, `user-${i}`, `10.1.${i >> 8}.${i & 255}`)));
    expect(ledger.admit(0, "late", "10.9.9.9")).toEqual({ ok: false, refusal: "total-quota" });
    expect(ledger.release(holds[50]!)).toBe(true);
    expect(ledger.admit(3, "late", "10.9.9.9").ok).toBe(true);
    expect(ledger.admit(1, "later", "10.9.9.8")).toEqual({ ok: false, refusal: "total-quota" });
    expect(ledger.total).toBe(100);
  });

  it("frees a hold once: releasing it again, or a hold never given, changes nothing", () => {
    const ledger = new AdmissionLedger({ ...NO_LIMITS, userQuota: 1 });
    const hold = holdOf(ledger.admit(0, "alice", "10.0.0.1"));
    expect(ledger.release(hold)).toBe(true);
    expect(ledger.release(hold)).toBe(false);
    expect(ledger.release(12_345)).toBe(false);
    expect([ledger.total, ledger.heldByUser("alice"), ledger.heldBySource("10.0.0.1")]).toEqual([0, 0, 0]);
    holdOf(ledger.admit(1, "alice", "10.0.0.1"));
    expect(ledger.admit(0, "alice", "10.0.0.1")).toEqual({ ok: false, refusal: "user-quota" });
  });

  it("gives back every hold of a worker that died, and only those", () => {
    const ledger = new AdmissionLedger({ ...NO_LIMITS, userQuota: 4 });
    for (let i = 0; i < 4; i++) holdOf(ledger.admit(i % 2, "alice", `10.0.0.${i}`));
    expect(ledger.admit(0, "alice", "10.0.0.9").ok).toBe(false);
    expect(ledger.releaseSlot(1)).toBe(2);
    expect([ledger.heldBySlot(0), ledger.heldBySlot(1), ledger.heldByUser("alice")]).toEqual([2, 0, 2]);
    expect(ledger.releaseSlot(1)).toBe(0);
    expect([ledger.admit(1, "alice", "10.0.0.8").ok, ledger.admit(1, "alice", "10.0.0.9").ok, ledger.admit(1, "alice", "10.0.0.10").ok]).toEqual([true, true, false]);
  });
});
