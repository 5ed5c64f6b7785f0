/**
 * One gathering, like Trickle ICE: an RTCPeerConnection with the given servers and a data channel,
 * an offer set as the local description, and every candidate and candidate error reported as it
 * arrives, until gathering completes or the timeout runs out.
 *
 * STUN is also asked on its own, in a second connection with only the stun: URLs: whether that one
 * finishes tells "the STUN server answered with this machine's own address" (Chromium then drops
 * the srflx candidate as a duplicate of a host one) from "the STUN server never answered", even
 * while the main gathering still waits for a slow TURN server, and even in relay-only mode.
 */
import type { IceServer } from "../../shared/client/index.js";
import { urlsOf } from "./ice-servers-input.js";
import {
  RELAY_PROTOCOL_OF_KIND,
  kindOfUrl,
  parseCandidateLine,
  relayProtocolOfUrl,
  type CandidateError,
  type GatheredCandidate,
  type GatherOutcome,
  type ServerKind,
} from "./verdicts.js";

export interface GatherOptions {
  iceServers: IceServer[];
  relayOnly: boolean;
  timeoutMs: number;
  onCandidate?: (candidate: GatheredCandidate) => void;
  onError?: (error: CandidateError) => void;
}

/**
 * What browsers carry beyond the fields every one has: the server URL a candidate came from
 * (`RTCIceCandidate.url`, or the older `RTCPeerConnectionIceEvent.url`) and `relayProtocol`.
 */
type BrowserCandidate = RTCIceCandidate & { url?: string | null; relayProtocol?: string | null };
type BrowserCandidateEvent = RTCPeerConnectionIceEvent & { url?: string | null };

function readCandidate(candidate: BrowserCandidate, eventUrl: string | null, elapsedMs: number, turnKinds: ReadonlySet<ServerKind>): GatheredCandidate | null {
  const parsed = parseCandidateLine(candidate.candidate);
  const type = candidate.type ?? parsed?.type;
  const address = candidate.address ?? parsed?.address;
  const port = candidate.port ?? parsed?.port;
  if (type === undefined || address === undefined || port === undefined) return null;
  const url = candidate.url || eventUrl || null;
  let relayProtocol: string | null = null;
  if (type === "relay") {
    // The URL it came from is exact; Chromium's own relayProtocol field is null for UDP relays.
    relayProtocol = (url === null ? null : relayProtocolOfUrl(url)) ?? candidate.relayProtocol ?? null;
    // With one kind of TURN URL there is only one answer.
    const [onlyKind] = turnKinds;
    if (relayProtocol === null && turnKinds.size === 1 && onlyKind !== undefined && onlyKind !== "stun") relayProtocol = RELAY_PROTOCOL_OF_KIND[onlyKind];
  }
  return {
    type,
    protocol: (candidate.protocol ?? parsed?.protocol ?? "unknown").toLowerCase(),
    address,
    port,
    relayProtocol,
    relatedAddress: candidate.relatedAddress ?? parsed?.relatedAddress ?? null,
    relatedPort: candidate.relatedPort ?? parsed?.relatedPort ?? null,
    url,
    elapsedMs,
  };
}

/** Resolves when gathering completes (the null candidate or the "complete" state). */
function gatheringComplete(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate === null) resolve();
    });
  });
}

async function startGathering(pc: RTCPeerConnection): Promise<void> {
  pc.createDataChannel("ice-test");
  await pc.setLocalDescription(await pc.createOffer());
}

export async function gather(options: GatherOptions): Promise<GatherOutcome> {
  const urls = urlsOf(options.iceServers);
  const turnKinds = new Set<ServerKind>();
  for (const url of urls) {
    const kind = kindOfUrl(url);
    if (kind !== null && kind !== "stun") turnKinds.add(kind);
  }
  const stunServers = options.iceServers
    .map((server) => ({ urls: urlsOf([server]).filter((url) => kindOfUrl(url) === "stun") }))
    .filter((server) => server.urls.length > 0);

  const candidates: GatheredCandidate[] = [];
  const errors: CandidateError[] = [];
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const addError = (error: CandidateError) => {
    if (errors.some((seen) => seen.url === error.url && seen.errorCode === error.errorCode)) return;
    errors.push(error);
    options.onError?.(error);
  };
  const onCandidateError = (event: Event) => {
    const error = event as RTCPeerConnectionIceErrorEvent;
    addError({ url: error.url, errorCode: error.errorCode, errorText: error.errorText });
  };

  let main: RTCPeerConnection;
  try {
    main = new RTCPeerConnection({ iceServers: options.iceServers, iceTransportPolicy: options.relayOnly ? "relay" : "all" });
  } catch (error) {
    throw new Error(`the browser refused these ICE servers: ${error instanceof Error ? error.message : String(error)}`);
  }
  const stunProbe = stunServers.length > 0 ? new RTCPeerConnection({ iceServers: stunServers, iceTransportPolicy: "all" }) : null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    main.addEventListener("icecandidate", (event) => {
      const raw = event.candidate as BrowserCandidate | null;
      if (raw === null || raw.candidate === "") return;
      const candidate = readCandidate(raw, (event as BrowserCandidateEvent).url ?? null, elapsed(), turnKinds);
      if (candidate === null) return;
      candidates.push(candidate);
      options.onCandidate?.(candidate);
    });
    main.addEventListener("icecandidateerror", onCandidateError);
    let mainDone = false;
    let stunDone = stunProbe === null;
    const mainComplete = gatheringComplete(main).then(() => (mainDone = true));
    const work: Promise<unknown>[] = [mainComplete, startGathering(main)];
    if (stunProbe !== null) {
      stunProbe.addEventListener("icecandidateerror", onCandidateError);
      // Relay-only gathering makes no srflx candidate; the probe's proves STUN works, so list it.
      if (options.relayOnly) stunProbe.addEventListener("icecandidate", (event) => {
        const raw = event.candidate as BrowserCandidate | null;
        if (raw === null || raw.candidate === "" || raw.type !== "srflx") return;
        const candidate = readCandidate(raw, (event as BrowserCandidateEvent).url ?? null, elapsed(), turnKinds);
        if (candidate === null) return;
        candidates.push(candidate);
        options.onCandidate?.(candidate);
      });
      work.push(gatheringComplete(stunProbe).then(() => (stunDone = true)), startGathering(stunProbe));
    }
    await Promise.race([Promise.all(work), new Promise<void>((resolve) => (timer = setTimeout(resolve, options.timeoutMs)))]);
    return { urls, candidates, errors, stunFinished: stunDone, timedOut: !mainDone, timeoutMs: options.timeoutMs };
  } finally {
    clearTimeout(timer);
    main.close();
    stunProbe?.close();
  }
}
