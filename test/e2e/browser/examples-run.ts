/**
 * The examples in examples/, each the way its README runs it: `npm start`, then
 * `node scripts/serve-example.mjs <name>`, then headless Chromium pages on what that serves. Runs
 * INSIDE a fresh network namespace (examples.test.ts starts it through runInNetns):
 *
 *   node --import tsx test/e2e/browser/examples-run.ts --examples=file-transfer,broadcast|token-backend
 *        [--size=BYTES] [--viewers=N] [--timeout-ms=N]
 *
 * One `npm start` and one Chromium serve every example listed, one after the other; each example's
 * findings go under its name in the summary.
 * - file-transfer: two pages join one room; one sends a random file (`--size`, default 1.5 MB); the
 *   summary has the Node-side SHA-256 of the file, the hashes both pages show, their progress bars
 *   and the SHA-256 of what the receiver's download link holds.
 * - broadcast: a sender with `?max=<viewers>`, then `--viewers` viewers (default 3); for each viewer
 *   the video element's size and playback, its decoded frames (getStats) and the directions of its
 *   transceivers and outbound streams; then one viewer too many, and what its page says.
 * - token-backend (alone: it needs `JOIN_SECRET=… npm start`, which refuses the others' open rooms):
 *   the backend with the same secret; two pages fetch tokens and join one room; the summary has what
 *   each page shows, and how the Worker answers a room socket without a token.
 *
 * The last stdout line is the JSON summary the test asserts on; see harness.ts.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import type { Browser, Page } from "playwright-core";
import { WebSocket } from "ws";
import { repoRoot, signalGroup, sleep, startLocalWorker } from "../../node/processes.js";
import { launchChromium } from "../chromium.js";
import { numberFlag, parseFlags, pollUntil, runScript, type ScriptContext } from "./harness.js";
import { collectPageErrors, newRecordedContext } from "./pages.js";

const SERVE_START_TIMEOUT_MS = 20_000;
const SERVE_STOP_TIMEOUT_MS = 5_000;
const PAGE_LOAD_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 20_000;
const TRANSFER_TIMEOUT_MS = 20_000;
const VIDEO_TIMEOUT_MS = 25_000;
/** The viewer's playback position and decoded frames must rise across this window. */
const PLAYBACK_WINDOW_MS = 1_000;
const NOTICE_TIMEOUT_MS = 10_000;
const SOCKET_TIMEOUT_MS = 5_000;

const EXAMPLES = ["file-transfer", "broadcast", "token-backend"] as const;
type Example = (typeof EXAMPLES)[number];

const flags = parseFlags(process.argv.slice(2), ["examples", "size", "viewers", "timeout-ms"]);
const examples = (flags.get("examples") ?? "").split(",") as Example[];
const unknown = examples.filter((name) => !EXAMPLES.includes(name));
if (unknown.length > 0) throw new Error(`--examples takes a comma-separated list of ${EXAMPLES.join(", ")}; not ${unknown.join(", ")}`);
if (examples.includes("token-backend") && examples.length > 1) throw new Error("token-backend needs a Worker with JOIN_SECRET, where the others' open rooms are refused: run it alone");
const fileSize = numberFlag(flags, "size", 1_500_000);
const viewerCount = numberFlag(flags, "viewers", 3);
const timeoutMs = numberFlag(flags, "timeout-ms", 90_000);

/** `node scripts/serve-example.mjs <name> --port 0 --worker <url>`, detached; resolves with the page URL it prints. */
async function serveExample(context: ScriptContext, name: Example, workerUrl: string, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, ["scripts/serve-example.mjs", name, "--port", "0", "--worker", workerUrl], {
    cwd: repoRoot,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  context.onCleanup(async () => {
    const pid = child.pid;
    if (pid === undefined || !signalGroup(pid, "SIGTERM")) return;
    // SIGTERM lets it delete its temporary bundle directory.
    const deadline = Date.now() + SERVE_STOP_TIMEOUT_MS;
    while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(100);
    signalGroup(pid, "SIGKILL");
  });
  return pollUntil(`serve-example ${name} printing its URL`, SERVE_START_TIMEOUT_MS, 100, async () => {
    if (child.exitCode !== null) throw new Error(`serve-example ${name} exited (code ${child.exitCode}):\n${output}`);
    return /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1];
  }, () => output);
}

/** The pages of the example running now; closed when it is done, before its server stops. */
const openPages: Page[] = [];

async function openPage(browser: Browser, url: string, label: string, pageErrors: string[]): Promise<Page> {
  const page = await (await newRecordedContext(browser)).newPage();
  openPages.push(page);
  collectPageErrors(page, pageErrors, label);
  await page.goto(url, { timeout: PAGE_LOAD_TIMEOUT_MS });
  return page;
}

/** One example's share of the script: its own summary record, and phases named after it. */
interface Part {
  summary: Record<string, unknown>;
  phase(name: string): void;
}

const statusOf = (page: Page) => page.evaluate(() => ({ state: document.getElementById("status")?.dataset["state"] ?? null, text: document.getElementById("status")?.textContent ?? "" }));

// -------------------------------------------------------------------------------------------------

async function fileTransfer({ summary, phase }: Part, browser: Browser, url: string, pageErrors: string[]): Promise<void> {
  const room = `files-${randomBytes(4).toString("hex")}`;
  const file = randomBytes(fileSize);
  const sha256 = createHash("sha256").update(file).digest("hex");
  summary["file"] = { size: fileSize, sha256 };

  phase("two pages join the room");
  const pages: Page[] = [];
  for (const label of ["sender", "receiver"]) {
    const page = await openPage(browser, `${url}?room=${room}`, label, pageErrors);
    await page.click("#join button");
    pages.push(page);
  }
  const [sender, receiver] = pages as [Page, Page];
  await pollUntil("both pages connected to each other", CONNECT_TIMEOUT_MS, 100, async () => {
    const both = await Promise.all(pages.map((page) => page.evaluate(() => !(document.getElementById("send-button") as HTMLButtonElement).disabled)));
    return both.every(Boolean) ? true : undefined;
  }, () => "a page's Send button is still disabled");

  phase("send the file");
  // Every value each page's progress bar takes on the way (a bar's value is reflected in its attribute).
  for (const page of pages) {
    await page.evaluate(() => {
      const values: number[] = [];
      (window as unknown as { progressValues: number[] }).progressValues = values;
      new MutationObserver((records) => {
        for (const record of records) if (record.target instanceof HTMLProgressElement) values.push(record.target.value);
      }).observe(document.getElementById("transfers")!, { subtree: true, attributes: true, attributeFilter: ["value"] });
    });
  }
  const progressValues = (page: Page) => page.evaluate(() => (window as unknown as { progressValues: number[] }).progressValues);
  const sendStarted = Date.now();
  await sender.setInputFiles("#file", { name: "random.bin", mimeType: "application/octet-stream", buffer: file });
  await sender.click("#send-button");
  const readRow = (page: Page, direction: "in" | "out") =>
    page.evaluate((which) => {
      const row = document.querySelector<HTMLElement>(`.transfer[data-direction="${which}"]`);
      const progress = row?.querySelector("progress");
      return row === null || progress == null ? null : { state: row.dataset["state"] ?? null, sha256: row.dataset["sha256"] ?? null, value: progress.value, max: progress.max, text: row.textContent ?? "" };
    }, direction);
  let lastRow: Awaited<ReturnType<typeof readRow>> = null;
  summary["receiver"] = await pollUntil("the receiver's check of the file", TRANSFER_TIMEOUT_MS, 50, async () => {
    lastRow = await readRow(receiver, "in");
    return lastRow?.state != null ? lastRow : undefined;
  }, () => `the receiver's transfer: ${JSON.stringify(lastRow)}`);
  summary["transferMs"] = Date.now() - sendStarted;
  summary["sender"] = await pollUntil("the sender's delivery report", TRANSFER_TIMEOUT_MS, 50, async () => {
    const row = await readRow(sender, "out");
    return row?.state != null ? row : undefined;
  }, () => "no delivery report");
  // How the bars moved: how many updates, and the distinct values strictly between empty and full.
  for (const [label, page] of [["sender", sender], ["receiver", receiver]] as const) {
    const values = await progressValues(page);
    summary[`${label}Progress`] = { updates: values.length, between: new Set(values.filter((value) => value > 0 && value < fileSize)).size, last: values.at(-1) ?? null };
  }

  phase("the call's video, both ways");
  // Chromium's fake camera: each page plays the other's video on the same connection as the file.
  const remoteVideo = (page: Page) => page.evaluate(() => {
    const video = document.getElementById("remote") as HTMLVideoElement;
    return { width: video.videoWidth, time: video.currentTime };
  });
  summary["remoteVideo"] = await pollUntil("each page playing the other's video", CONNECT_TIMEOUT_MS, 100, async () => {
    const seen = await Promise.all(pages.map(remoteVideo));
    return seen.every((video) => video.width > 0 && video.time > 0) ? seen : undefined;
  }, () => "a page's remote video has no frames");

  phase("fresh ICE servers from the page's origin");
  // What the client fetches when its TURN credentials near expiry or a call fails: the page's own
  // origin, which serve-example forwards to the Worker, so no CORS is involved.
  summary["iceServersStatus"] = await receiver.evaluate(async (query) => (await fetch(`/v1/ice-servers?${query}`)).status, `room=${room}&peer=receiver`);

  phase("read the download");
  summary["download"] = await receiver.evaluate(async () => {
    const link = document.querySelector<HTMLAnchorElement>('.transfer[data-direction="in"] a[download]');
    if (link === null) return null;
    const bytes = await (await fetch(link.href)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return { name: link.download, size: bytes.byteLength, sha256: Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("") };
  });
}

// -------------------------------------------------------------------------------------------------

/** What one viewer's page shows and its connections carry. */
async function viewerState(page: Page) {
  return page.evaluate(async () => {
    const video = document.querySelector("video")!;
    const connections = ((window as unknown as { __relaykitPeerConnections?: RTCPeerConnection[] }).__relaykitPeerConnections ?? []).filter((pc) => pc.connectionState !== "closed");
    let framesDecoded = 0;
    let outboundStreams = 0;
    const directions: string[] = [];
    for (const pc of connections) {
      for (const transceiver of pc.getTransceivers()) directions.push(`${transceiver.receiver.track.kind}:${String(transceiver.currentDirection)}`);
      (await pc.getStats()).forEach((entry: Record<string, unknown>) => {
        if (entry["type"] === "inbound-rtp" && entry["kind"] === "video") framesDecoded += Number(entry["framesDecoded"] ?? 0);
        if (entry["type"] === "outbound-rtp") outboundStreams++;
      });
    }
    return {
      status: document.getElementById("status")?.dataset["state"] ?? null,
      videoWidth: video.videoWidth,
      videoHeight: video.videoHeight,
      currentTime: video.currentTime,
      framesDecoded,
      directions,
      outboundStreams,
      connections: connections.map((pc) => pc.connectionState),
    };
  });
}

async function broadcast({ summary, phase }: Part, browser: Browser, url: string, pageErrors: string[]): Promise<void> {
  const room = `live-${randomBytes(4).toString("hex")}`;

  phase("the sender starts");
  const sender = await openPage(browser, `${url}?role=sender&room=${room}&max=${viewerCount}`, "sender", pageErrors);
  await pollUntil("the sender sending", CONNECT_TIMEOUT_MS, 100, async () => ((await statusOf(sender)).state === "sending" ? true : undefined), () => "sender status not `sending`");

  phase("viewers join");
  const viewersStarted = Date.now();
  const viewers = await Promise.all(Array.from({ length: viewerCount }, (_, index) => openPage(browser, `${url}?role=viewer&room=${room}`, `viewer-${index + 1}`, pageErrors)));
  let last: Awaited<ReturnType<typeof viewerState>>[] = [];
  await pollUntil("every viewer playing the sender's video", VIDEO_TIMEOUT_MS, 200, async () => {
    last = await Promise.all(viewers.map(viewerState));
    return last.every((state) => state.videoWidth > 0 && state.currentTime > 0 && state.framesDecoded > 0) ? true : undefined;
  }, () => JSON.stringify(last));
  summary["viewersPlayingAfterMs"] = Date.now() - viewersStarted;

  phase("video keeps arriving");
  const before = await Promise.all(viewers.map(viewerState));
  await sleep(PLAYBACK_WINDOW_MS);
  const after = await Promise.all(viewers.map(viewerState));
  summary["viewers"] = before.map((state, index) => ({ before: state, after: after[index] }));
  summary["senderStatus"] = await statusOf(sender);

  phase("one viewer too many");
  const extra = await openPage(browser, `${url}?role=viewer&room=${room}`, "extra-viewer", pageErrors);
  summary["extraViewer"] = await pollUntil("the extra viewer told the broadcast is full", NOTICE_TIMEOUT_MS, 100, async () => {
    const status = await statusOf(extra);
    return status.state === "full" ? status : undefined;
  }, () => "its status is not `full`");
  summary["extraViewerState"] = await viewerState(extra);
}

// -------------------------------------------------------------------------------------------------

/** The HTTP status the Worker answers a room socket with (101 when it opened). */
function socketStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, ["relaykit.v1"]);
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`no answer from ${url} within ${SOCKET_TIMEOUT_MS} ms`));
    }, SOCKET_TIMEOUT_MS);
    const done = (status: number) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on("error", () => undefined);
      socket.terminate();
      resolve(status);
    };
    socket.once("unexpected-response", (_request, response) => done(response.statusCode ?? 0));
    socket.once("open", () => done(101));
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function tokenBackend({ summary, phase }: Part, browser: Browser, url: string, pageErrors: string[], workerUrl: string): Promise<void> {
  const room = `standup-${randomBytes(4).toString("hex")}`;

  phase("two pages fetch tokens and join");
  const names = ["alice", "bob"];
  const pages: Page[] = [];
  for (const name of names) {
    const page = await openPage(browser, url, name, pageErrors);
    await page.fill("#room", room);
    await page.fill("#name", name);
    await page.click("#join button");
    pages.push(page);
  }
  const readPage = (page: Page) => page.evaluate(() => ({
    status: document.getElementById("status")?.dataset["state"] ?? null,
    text: document.getElementById("status")?.textContent ?? "",
    peers: Array.from(document.querySelectorAll<HTMLElement>("#peers li"), (item) => item.dataset["peer"] ?? ""),
  }));
  let last: Awaited<ReturnType<typeof readPage>>[] = [];
  await pollUntil("both pages joined and listing each other", CONNECT_TIMEOUT_MS, 100, async () => {
    last = await Promise.all(pages.map(readPage));
    return last[0]!.peers.includes("bob") && last[1]!.peers.includes("alice") ? true : undefined;
  }, () => JSON.stringify(last));
  summary["pages"] = Object.fromEntries(names.map((name, index) => [name, last[index]]));

  phase("a socket without a token");
  summary["withoutTokenStatus"] = await socketStatus(`${workerUrl.replace(/^http/, "ws")}/v1/rooms/${room}`);
}

// -------------------------------------------------------------------------------------------------

runScript("examples-run", timeoutMs, async (context) => {
  const { summary, phase, onCleanup } = context;
  const pageErrors: string[] = [];
  summary["examples"] = examples;
  summary["pageErrors"] = pageErrors;

  phase("npm start");
  const joinSecret = examples.includes("token-backend") ? randomBytes(32).toString("base64url") : undefined;
  const env: Record<string, string> = joinSecret === undefined ? {} : { JOIN_SECRET: joinSecret };
  const local = await startLocalWorker({ env });
  onCleanup(() => local.stop());
  const workerUrl = `http://127.0.0.1:${local.port}`;

  phase("launch Chromium");
  const chrome = await launchChromium();
  onCleanup(() => chrome.close());

  for (const example of examples) {
    const record: Record<string, unknown> = {};
    summary[example] = record;
    const part: Part = { summary: record, phase: (name) => phase(`${example}: ${name}`) };
    part.phase("serve the example");
    const url = await serveExample(context, example, workerUrl, env);
    record["url"] = url;
    if (example === "file-transfer") await fileTransfer(part, chrome.browser, url, pageErrors);
    else if (example === "broadcast") await broadcast(part, chrome.browser, url, pageErrors);
    else await tokenBackend(part, chrome.browser, url, pageErrors, workerUrl);
    for (const page of openPages.splice(0)) await page.context().close();
  }
});
