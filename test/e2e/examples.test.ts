/**
 * The examples in examples/ (issue 18), each run as its README says (`npm start`, then
 * `node scripts/serve-example.mjs <name>`) with headless Chromium pages, inside a fresh loopback-only
 * network namespace: test/e2e/browser/examples-run.ts drives the pages and reports what they showed;
 * the assertions here decide.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { netnsGate, runBrowserScript, type ScriptRun, type ScriptSummary } from "./browser/netns-run.js";

const unavailable = await netnsGate("the examples in Chromium");

/** The whole script (npm start, the example's server, Chromium, the pages) and its own deadline. */
const PROCESS_TIMEOUT_MS = 90_000;
const SCRIPT_TIMEOUT_MS = PROCESS_TIMEOUT_MS - 15_000;
/** Each test awaits a run started in beforeAll, which ends within PROCESS_TIMEOUT_MS. */
const TEST_TIMEOUT_MS = PROCESS_TIMEOUT_MS + 5_000;
const FILE_SIZE = 1_500_000;
const VIEWERS = 3;

interface TransferRow {
  state: string | null;
  sha256: string | null;
  value: number;
  max: number;
  text: string;
}

interface ViewerState {
  status: string | null;
  videoWidth: number;
  videoHeight: number;
  currentTime: number;
  framesDecoded: number;
  directions: string[];
  outboundStreams: number;
  connections: string[];
}

interface ExamplesSummary extends ScriptSummary {
  "file-transfer"?: {
    file?: { size: number; sha256: string };
    receiver?: TransferRow;
    sender?: TransferRow;
    download?: { name: string; size: number; sha256: string } | null;
    iceServersStatus?: number;
    senderProgress?: { updates: number; between: number; last: number | null };
    remoteVideo?: { width: number; time: number }[];
    receiverProgress?: { updates: number; between: number; last: number | null };
  };
  broadcast?: {
    viewers?: { before: ViewerState; after: ViewerState }[];
    senderStatus?: { state: string | null; text: string };
    extraViewer?: { state: string | null; text: string };
    extraViewerState?: ViewerState;
  };
  "token-backend"?: {
    pages?: Record<string, { status: string | null; text: string; peers: string[] }>;
    withoutTokenStatus?: number;
  };
  pageErrors?: string[];
}

type Run = ScriptRun<ExamplesSummary>;

/**
 * Two runs side by side, each in a namespace of its own: the open-room examples on one `npm start`,
 * the token backend on a `JOIN_SECRET=… npm start` (where open rooms are refused).
 */
let openRooms: Promise<Run>;
let withTokens: Promise<Run>;

function run(examples: string, args: string[] = []): Promise<Run> {
  const running = runBrowserScript<ExamplesSummary>("examples-run.ts", [`--examples=${examples}`, `--timeout-ms=${SCRIPT_TIMEOUT_MS}`, ...args], PROCESS_TIMEOUT_MS);
  running.catch(() => undefined); // awaited (and reported) by the tests
  return running;
}

describe.skipIf(unavailable !== null)("the examples against `npm start`, in Chromium (loopback-only network namespace)", () => {
  beforeAll(() => {
    openRooms = run("file-transfer,broadcast", [`--size=${FILE_SIZE}`, `--viewers=${VIEWERS}`]);
    withTokens = run("token-backend");
  });

  it("file-transfer: a 1:1 call (video both ways) where a 1.5 MB random file arrives intact (SHA-256), both progress bars at 100 %, the download holds it", async () => {
    const { summary: all, details } = await openRooms;
    const summary = all["file-transfer"] ?? {};
    expect(all.ok || all.phase?.startsWith("broadcast"), details).toBe(true);
    const { sha256, size } = summary.file!;
    expect(size).toBe(FILE_SIZE);
    expect(summary.receiver, details).toMatchObject({ state: "intact", sha256, value: size, max: size });
    expect(summary.sender, details).toMatchObject({ state: "delivered", sha256, value: size, max: size });
    expect(summary.download, details).toEqual({ name: "random.bin", size, sha256 });
    // A call: each side plays the other's camera.
    expect(summary.remoteVideo, details).toHaveLength(2);
    for (const video of summary.remoteVideo!) expect(video.width, details).toBeGreaterThan(0);
    // Credential refreshes go to the page's origin, which serve-example forwards to the Worker.
    expect(summary.iceServersStatus, details).toBe(200);
    // The bars moved on the way: several values between empty and full, then full.
    for (const side of ["senderProgress", "receiverProgress"] as const) {
      expect(summary[side]?.between, `${side}\n${details}`).toBeGreaterThan(1);
      expect(summary[side]?.last, `${side}\n${details}`).toBe(size);
    }
  }, TEST_TIMEOUT_MS);

  it(`broadcast: one sender reaches ${VIEWERS} receive-only viewers with moving video; one more is told it is full`, async () => {
    const { summary: all, details } = await openRooms;
    expect(all.ok, details).toBe(true);
    const summary = all.broadcast ?? {};
    expect(summary.viewers, details).toHaveLength(VIEWERS);
    for (const [index, { before, after }] of summary.viewers!.entries()) {
      const label = `viewer ${index + 1}\n${details}`;
      expect(after.status, label).toBe("watching");
      expect(after.videoWidth, label).toBeGreaterThan(0);
      expect(after.currentTime, label).toBeGreaterThan(before.currentTime);
      expect(after.framesDecoded, label).toBeGreaterThan(before.framesDecoded);
      // Receive-only: the sender's offer made every transceiver recvonly here, and nothing goes out.
      expect(after.directions.length, label).toBeGreaterThanOrEqual(2); // video and audio
      for (const direction of after.directions) expect(direction, label).toMatch(/:recvonly$/);
      expect(after.outboundStreams, label).toBe(0);
      // One connection, to the sender: viewers link with no other viewer (Mesh's connectTo).
      expect(after.connections, label).toEqual(["connected"]);
    }
    expect(summary.senderStatus?.text, details).toContain(`Sending to ${VIEWERS} of at most ${VIEWERS} viewers`);
    expect(summary.extraViewer?.text, details).toContain("full");
    expect(summary.extraViewerState?.framesDecoded, details).toBe(0);
  }, TEST_TIMEOUT_MS);

  it("token-backend: pages join with tokens from the backend (JOIN_SECRET=… npm start); a socket without one gets 401", async () => {
    const { summary: all, details } = await withTokens;
    expect(all.ok, details).toBe(true);
    const summary = all["token-backend"] ?? {};
    expect(summary.pages?.["alice"], details).toMatchObject({ status: "joined", peers: ["bob"] });
    expect(summary.pages?.["alice"]?.text, details).toContain("as alice");
    expect(summary.pages?.["bob"], details).toMatchObject({ status: "joined", peers: ["alice"] });
    expect(summary.withoutTokenStatus, details).toBe(401);
  }, TEST_TIMEOUT_MS);
});
