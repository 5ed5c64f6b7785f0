/**
 * Driving the Worker's pages from the end-to-end scripts: the demo room's and the ICE test page's
 * test hooks (their contract, typed once here), and a recorder that every page gets before its own
 * scripts run, which logs each RTCPeerConnection's connection and signaling state changes as they
 * happen (a snapshot polled now and then would miss a short drop).
 */
import type { Browser, BrowserContext, Page } from "playwright-core";

/** `window.relaykitDemo.snapshot()` on the demo room page. */
export interface DemoSnapshot {
  peerId: string | null;
  roomState: "connecting" | "open" | "reconnecting" | "closed";
  relayOnly: boolean;
  localMedia: "camera" | "none";
  error: string | null;
  peers: DemoPeer[];
}

export interface DemoPeer {
  id: string;
  connectionState: string;
  pair: { local: string; remote: string; protocol: string; relayProtocol: string | null } | null;
  framesDecoded: number;
  bitrateKbps: number;
  chatState: string;
  chatReceived: string[];
}

export type IceTestVerdict = "worked" | "failed" | "not-configured";

/** What `window.relaykitIceTest.run()` resolves with on the ICE test page. */
export interface IceTestResult {
  candidates: { type: string; protocol: string; address: string; port: number; relayProtocol: string | null; elapsedMs: number }[];
  errors: { url: string; errorCode: number; errorText: string }[];
  verdicts: { stun: "worked" | "same-as-host" | "failed" | "not-configured"; turnUdp: IceTestVerdict; turnTcp: IceTestVerdict; turnTls: IceTestVerdict };
}

export interface IceTestOptions {
  relayOnly?: boolean;
  iceServers?: unknown;
  timeoutMs?: number;
}

/** One state change of one RTCPeerConnection in a page, as the recorder saw it. */
export interface PeerConnectionEvent {
  /** 1, 2, … in the order the page created its connections. */
  pc: number;
  kind: "created" | "connection" | "signaling" | "ice" | "description";
  state: string;
  /** Epoch milliseconds (comparable across pages and with Node's Date.now()). */
  at: number;
}

interface RecorderWindow {
  __relaykitPeerConnectionLog?: PeerConnectionEvent[];
  __relaykitPeerConnections?: RTCPeerConnection[];
  relaykitDemo?: { snapshot(): DemoSnapshot; sendChat(text: string): void };
  relaykitIceTest?: { run(options?: IceTestOptions): Promise<IceTestResult> };
}

/**
 * Runs in the page before any of its scripts: replaces RTCPeerConnection with a subclass that logs
 * its state changes. It only listens; the page's connections behave exactly as before.
 *
 * Plain JavaScript source on purpose: a TypeScript function handed to addInitScript is sent as its
 * transpiled text, and tsx's transpiler adds helper calls (`__name(...)`) that do not exist in the page.
 */
const RECORD_PEER_CONNECTIONS = `(() => {
  const Native = window.RTCPeerConnection;
  if (typeof Native !== "function") return;
  const log = [];
  const connections = [];
  let created = 0;
  class RecordedPeerConnection extends Native {
    constructor(...args) {
      super(...args);
      const pc = ++created;
      const note = (kind, state) => log.push({ pc, kind, state, at: Date.now() });
      connections.push(this);
      note("created", "new");
      this.addEventListener("connectionstatechange", () => note("connection", this.connectionState));
      this.addEventListener("signalingstatechange", () => note("signaling", this.signalingState));
      this.addEventListener("iceconnectionstatechange", () => note("ice", this.iceConnectionState));
      // Every description applied, and how it went: "local:offer:ok", "remote:offer:<error>".
      for (const [method, side] of [["setLocalDescription", "local"], ["setRemoteDescription", "remote"]]) {
        const original = this[method].bind(this);
        this[method] = (...args) => {
          const type = args[0] && args[0].type ? args[0].type : "implicit";
          return original(...args).then(
            (value) => { note("description", side + ":" + type + ":ok"); return value; },
            (error) => { note("description", side + ":" + type + ":" + String(error && error.message)); throw error; },
          );
        };
      }
    }
  }
  window.RTCPeerConnection = RecordedPeerConnection;
  window.__relaykitPeerConnectionLog = log;
  window.__relaykitPeerConnections = connections;
})();`;

/** A new browser context (its own profile state) whose pages record their peer connections. */
export async function newRecordedContext(browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext();
  await context.addInitScript({ content: RECORD_PEER_CONNECTIONS });
  return context;
}

/** The page's console errors and warnings and its uncaught exceptions, kept for failure messages. */
export function collectPageErrors(page: Page, into: string[], label: string): void {
  const keep = (text: string) => {
    if (into.length < 50) into.push(`${label}: ${text.slice(0, 300)}`);
  };
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") keep(`console.${message.type()} ${message.text()}`);
  });
  page.on("pageerror", (error) => keep(`uncaught ${error.message}`));
}

const HOOK_TIMEOUT_MS = 15_000;

/** Waits until the page has defined `window.<name>` (its script ran), bounded. */
export async function waitForHook(page: Page, name: "relaykitDemo" | "relaykitIceTest"): Promise<void> {
  try {
    await page.waitForFunction((hook) => (window as unknown as Record<string, unknown>)[hook] !== undefined, name, { timeout: HOOK_TIMEOUT_MS });
  } catch {
    throw new Error(`${page.url()} did not define window.${name} within ${HOOK_TIMEOUT_MS} ms: is the page built (scripts/build-web.mjs) and served by the Worker?`);
  }
}

export async function demoSnapshot(page: Page): Promise<DemoSnapshot> {
  return page.evaluate(() => {
    const demo = (window as unknown as RecorderWindow).relaykitDemo;
    if (demo === undefined) throw new Error("window.relaykitDemo is missing");
    return demo.snapshot();
  });
}

export async function sendChat(page: Page, text: string): Promise<void> {
  await page.evaluate((message) => {
    const demo = (window as unknown as RecorderWindow).relaykitDemo;
    if (demo === undefined) throw new Error("window.relaykitDemo is missing");
    demo.sendChat(message);
  }, text);
}

export async function runIceTest(page: Page, options: IceTestOptions): Promise<IceTestResult> {
  return page.evaluate((runOptions) => {
    const iceTest = (window as unknown as RecorderWindow).relaykitIceTest;
    if (iceTest === undefined) throw new Error("window.relaykitIceTest is missing");
    return iceTest.run(runOptions);
  }, options);
}

export async function peerConnectionLog(page: Page): Promise<PeerConnectionEvent[]> {
  return page.evaluate(() => (window as unknown as RecorderWindow).__relaykitPeerConnectionLog ?? []);
}

/** The states one connection went through, of one kind, in order. */
export function statesOf(log: PeerConnectionEvent[], pc: number, kind: PeerConnectionEvent["kind"]): string[] {
  return log.filter((event) => event.pc === pc && event.kind === kind).map((event) => event.state);
}

/**
 * Whether a connection stayed up once it was first connected: after the first "connected", only
 * "connected" again (a drop to "disconnected" or "failed" counts, even if it came back).
 */
export function leftConnectedAfterUp(states: string[]): boolean {
  const first = states.indexOf("connected");
  return first !== -1 && states.slice(first).some((state) => state !== "connected");
}

/** The local side of the selected candidate pair of the page's newest open connection. */
export interface SelectedLocalCandidate {
  candidateType: string;
  address: string;
  port: number;
  /** The STUN/TURN server URL the candidate came from (relay candidates). */
  url: string | null;
}

export async function selectedLocalCandidate(page: Page): Promise<SelectedLocalCandidate | null> {
  return page.evaluate(async () => {
    const connections = ((window as unknown as RecorderWindow).__relaykitPeerConnections ?? []).filter((pc) => pc.connectionState !== "closed");
    const pc = connections.at(-1);
    if (pc === undefined) return null;
    const stats: Record<string, unknown>[] = [];
    (await pc.getStats()).forEach((entry: Record<string, unknown>) => stats.push(entry));
    const transport = stats.find((entry) => entry["type"] === "transport" && typeof entry["selectedCandidatePairId"] === "string");
    const pair = stats.find((entry) => entry["id"] === transport?.["selectedCandidatePairId"]);
    const local = stats.find((entry) => entry["id"] === pair?.["localCandidateId"]);
    if (local === undefined) return null;
    return {
      candidateType: String(local["candidateType"]),
      address: String(local["address"] ?? local["ip"]),
      port: Number(local["port"]),
      url: typeof local["url"] === "string" ? local["url"] : null,
    };
  });
}

/**
 * Opens `roomUrl` in a new recorded context and waits until the page is in the room with its camera;
 * page errors go to `pageErrors`. Bounded: 15 s to load, 15 s to join.
 */
export async function joinDemoPage(browser: Browser, roomUrl: string, name: string, pageErrors: string[]): Promise<{ page: Page; joined: DemoSnapshot }> {
  const context = await newRecordedContext(browser);
  const page = await context.newPage();
  collectPageErrors(page, pageErrors, name);
  await page.goto(roomUrl, { timeout: 15_000 });
  await waitForHook(page, "relaykitDemo");
  const deadline = Date.now() + 15_000;
  let seen: DemoSnapshot | undefined;
  for (;;) {
    seen = await demoSnapshot(page);
    if (seen.roomState === "open" && seen.peerId !== null && seen.localMedia === "camera") return { page, joined: seen };
    if (Date.now() > deadline) throw new Error(`page ${name} joining the room with its camera did not happen within 15000 ms; last seen: ${JSON.stringify(seen)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
