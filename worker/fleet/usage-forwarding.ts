/**
 * A heartbeat's usage report goes to the rooms it names: each room's object stores its members'
 * figures (worker/room/usage.ts), and the relay is told `usage-ack` only once every one of them has.
 * A room that cannot be reached fails the report; the relay resends those figures with its next
 * heartbeat, and since they are cumulative, storing them late or twice changes nothing.
 */
import type { UsageEntry, UsageReport } from "../../shared/fleet/protocol.js";
import type { Env } from "../env.js";
import type { MemberUsage } from "../room/usage.js";

/** Rooms written at once for one report. */
export const USAGE_FORWARD_CONCURRENCY = 16;

/** The report's entries per room, in the order the rooms first appear. */
export function usageByRoom(entries: readonly UsageEntry[]): Map<string, MemberUsage[]> {
  const rooms = new Map<string, MemberUsage[]>();
  for (const { room, peerId, bytesToPeers, bytesToClient, allocationMs } of entries) {
    let members = rooms.get(room);
    if (members === undefined) rooms.set(room, (members = []));
    members.push({ peerId, bytesToPeers, bytesToClient, allocationMs });
  }
  return rooms;
}

/** Stores a relay's report in every room it names; true when all of them stored it. */
export async function forwardUsage(env: Env, relayId: string, report: UsageReport): Promise<boolean> {
  const rooms = [...usageByRoom(report.entries)];
  let next = 0;
  let stored = true;
  const worker = async () => {
    while (next < rooms.length) {
      const [room, members] = rooms[next++]!;
      try {
        await env.ROOMS.get(env.ROOMS.idFromName(room)).recordUsage(relayId, report.boot, members);
      } catch (error) {
        stored = false;
        console.error(`fleet: could not store relay ${relayId}'s usage for room ${room}; the relay sends it again with its next heartbeat`, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(USAGE_FORWARD_CONCURRENCY, rooms.length) }, worker));
  return stored;
}
