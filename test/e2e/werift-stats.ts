/**
 * What werift's getStats() says about the path a call took: the selected candidate pair (through
 * transport.selectedCandidatePairId → pair → local and remote candidates) and the kinds of local
 * candidates gathered. werift does not report relayProtocol; the relay's own logs say that.
 */
import type { RTCPeerConnection } from "werift";

interface StatLike {
  type: string;
  id: string;
  [field: string]: unknown;
}

export interface SelectedPair {
  /** candidateType of the local and remote candidates: host, srflx, prflx or relay. */
  local: string;
  remote: string;
  localProtocol: string;
  pairState: string;
  /** Every kind of local candidate gathered. */
  localTypes: string[];
}

export async function selectedPair(pc: RTCPeerConnection): Promise<SelectedPair> {
  const report = (await pc.getStats()) as unknown as Map<string, StatLike>;
  const stats = [...report.values()];
  const transport = stats.find((stat) => stat.type === "transport" && typeof stat["selectedCandidatePairId"] === "string");
  if (transport === undefined) throw new Error("getStats() has no transport with a selectedCandidatePairId");
  const pair = report.get(transport["selectedCandidatePairId"] as string);
  if (pair === undefined) throw new Error("getStats() names a selected pair it does not report");
  const local = report.get(pair["localCandidateId"] as string);
  const remote = report.get(pair["remoteCandidateId"] as string);
  if (local === undefined || remote === undefined) throw new Error("getStats() lacks a candidate of the selected pair");
  return {
    local: String(local["candidateType"]),
    remote: String(remote["candidateType"]),
    localProtocol: String(local["protocol"]),
    pairState: String(pair["state"]),
    localTypes: [...new Set(stats.filter((stat) => stat.type === "local-candidate").map((stat) => String(stat["candidateType"])))],
  };
}
