/**
 * What a gathering says about each server, in plain words. Pure functions over what the browser
 * reported, so every rule here is tested without a browser (test/node/pages-build.test.ts).
 *
 * - STUN worked when a server-reflexive (srflx) candidate appeared. When none appeared but the STUN
 *   servers answered (their own gathering finished) and reported no error, the answer was this
 *   machine's own address: Chromium drops a srflx candidate equal to a host candidate, which is what
 *   happens with no NAT in between. An error naming a stun: URL, or no answer before the timeout,
 *   is a failure.
 * - TURN over UDP, TCP and TLS each worked when a relay candidate reached through that transport
 *   appeared; "not configured" when no URL of that kind was given; failed otherwise, with the
 *   browser's error text when it gave one.
 */

export type ServerKind = "stun" | "turnUdp" | "turnTcp" | "turnTls";
export type StunVerdict = "worked" | "same-as-host" | "failed" | "not-configured";
export type TurnVerdict = "worked" | "failed" | "not-configured";

export interface GatheredCandidate {
  type: string;
  protocol: string;
  address: string;
  port: number;
  /** For relay candidates: how the browser reached the TURN server (`udp`, `tcp`, `tls`). */
  relayProtocol: string | null;
  relatedAddress: string | null;
  relatedPort: number | null;
  /** The STUN or TURN URL this candidate came from, when the browser says. */
  url: string | null;
  /** Milliseconds from the start of gathering. */
  elapsedMs: number;
}

export interface CandidateError {
  url: string;
  errorCode: number;
  errorText: string;
}

export interface GatherOutcome {
  /** Every URL the gathering was given. */
  urls: string[];
  candidates: GatheredCandidate[];
  errors: CandidateError[];
  /** The STUN-only gathering finished: every STUN server answered or gave up with an error. */
  stunFinished: boolean;
  /** The main gathering had not finished when the timeout ran out. */
  timedOut: boolean;
  timeoutMs: number;
}

export interface Verdicts {
  stun: StunVerdict;
  turnUdp: TurnVerdict;
  turnTcp: TurnVerdict;
  turnTls: TurnVerdict;
}

export type Explanations = Record<ServerKind, string>;

/** How the browser reaches a TURN server of each kind: a relay candidate's `relayProtocol`. */
export const RELAY_PROTOCOL_OF_KIND = { turnUdp: "udp", turnTcp: "tcp", turnTls: "tls" } as const;
const LABEL_OF_KIND: Record<ServerKind, string> = { stun: "STUN", turnUdp: "TURN over UDP", turnTcp: "TURN over TCP", turnTls: "TURN over TLS" };

export function labelOf(kind: ServerKind): string {
  return LABEL_OF_KIND[kind];
}

/**
 * Which check a URL belongs to: `stun:`/`stuns:` → STUN; `turns:` → TURN over TLS; `turn:` with
 * `?transport=tcp` → TURN over TCP; any other `turn:` → TURN over UDP (the default transport).
 */
export function kindOfUrl(url: string): ServerKind | null {
  const trimmed = url.trim().toLowerCase();
  if (/^stuns?:/.test(trimmed)) return "stun";
  if (trimmed.startsWith("turns:")) return "turnTls";
  if (trimmed.startsWith("turn:")) return /[?&]transport=tcp(&|$)/.test(trimmed) ? "turnTcp" : "turnUdp";
  return null;
}

/** The relay transport a TURN URL makes the browser use: udp, tcp or tls; null for other URLs. */
export function relayProtocolOfUrl(url: string): "udp" | "tcp" | "tls" | null {
  const kind = kindOfUrl(url);
  return kind === null || kind === "stun" ? null : RELAY_PROTOCOL_OF_KIND[kind];
}

/** The fields of an SDP candidate line (`candidate:… udp 2122260223 192.0.2.1 54321 typ host …`). */
export function parseCandidateLine(line: string): Pick<GatheredCandidate, "type" | "protocol" | "address" | "port" | "relatedAddress" | "relatedPort"> | null {
  const fields = line.replace(/^a=/, "").trim().split(/\s+/);
  // foundation component protocol priority address port "typ" type [name value]...
  if (fields.length < 8 || !fields[0]!.startsWith("candidate:") || fields[6] !== "typ") return null;
  const port = Number(fields[5]);
  if (!Number.isInteger(port)) return null;
  let relatedAddress: string | null = null;
  let relatedPort: number | null = null;
  for (let i = 8; i + 1 < fields.length; i += 2) {
    if (fields[i] === "raddr") relatedAddress = fields[i + 1]!;
    if (fields[i] === "rport") relatedPort = Number(fields[i + 1]);
  }
  return { protocol: fields[2]!.toLowerCase(), address: fields[4]!, port, type: fields[7]!, relatedAddress, relatedPort };
}

function describeErrors(errors: CandidateError[]): string {
  return errors.map((error) => `${error.errorCode} ${error.errorText.replace(/\.$/, "")} (${error.url})`).join("; ");
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

export function judge(outcome: GatherOutcome): { verdicts: Verdicts; explanations: Explanations } {
  const configured = new Set(outcome.urls.map(kindOfUrl));
  const errorsOf = (kind: ServerKind) => outcome.errors.filter((error) => kindOfUrl(error.url) === kind);

  let stun: StunVerdict;
  let stunText: string;
  const reflexive = outcome.candidates.find((candidate) => candidate.type === "srflx");
  const stunErrors = errorsOf("stun");
  if (!configured.has("stun")) {
    stun = "not-configured";
    stunText = "No stun: URL was given.";
  } else if (reflexive !== undefined) {
    stun = "worked";
    stunText = `The STUN server sees you at ${reflexive.address}:${reflexive.port} (a srflx candidate).`;
  } else if (stunErrors.length > 0) {
    stun = "failed";
    stunText = `The browser reported ${describeErrors(stunErrors)}.`;
  } else if (outcome.stunFinished) {
    stun = "same-as-host";
    stunText = "The STUN server answered but reported the same address as a host candidate: no NAT between you and it.";
  } else {
    stun = "failed";
    stunText = `No answer from the STUN server within ${seconds(outcome.timeoutMs)} (blocked, or nothing listens there).`;
  }

  const turn = (kind: keyof typeof RELAY_PROTOCOL_OF_KIND): [TurnVerdict, string] => {
    const transport = RELAY_PROTOCOL_OF_KIND[kind];
    if (!configured.has(kind)) {
      const example = kind === "turnUdp" ? "turn:…?transport=udp" : kind === "turnTcp" ? "turn:…?transport=tcp" : "turns:…";
      return ["not-configured", `No ${example} URL was given.`];
    }
    const relay = outcome.candidates.find((candidate) => candidate.type === "relay" && candidate.relayProtocol === transport);
    if (relay !== undefined) return ["worked", `The TURN server relays for you at ${relay.address}:${relay.port} (a relay candidate).`];
    const errors = errorsOf(kind);
    if (errors.length > 0) return ["failed", `The browser reported ${describeErrors(errors)}.`];
    if (outcome.timedOut) return ["failed", `No relay candidate and no error within ${seconds(outcome.timeoutMs)}: the server did not answer (blocked, or nothing listens there).`];
    return ["failed", "Gathering finished without a relay candidate from it, and the browser reported no error."];
  };
  const [turnUdp, turnUdpText] = turn("turnUdp");
  const [turnTcp, turnTcpText] = turn("turnTcp");
  const [turnTls, turnTlsText] = turn("turnTls");
  return {
    verdicts: { stun, turnUdp, turnTcp, turnTls },
    explanations: { stun: stunText, turnUdp: turnUdpText, turnTcp: turnTcpText, turnTls: turnTlsText },
  };
}
