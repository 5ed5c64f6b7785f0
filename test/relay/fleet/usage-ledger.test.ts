/**
 * The usage ledger alone (relay/fleet/usage-ledger.ts), with an injected clock and allocations as
 * plain objects whose counters the test bumps as the data path would: ended + live addition,
 * exact lifetimes, the per-report cap and its rotation, acks (settling only on final figures, an old
 * seq's ack, another boot's, a lost one), the idle bound and what it drops.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BOOT_ID_PATTERN, FLEET_LIMITS, parseRelayMessage, type HeartbeatMessage, type UsageEntry, type UsageReport } from "../../../shared/fleet/protocol.js";
import { UsageLedger, newBootId, type MeteredAllocation, type UsageLedgerOptions } from "../../../relay/fleet/usage-ledger.js";

const BOOT = "boot-test-0001";

interface FakeAllocation extends MeteredAllocation {
  owner: { room?: string; peerId?: string };
  traffic: { bytesToPeers: number; bytesToClient: number };
  createdAt: number;
}

function setup(options: Partial<UsageLedgerOptions> = {}) {
  const clock = { now: 1_000_000 };
  const ledger = new UsageLedger({ boot: BOOT, now: () => clock.now, ...options });
  const open = (room: string | undefined, peerId: string | undefined): FakeAllocation => {
    const allocation: FakeAllocation = { owner: { ...(room !== undefined && { room }), ...(peerId !== undefined && { peerId }) }, traffic: { bytesToPeers: 0, bytesToClient: 0 }, createdAt: clock.now };
    ledger.opened(allocation);
    return allocation;
  };
  return { clock, ledger, open };
}

function entryOf(report: UsageReport, room: string, peerId: string): UsageEntry | undefined {
  return report.entries.find((entry) => entry.room === room && entry.peerId === peerId);
}

describe("usage ledger", () => {
  it("boot ids are 16 base64url characters that match BOOT_ID_PATTERN, new each time", () => {
    const a = newBootId(randomBytes);
    const b = newBootId(randomBytes);
    expect(a).toMatch(BOOT_ID_PATTERN);
    expect(a).toHaveLength(16);
    expect(a).not.toBe(b);
  });

  it("adds ended and live allocations of a member, exactly, with lifetimes from the clock", () => {
    const { clock, ledger, open } = setup();
    const first = open("room-a", "alice");
    first.traffic.bytesToPeers = 1000;
    first.traffic.bytesToClient = 250;
    clock.now += 1_500;
    ledger.ended(first, clock.now);
    const second = open("room-a", "alice");
    second.traffic.bytesToPeers = 7;
    second.traffic.bytesToClient = 11;
    clock.now += 2_000;
    const plain = open(undefined, undefined);
    plain.traffic.bytesToPeers = 99;
    const report = ledger.report();
    expect(report.boot).toBe(BOOT);
    expect(report.seq).toBe(1);
    expect(report.entries).toEqual([{ room: "room-a", peerId: "alice", bytesToPeers: 1007, bytesToClient: 261, allocationMs: 3_500 }]);
    // Ending the second counts its lifetime up to that moment, not up to the report.
    clock.now += 500;
    ledger.ended(second, clock.now);
    clock.now += 10_000;
    expect(ledger.report().entries).toEqual([{ room: "room-a", peerId: "alice", bytesToPeers: 1007, bytesToClient: 261, allocationMs: 4_000 }]);
    // An allocation ended twice counts once.
    ledger.ended(second, clock.now);
    expect(entryOf(ledger.report(), "room-a", "alice")?.allocationMs).toBe(4_000);
  });

  it("keeps members of one room apart, and the same peer id in two rooms apart", () => {
    const { clock, ledger, open } = setup();
    const a = open("room-a", "p1");
    const b = open("room-a", "p2");
    const c = open("room-b", "p1");
    a.traffic.bytesToPeers = 1;
    b.traffic.bytesToPeers = 2;
    c.traffic.bytesToPeers = 3;
    clock.now += 10;
    const report = ledger.report();
    expect(report.entries).toHaveLength(3);
    expect(entryOf(report, "room-a", "p1")?.bytesToPeers).toBe(1);
    expect(entryOf(report, "room-a", "p2")?.bytesToPeers).toBe(2);
    expect(entryOf(report, "room-b", "p1")?.bytesToPeers).toBe(3);
  });

  it("sends at most maxUsageEntries a report and rotates, so every member goes out", () => {
    const { clock, ledger, open } = setup();
    const total = FLEET_LIMITS.maxUsageEntries * 2 + 50;
    for (let i = 0; i < total; i++) open("big", `peer-${i}`);
    clock.now += 1_000;
    const seen = new Set<string>();
    const sizes: number[] = [];
    for (let beat = 0; beat < 3; beat++) {
      const report = ledger.report();
      sizes.push(report.entries.length);
      for (const entry of report.entries) seen.add(entry.peerId);
      clock.now += 1_000;
    }
    expect(sizes).toEqual([FLEET_LIMITS.maxUsageEntries, FLEET_LIMITS.maxUsageEntries, FLEET_LIMITS.maxUsageEntries]);
    expect(seen.size).toBe(total);
  });

  it("puts never-acknowledged members before those sent longest ago", () => {
    const { clock, ledger, open } = setup({ maxEntries: 2 });
    const old1 = open("r", "old1");
    const old2 = open("r", "old2");
    clock.now += 100;
    const first = ledger.report();
    expect(first.entries.map((e) => e.peerId).sort()).toEqual(["old1", "old2"]);
    expect(ledger.acknowledge({ boot: BOOT, seq: first.seq })).toBe(true);
    open("r", "new1");
    clock.now += 100;
    // old1 and old2 changed (live), but new1 was never acknowledged: it goes first, with one of them.
    const second = ledger.report().entries.map((e) => e.peerId);
    expect(second).toHaveLength(2);
    expect(second).toContain("new1");
    const other = second.find((peerId) => peerId !== "new1")!;
    clock.now += 100;
    // No ack: new1 still first; then the old one sent longest ago (not in the second report).
    const third = ledger.report().entries.map((e) => e.peerId).sort();
    expect(third).toEqual(["new1", other === "old1" ? "old2" : "old1"].sort());
    void old1;
    void old2;
  });

  it("settles an ended member only once its FINAL figures are acknowledged, and keeps its totals for a return", () => {
    const { clock, ledger, open } = setup();
    const allocation = open("r", "bob");
    allocation.traffic.bytesToPeers = 10;
    clock.now += 1_000;
    const live = ledger.report();
    clock.now += 1_000;
    ledger.ended(allocation, clock.now);
    // The ack of a report taken while the allocation lived does not settle it: its final figures differ.
    expect(ledger.acknowledge({ boot: BOOT, seq: live.seq })).toBe(true);
    expect(ledger.counts()).toMatchObject({ live: 0, unacked: 1, settled: 0 });
    const final = ledger.report();
    expect(final.entries).toEqual([{ room: "r", peerId: "bob", bytesToPeers: 10, bytesToClient: 0, allocationMs: 2_000 }]);
    // Unacknowledged: sent again, the same figures.
    expect(ledger.report().entries).toEqual(final.entries);
    expect(ledger.acknowledge({ boot: BOOT, seq: final.seq })).toBe(true);
    expect(ledger.counts()).toMatchObject({ live: 0, unacked: 0, settled: 1 });
    expect(ledger.report().entries).toEqual([]);
    // The same peer comes back: its figures carry on from its totals, never going down.
    const again = open("r", "bob");
    again.traffic.bytesToClient = 5;
    clock.now += 300;
    expect(ledger.report().entries).toEqual([{ room: "r", peerId: "bob", bytesToPeers: 10, bytesToClient: 5, allocationMs: 2_300 }]);
  });

  it("an old seq's ack does not settle newer figures; another boot's ack and unknown seqs are ignored", () => {
    const { clock, ledger, open } = setup();
    const allocation = open("r", "carol");
    clock.now += 100;
    const s1 = ledger.report();
    clock.now += 100;
    ledger.ended(allocation, clock.now);
    const s2 = ledger.report();
    expect(entryOf(s2, "r", "carol")?.allocationMs).toBe(200);
    expect(ledger.acknowledge({ boot: "another-boot-1", seq: s2.seq })).toBe(false);
    expect(ledger.acknowledge({ boot: BOOT, seq: 999 })).toBe(false);
    expect(ledger.counts().settled).toBe(0);
    // s2 acknowledged first, then s1 late: s1's older figures must not replace s2's.
    expect(ledger.acknowledge({ boot: BOOT, seq: s2.seq })).toBe(true);
    expect(ledger.counts().settled).toBe(1);
    expect(ledger.acknowledge({ boot: BOOT, seq: s1.seq })).toBe(true);
    expect(ledger.counts().settled).toBe(1);
    expect(ledger.report().entries).toEqual([]);
  });

  it("an ack of an earlier report leaves the member unsettled when newer figures exist", () => {
    const { clock, ledger, open } = setup();
    const allocation = open("r", "dave");
    allocation.traffic.bytesToPeers = 1;
    clock.now += 100;
    const s1 = ledger.report();
    allocation.traffic.bytesToPeers = 2;
    clock.now += 100;
    ledger.ended(allocation, clock.now);
    const s2 = ledger.report();
    expect(ledger.acknowledge({ boot: BOOT, seq: s1.seq })).toBe(true);
    expect(ledger.counts()).toMatchObject({ unacked: 1, settled: 0 });
    // The figures s2 carried (unacknowledged: s2's ack was lost) go again.
    const s3 = ledger.report();
    expect(s3.entries).toEqual(s2.entries);
    expect(ledger.acknowledge({ boot: BOOT, seq: s3.seq })).toBe(true);
    expect(ledger.counts()).toMatchObject({ unacked: 0, settled: 1 });
  });

  it("bounds idle members: settled ones forgotten first, then the oldest unacknowledged dropped and counted; live never", () => {
    const drops: [number, number][] = [];
    const { clock, ledger, open } = setup({ maxIdleMembers: 3, dropWarningIntervalMs: 60_000, onDropped: (count, total) => drops.push([count, total]) });
    const live = open("r", "live");
    // One settled member.
    const s = open("r", "settled");
    clock.now += 10;
    ledger.ended(s, clock.now);
    const report = ledger.report();
    ledger.acknowledge({ boot: BOOT, seq: report.seq });
    expect(ledger.counts()).toMatchObject({ live: 1, settled: 1, unacked: 0 });
    // Unacknowledged idle members u0..u4 (the channel is down: no reports).
    for (let i = 0; i < 5; i++) {
      const u = open("r", `u${i}`);
      clock.now += 10;
      ledger.ended(u, clock.now);
    }
    // 3 kept: the settled one went first, then u0 and u1.
    expect(ledger.counts()).toMatchObject({ live: 1, settled: 0, unacked: 3, forgotten: 1, dropped: 2 });
    // One warning for the first drop; the second came within the interval.
    expect(drops).toEqual([[1, 1]]);
    clock.now += 60_000;
    const u5 = open("r", "u5");
    ledger.ended(u5, clock.now);
    expect(drops).toEqual([[1, 1], [2, 3]]);
    const peers = ledger.report().entries.map((e) => e.peerId).sort();
    expect(peers).toEqual(["live", "u3", "u4", "u5"]);
    void live;
  });

  it("a heartbeat with a full room list and a full report of the longest names and largest figures fits in one fleet message", () => {
    const { clock, ledger, open } = setup();
    for (let i = 0; i < FLEET_LIMITS.maxUsageEntries + 5; i++) {
      const allocation = open(`r${i}`.padEnd(64, "x"), `p${i}`.padEnd(128, "y"));
      allocation.traffic.bytesToPeers = Number.MAX_SAFE_INTEGER;
      allocation.traffic.bytesToClient = Number.MAX_SAFE_INTEGER;
    }
    clock.now += 1e12;
    const report = ledger.report();
    expect(report.entries).toHaveLength(FLEET_LIMITS.maxUsageEntries);
    const heartbeat: HeartbeatMessage = {
      type: "heartbeat",
      state: "draining",
      allocations: Number.MAX_SAFE_INTEGER,
      bpsIn: 1e15,
      bpsOut: 1e15,
      cpuPercent: 1e15,
      eventLoopDelayMs: 1e15,
      rooms: Array.from({ length: FLEET_LIMITS.maxRooms }, (_, i) => ({ room: `r${i}`.padEnd(64, "x"), allocations: Number.MAX_SAFE_INTEGER })),
      roomsOmitted: Number.MAX_SAFE_INTEGER,
      usage: { ...report, boot: "b".repeat(64), seq: Number.MAX_SAFE_INTEGER },
    };
    const text = JSON.stringify(heartbeat);
    expect(Buffer.byteLength(text)).toBeLessThan(FLEET_LIMITS.maxMessageBytes);
    const parsed = parseRelayMessage(text);
    expect(parsed.ok && parsed.message.type === "heartbeat" && parsed.message.usage?.entries.length).toBe(FLEET_LIMITS.maxUsageEntries);
  });
});
