/**
 * What the room shows per peer from `RTCPeerConnection.getStats()`: the selected candidate pair
 * (which path the call took: host, srflx, prflx or relay on each side, over which protocol, and for
 * relay candidates how this browser reaches its TURN server), video frames decoded, and the inbound
 * media bitrate. Pure functions over the stats objects, so they can be tested without a browser.
 */

/** One object of an `RTCStatsReport`: a type, an id, a timestamp, and type-specific fields. */
export interface StatsEntry {
  id: string;
  type: string;
  timestamp: number;
  [field: string]: unknown;
}

export interface CandidatePairSummary {
  /** `candidateType` of the pair's local candidate: host, srflx, prflx or relay. */
  local: string;
  /** `candidateType` of the pair's remote candidate. */
  remote: string;
  /** The local candidate's transport, `udp` or `tcp` (a relayed candidate is always `udp`). */
  protocol: string;
  /** For a local relay candidate: how this browser reaches the TURN server (`udp`, `tcp`, `tls`). */
  relayProtocol: string | null;
}

export interface LinkStats {
  pair: CandidatePairSummary | null;
  /** Video frames decoded over every inbound video stream. */
  framesDecoded: number;
  /** Bytes received over every inbound RTP stream (audio and video). */
  inboundBytes: number;
  /** When these stats were taken (ms, the report's own clock). */
  timestamp: number;
}

function text(value: unknown): string | null {
  return typeof value === "string" && value.length > 0 ? value : null;
}

function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

/**
 * The selected candidate pair: the one the transport names (Chromium, and the spec), else the one
 * flagged `selected` (Firefox), else a nominated pair that succeeded.
 */
function selectedPair(byId: Map<string, StatsEntry>): StatsEntry | undefined {
  for (const entry of byId.values()) {
    if (entry.type !== "transport") continue;
    const id = text(entry["selectedCandidatePairId"]);
    const pair = id === null ? undefined : byId.get(id);
    if (pair !== undefined) return pair;
  }
  const pairs = [...byId.values()].filter((entry) => entry.type === "candidate-pair");
  return pairs.find((pair) => pair["selected"] === true) ?? pairs.find((pair) => pair["nominated"] === true && pair["state"] === "succeeded");
}

export function summarizeStats(entries: Iterable<StatsEntry>): LinkStats {
  const byId = new Map<string, StatsEntry>();
  let framesDecoded = 0;
  let inboundBytes = 0;
  let timestamp = 0;
  for (const entry of entries) {
    byId.set(entry.id, entry);
    timestamp = Math.max(timestamp, count(entry.timestamp));
    if (entry.type === "inbound-rtp") {
      inboundBytes += count(entry["bytesReceived"]);
      if (entry["kind"] === "video") framesDecoded += count(entry["framesDecoded"]);
    }
  }

  let pair: CandidatePairSummary | null = null;
  const selected = selectedPair(byId);
  if (selected !== undefined) {
    const local = byId.get(text(selected["localCandidateId"]) ?? "");
    const remote = byId.get(text(selected["remoteCandidateId"]) ?? "");
    if (local !== undefined && remote !== undefined) {
      const localType = text(local["candidateType"]) ?? "unknown";
      pair = {
        local: localType,
        remote: text(remote["candidateType"]) ?? "unknown",
        protocol: text(local["protocol"]) ?? "unknown",
        relayProtocol: localType === "relay" ? text(local["relayProtocol"]) : null,
      };
    }
  }
  return { pair, framesDecoded, inboundBytes, timestamp };
}

/** Inbound kbit/s between two samples; 0 when there is no earlier sample or the counters restarted. */
export function inboundKbps(previous: Pick<LinkStats, "inboundBytes" | "timestamp"> | null, current: Pick<LinkStats, "inboundBytes" | "timestamp">): number {
  if (previous === null) return 0;
  const elapsedMs = current.timestamp - previous.timestamp;
  const bytes = current.inboundBytes - previous.inboundBytes;
  if (elapsedMs <= 0 || bytes < 0) return 0;
  // bits per millisecond is kilobits per second.
  return Math.round((bytes * 8) / elapsedMs);
}

/** "relay (tcp) ↔ relay, udp" and the like, for the tile. */
export function describePair(pair: CandidatePairSummary | null): string {
  if (pair === null) return "no path yet";
  const local = pair.relayProtocol === null ? pair.local : `${pair.local} via TURN/${pair.relayProtocol.toUpperCase()}`;
  return `${local} ↔ ${pair.remote} (${pair.protocol})`;
}
