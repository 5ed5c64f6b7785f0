/**
 * The demo pages outside a browser:
 * - `scripts/build-web.mjs` makes the files wrangler.toml's `[assets]` serves, with bundles that
 *   are complete (no import left for a browser to resolve) and browser-only (no werift, no `ws`, no
 *   Node builtins);
 * - the pages' own logic, which is pure: the ICE test's verdicts, candidate lines and pasted
 *   servers, the room's stats summary, the lobby's room names;
 * - `npm start` (wrangler dev, which runs the build itself) serves them where the README says, with
 *   the asset router in front: the routing the workerd suite (test/worker/pages.test.ts) cannot see.
 */
import { build } from "esbuild";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseIceServersJson, readIceServers } from "../../web/ice-test/ice-servers-input.js";
import { judge, kindOfUrl, parseCandidateLine, relayProtocolOfUrl, type GatheredCandidate, type GatherOutcome } from "../../web/ice-test/verdicts.js";
import { refusalsLine, relayRow, stateLabel } from "../../web/fleet/rows.js";
import { randomRoomName, roomNameFromInput } from "../../web/room/lobby.js";
import type { RelayView } from "../../shared/fleet/view.js";
import { describePair, inboundKbps, summarizeStats, type StatsEntry } from "../../web/room/stats.js";
import { isValidRoomName } from "../../shared/signaling/protocol.js";
import { LOCAL_WORKER_HOOK_TIMEOUT_MS, repoRoot, run, startLocalWorker, type LocalWorker } from "./processes.js";

const BUILD_TIMEOUT_MS = 30_000;
const EXPECTED_FILES = [
  "assets/fleet.js", "assets/fleet.js.map", "assets/ice-test.js", "assets/ice-test.js.map", "assets/room.js", "assets/room.js.map", "assets/style.css",
  "fleet.html", "ice-test.html", "index.html",
];
const BUNDLES = { "assets/room.js": "web/room/main.ts", "assets/ice-test.js": "web/ice-test/main.ts", "assets/fleet.js": "web/fleet/main.ts" } as const;
/** The pages that fetch ICE servers, and so must carry the client library's fetcher. */
const ICE_SERVER_PAGES: readonly string[] = ["assets/room.js", "assets/ice-test.js"];

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

describe("scripts/build-web.mjs", () => {
  let outDir: string;
  let buildOutput: string;

  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), "relaykit-web-"));
    const result = await run(process.execPath, ["scripts/build-web.mjs", "--outdir", outDir], BUILD_TIMEOUT_MS);
    buildOutput = `exit ${result.code}\n${result.stdout}\n${result.stderr}`;
    expect(result.code, buildOutput).toBe(0);
    console.log(result.stdout.trim());
  }, BUILD_TIMEOUT_MS + 5_000);

  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  it("writes the pages, the bundles with source maps, and the stylesheet", () => {
    expect(filesUnder(outDir), buildOutput).toEqual(EXPECTED_FILES);
    expect(buildOutput).toMatch(/10 files .* \(\d+ ms\)/);
  });

  it("builds fast", () => {
    const ms = Number(/\((\d+) ms\)/.exec(buildOutput)?.[1]);
    // Well under a second on a quiet machine; the bound leaves room for a busy CI runner.
    expect(ms, buildOutput).toBeLessThan(5_000);
  });

  it("points each page at its own bundle and the stylesheet, all of which exist", () => {
    const room = readFileSync(join(outDir, "index.html"), "utf8");
    const iceTest = readFileSync(join(outDir, "ice-test.html"), "utf8");
    const fleet = readFileSync(join(outDir, "fleet.html"), "utf8");
    expect(room).toContain('<script type="module" src="/assets/room.js"></script>');
    expect(iceTest).toContain('<script type="module" src="/assets/ice-test.js"></script>');
    expect(fleet).toContain('<script type="module" src="/assets/fleet.js"></script>');
    for (const page of [room, iceTest, fleet]) {
      for (const [, path] of page.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)) expect(existsSync(join(outDir, path!)), path).toBe(true);
    }
  });

  it.each(Object.entries(BUNDLES))("bundles %s completely: no import of any module is left", async (bundle) => {
    // esbuild parses the output and lists every static import, dynamic import and require in it
    // (strings that merely mention `import(...)` are not imports).
    const path = join(outDir, bundle);
    const analysis = await build({ entryPoints: [path], bundle: true, write: false, metafile: true, external: ["*"], logLevel: "silent", format: "esm" });
    const imports = Object.values(analysis.metafile.inputs).flatMap((input) => input.imports.map((imported) => `${imported.kind} ${imported.path}`));
    expect(imports).toEqual([]);
    const code = readFileSync(path, "utf8");
    expect(code.length).toBeGreaterThan(1_000);
    // Minified: no long runs of indentation.
    expect(code).not.toMatch(/\n {4}/);
  });

  it.each(Object.entries(BUNDLES))("builds %s from browser code only (from %s)", (bundle, entry) => {
    const map = JSON.parse(readFileSync(join(outDir, `${bundle}.map`), "utf8")) as { sources: string[]; sourcesContent?: string[] };
    const sources = map.sources.map((source) => relative(repoRoot, join(outDir, "assets", source)));
    expect(sources).toContain(entry);
    if (ICE_SERVER_PAGES.includes(bundle)) expect(sources).toContain("shared/client/ice-servers.ts");
    for (const source of sources) {
      expect(source, "only the repo's web/ and shared/ code goes into a page").toMatch(/^(web|shared)\//);
      expect(source).not.toMatch(/node_modules|werift|(^|\/)ws\//);
    }
    const builtins = new Set(builtinModules.flatMap((name) => [name, `node:${name}`]));
    const code = readFileSync(join(outDir, bundle), "utf8");
    for (const match of code.matchAll(/\bfrom\s*["']([^"']+)["']/g)) expect(builtins.has(match[1]!), match[0]).toBe(false);
    expect(code).not.toMatch(/["']node:[a-z_/]+["']/);
    expect(code).not.toContain("werift");
  });

  it("keeps the test hooks' names in the minified bundles", () => {
    expect(readFileSync(join(outDir, "assets/room.js"), "utf8")).toContain("relaykitDemo");
    expect(readFileSync(join(outDir, "assets/ice-test.js"), "utf8")).toContain("relaykitIceTest");
  });

  it("leaves files it would write unchanged alone, so a running wrangler dev (which watches them) does not reload", async () => {
    const before = new Map(filesUnder(outDir).map((file) => [file, statSync(join(outDir, file)).mtimeMs]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const result = await run(process.execPath, ["scripts/build-web.mjs", "--outdir", outDir, "--quiet"], BUILD_TIMEOUT_MS);
    expect(result.code, result.stderr).toBe(0);
    for (const [file, mtimeMs] of before) expect(statSync(join(outDir, file)).mtimeMs, file).toBe(mtimeMs);
  }, BUILD_TIMEOUT_MS);

  it("removes what an older build left behind, and leaves no temporary files", async () => {
    writeFileSync(join(outDir, "assets/old-page.js"), "stale");
    const result = await run(process.execPath, ["scripts/build-web.mjs", "--outdir", outDir, "--quiet"], BUILD_TIMEOUT_MS);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("");
    expect(filesUnder(outDir)).toEqual(EXPECTED_FILES);
  }, BUILD_TIMEOUT_MS);
});

// ------------------------------------------------------------------------------------------------

function candidate(fields: Partial<GatheredCandidate> & Pick<GatheredCandidate, "type">): GatheredCandidate {
  return { protocol: "udp", address: "192.0.2.10", port: 50000, relayProtocol: null, relatedAddress: null, relatedPort: null, url: null, elapsedMs: 5, ...fields };
}

function outcome(fields: Partial<GatherOutcome>): GatherOutcome {
  return { urls: [], candidates: [], errors: [], stunFinished: false, timedOut: false, timeoutMs: 10_000, ...fields };
}

const ALL_URLS = ["stun:turn.example:3478", "turn:turn.example:3478?transport=udp", "turn:turn.example:3478?transport=tcp", "turns:turn.example:443?transport=tcp"];

describe("ICE test page: which check a URL belongs to", () => {
  it.each([
    ["stun:turn.example:3478", "stun", null],
    ["stuns:turn.example:5349", "stun", null],
    ["turn:turn.example:3478", "turnUdp", "udp"],
    ["turn:turn.example:3478?transport=udp", "turnUdp", "udp"],
    ["TURN:turn.example:3478?transport=TCP", "turnTcp", "tcp"],
    ["turns:turn.example:443?transport=tcp", "turnTls", "tls"],
    ["turns:turn.example:443", "turnTls", "tls"],
    ["http://turn.example", null, null],
  ])("%s → %s", (url, kind, relayProtocol) => {
    expect(kindOfUrl(url)).toBe(kind);
    expect(relayProtocolOfUrl(url)).toBe(relayProtocol);
  });
});

describe("ICE test page: verdicts", () => {
  it("says STUN worked when a srflx candidate appears, and names the address", () => {
    const { verdicts, explanations } = judge(outcome({ urls: ALL_URLS, candidates: [candidate({ type: "host" }), candidate({ type: "srflx", address: "198.51.100.7", port: 61000 })], stunFinished: true }));
    expect(verdicts.stun).toBe("worked");
    expect(explanations.stun).toContain("198.51.100.7:61000");
  });

  it("says the STUN server answered with the host's own address when it answered without a srflx or an error", () => {
    const { verdicts, explanations } = judge(outcome({ urls: ALL_URLS, candidates: [candidate({ type: "host" })], stunFinished: true }));
    expect(verdicts.stun).toBe("same-as-host");
    expect(explanations.stun).toBe("The STUN server answered but reported the same address as a host candidate: no NAT between you and it.");
  });

  it("says STUN failed when an error names a stun: URL, with the browser's words", () => {
    const errors = [{ url: "stun:turn.example:3478", errorCode: 701, errorText: "STUN binding request timed out." }];
    const { verdicts, explanations } = judge(outcome({ urls: ALL_URLS, errors, stunFinished: true }));
    expect(verdicts.stun).toBe("failed");
    expect(explanations.stun).toContain("701 STUN binding request timed out (stun:turn.example:3478)");
  });

  it("says STUN failed when the STUN server never answered before the timeout", () => {
    const { verdicts, explanations } = judge(outcome({ urls: ALL_URLS, stunFinished: false, timedOut: true, timeoutMs: 3_000 }));
    expect(verdicts.stun).toBe("failed");
    expect(explanations.stun).toContain("within 3 s");
  });

  it("says TURN worked per transport only for relay candidates reached over that transport", () => {
    const candidates = [candidate({ type: "relay", relayProtocol: "udp" }), candidate({ type: "relay", relayProtocol: "tls" })];
    const { verdicts } = judge(outcome({ urls: ALL_URLS, candidates, stunFinished: true }));
    expect(verdicts).toMatchObject({ turnUdp: "worked", turnTcp: "failed", turnTls: "worked" });
  });

  it("reports the errors of a failed TURN transport, and only that transport's", () => {
    const errors = [
      { url: "turn:turn.example:3478?transport=udp", errorCode: 401, errorText: "Unauthorized." },
      { url: "turns:turn.example:443?transport=tcp", errorCode: 701, errorText: "Failed to establish connection" },
    ];
    const { verdicts, explanations } = judge(outcome({ urls: ALL_URLS, errors, stunFinished: true }));
    expect(verdicts).toMatchObject({ turnUdp: "failed", turnTcp: "failed", turnTls: "failed" });
    expect(explanations.turnUdp).toBe("The browser reported 401 Unauthorized (turn:turn.example:3478?transport=udp).");
    expect(explanations.turnTls).toContain("701 Failed to establish connection");
    expect(explanations.turnTcp).not.toContain("401");
    expect(explanations.turnTcp).toContain("finished without a relay candidate");
  });

  it("says a silent TURN server did not answer when the gathering timed out", () => {
    const { verdicts, explanations } = judge(outcome({ urls: ["turn:turn.example:3478"], timedOut: true }));
    expect(verdicts.turnUdp).toBe("failed");
    expect(explanations.turnUdp).toContain("did not answer");
  });

  it("says 'not configured' for every kind of server not given", () => {
    const { verdicts, explanations } = judge(outcome({ urls: ["turn:turn.example:3478?transport=tcp"], candidates: [candidate({ type: "relay", relayProtocol: "tcp" })] }));
    expect(verdicts).toEqual({ stun: "not-configured", turnUdp: "not-configured", turnTcp: "worked", turnTls: "not-configured" });
    expect(explanations.turnTls).toBe("No turns:… URL was given.");
  });
});

describe("ICE test page: candidate lines", () => {
  it("reads a relay candidate line with its related address", () => {
    expect(parseCandidateLine("candidate:1797656238 1 udp 25108735 198.51.100.4 50460 typ relay raddr 192.0.2.3 rport 56922 generation 0 ufrag Io6b")).toEqual({
      type: "relay",
      protocol: "udp",
      address: "198.51.100.4",
      port: 50460,
      relatedAddress: "192.0.2.3",
      relatedPort: 56922,
    });
  });

  it("reads an a= line of a host TCP candidate", () => {
    expect(parseCandidateLine("a=candidate:7 1 TCP 1518280447 192.0.2.3 9 typ host tcptype active")).toMatchObject({ type: "host", protocol: "tcp", port: 9, relatedAddress: null });
  });

  it.each(["", "candidate:1 1 udp", "foundation 1 udp 1 192.0.2.1 5 typ host", "candidate:1 1 udp 1 192.0.2.1 port typ host"])("refuses %j", (line) => {
    expect(parseCandidateLine(line)).toBeNull();
  });
});

describe("ICE test page: pasted ICE servers", () => {
  it("accepts a list, the /v1/ice-servers answer, or a single server", () => {
    const turn = { urls: ["turn:turn.example:3478?transport=udp"], username: "1767312000:alice", credential: "c2VjcmV0" };
    expect(readIceServers([{ urls: "stun:turn.example:3478" }, turn])).toEqual({ ok: true, iceServers: [{ urls: "stun:turn.example:3478" }, turn] });
    expect(readIceServers({ iceServers: [turn], ttl: 86400, expiresAt: "2026-01-02T00:00:00.000Z" })).toEqual({ ok: true, iceServers: [turn] });
    expect(readIceServers({ urls: " stun:turn.example:3478 " })).toEqual({ ok: true, iceServers: [{ urls: "stun:turn.example:3478" }] });
  });

  it.each([
    ["not json", /not valid JSON/],
    ["", /Paste ICE servers as JSON first/],
    ["42", /Expected a list of ICE servers.*got number 42/],
    ["[]", /empty/],
    ['[{"url": "stun:x"}]', /iceServers\[0\]\.urls must be/],
    ['[{"urls": []}]', /iceServers\[0\]\.urls must be/],
    ['[{"urls": "http://x"}]', /"http:\/\/x" is not a stun:, stuns:, turn: or turns: URL/],
    ['[{"urls": "stun:x"}, {"urls": "turn:x"}]', /iceServers\[1\] has turn: URLs but no "username" and "credential"/],
    ['[{"urls": "turn:x", "username": "u", "credential": 5}]', /credential must be a string/],
  ])("explains what is wrong with %j", (text, message) => {
    const read = parseIceServersJson(text);
    expect(read.ok).toBe(false);
    if (!read.ok) expect(read.message).toMatch(message);
  });
});

describe("room page: stats", () => {
  const chromiumReport: StatsEntry[] = [
    { id: "T01", type: "transport", timestamp: 2_000, selectedCandidatePairId: "CP1" },
    { id: "CP0", type: "candidate-pair", timestamp: 2_000, localCandidateId: "L2", remoteCandidateId: "R1", state: "failed", nominated: false },
    { id: "CP1", type: "candidate-pair", timestamp: 2_000, localCandidateId: "L1", remoteCandidateId: "R1", state: "succeeded", nominated: true },
    { id: "L1", type: "local-candidate", timestamp: 2_000, candidateType: "relay", protocol: "udp", relayProtocol: "tcp" },
    { id: "L2", type: "local-candidate", timestamp: 2_000, candidateType: "host", protocol: "udp" },
    { id: "R1", type: "remote-candidate", timestamp: 2_000, candidateType: "relay", protocol: "udp" },
    { id: "IV", type: "inbound-rtp", timestamp: 2_000, kind: "video", framesDecoded: 57, bytesReceived: 200_000 },
    { id: "IA", type: "inbound-rtp", timestamp: 2_000, kind: "audio", bytesReceived: 10_000 },
  ];

  it("reads the pair the transport selected, with the relay protocol of a local relay candidate", () => {
    const stats = summarizeStats(chromiumReport);
    expect(stats).toEqual({ pair: { local: "relay", remote: "relay", protocol: "udp", relayProtocol: "tcp" }, framesDecoded: 57, inboundBytes: 210_000, timestamp: 2_000 });
    expect(describePair(stats.pair)).toBe("relay via TURN/TCP ↔ relay (udp)");
  });

  it("falls back to the pair flagged selected, and leaves relayProtocol out for non-relay candidates", () => {
    const firefoxReport: StatsEntry[] = [
      { id: "CP", type: "candidate-pair", timestamp: 1, localCandidateId: "L", remoteCandidateId: "R", selected: true, state: "succeeded" },
      { id: "L", type: "local-candidate", timestamp: 1, candidateType: "srflx", protocol: "udp", relayProtocol: "udp" },
      { id: "R", type: "remote-candidate", timestamp: 1, candidateType: "prflx", protocol: "udp" },
    ];
    expect(summarizeStats(firefoxReport).pair).toEqual({ local: "srflx", remote: "prflx", protocol: "udp", relayProtocol: null });
  });

  it("has no pair before one is selected, and counts nothing without inbound streams", () => {
    expect(summarizeStats([{ id: "T", type: "transport", timestamp: 1 }])).toEqual({ pair: null, framesDecoded: 0, inboundBytes: 0, timestamp: 1 });
    expect(describePair(null)).toBe("no path yet");
  });

  it("computes the inbound bitrate between two samples", () => {
    expect(inboundKbps(null, { inboundBytes: 1_000, timestamp: 1_000 })).toBe(0);
    expect(inboundKbps({ inboundBytes: 0, timestamp: 1_000 }, { inboundBytes: 62_500, timestamp: 2_000 })).toBe(500);
    // Counters that went backwards (a new connection) or no time passing give 0, not nonsense.
    expect(inboundKbps({ inboundBytes: 9_000, timestamp: 1_000 }, { inboundBytes: 100, timestamp: 2_000 })).toBe(0);
    expect(inboundKbps({ inboundBytes: 0, timestamp: 1_000 }, { inboundBytes: 100, timestamp: 1_000 })).toBe(0);
  });
});

describe("room page: lobby names", () => {
  it("makes random room names that are valid and differ", () => {
    const names = new Set(Array.from({ length: 50 }, () => randomRoomName()));
    expect(names.size).toBe(50);
    for (const name of names) {
      expect(name).toMatch(/^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);
      expect(isValidRoomName(name)).toBe(true);
    }
  });

  it.each([
    ["  standup ", "standup"],
    ["https://relaykit.example/r/team-1?relay=1", "team-1"],
    ["/r/with%20space", "with space"],
  ])("reads %j as the room %j", (input, room) => {
    expect(roomNameFromInput(input)).toBe(room);
  });
});

// ------------------------------------------------------------------------------------------------

describe("fleet page: rows", () => {
  const now = Date.parse("2026-12-06T10:00:00Z");
  const relay: RelayView = {
    id: "fra-1", state: "ready", connected: true, live: true, region: "eu-central", location: { lat: 50.11, lon: 8.68 },
    urls: ["turn:203.0.113.7:3478?transport=udp", "turns:203.0.113.7:5349?transport=tcp"], version: "0.1.0",
    capacity: { allocations: 1000, bps: 0 }, allocations: 12, bpsIn: 2_500_000, bpsOut: 1_200, cpuPercent: 7.4, eventLoopDelayMs: 1.26,
    lastHeartbeatAt: "2026-12-06T09:59:57Z", registeredAt: "2026-12-06T09:00:00Z",
    rooms: [{ room: "standup", allocations: 4 }, { room: "retro", allocations: 2 }], roomsOmitted: 2,
  };

  it("shows load against capacity, rates with units, and the heartbeat's age", () => {
    expect(relayRow(relay, now)).toEqual([
      "fra-1", "ready", "eu-central", "50.11, 8.68", "12 / 1000", "2.5 Mbit/s", "1 kbit/s", "7 %", "1.3 ms", "4", "3 s ago",
      "turn:203.0.113.7:3478?transport=udp turns:203.0.113.7:5349?transport=tcp", "0.1.0",
    ]);
  });

  it.each([
    ["draining", { state: "draining" as const }],
    ["full", { allocations: 1000 }],
    ["lost", { live: false, connected: false }],
    ["silent", { live: false }],
  ])("says %s when the relay is not handed out for that reason", (label, change) => {
    expect(stateLabel({ ...relay, ...change })).toBe(label);
  });

  it("lists refusals that happened, and nothing when none did", () => {
    expect(refusalsLine({ "bad-signature": 3, expired: 0, replayed: 1 })).toBe("Refused control channels: bad-signature 3, replayed 1");
    expect(refusalsLine({ expired: 0 })).toBe("");
  });
});

describe("npm start serves the pages (assets first; the Worker first for the API and the pages)", () => {
  let worker: LocalWorker;
  let base: string;

  beforeAll(async () => {
    worker = await startLocalWorker();
    base = `http://127.0.0.1:${worker.port}`;
  }, LOCAL_WORKER_HOOK_TIMEOUT_MS);

  afterAll(() => worker?.stop(), LOCAL_WORKER_HOOK_TIMEOUT_MS);

  async function fetchPage(path: string): Promise<{ status: number; type: string | null; body: string; location: string | null }> {
    const response = await fetch(`${base}${path}`, { redirect: "manual", signal: AbortSignal.timeout(10_000) });
    return { status: response.status, type: response.headers.get("Content-Type"), body: await response.text(), location: response.headers.get("Location") };
  }

  it.each([
    ["/", "/assets/room.js"],
    ["/r/team-standup", "/assets/room.js"],
    ["/ice-test", "/assets/ice-test.js"],
  ])("serves %s with the script %s", async (path, script) => {
    const page = await fetchPage(path);
    expect(page.status, worker.output()).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    expect(page.body).toContain(`<script type="module" src="${script}"></script>`);
  });

  it("serves the bundles and the stylesheet", async () => {
    for (const path of ["/assets/room.js", "/assets/ice-test.js", "/assets/style.css"]) {
      const asset = await fetchPage(path);
      expect(asset.status, path).toBe(200);
      expect(asset.type, path).toMatch(path.endsWith(".css") ? /^text\/css/ : /javascript/);
    }
  });

  it("sends the file names to their clean URLs", async () => {
    const iceTest = await fetchPage("/ice-test.html");
    expect(iceTest.status).toBeGreaterThanOrEqual(300);
    expect(iceTest.status).toBeLessThan(400);
    expect(iceTest.location).toBe("/ice-test");
  });

  it("runs the Worker first for room pages: a bad name gets its 400 page", async () => {
    const page = await fetchPage("/r/bad%20name");
    expect(page.status).toBe(400);
    expect(page.body).toContain("is not a room name");
  });

  it("runs the Worker for the API and for paths that are no asset", async () => {
    for (const path of ["/v1/nope", "/no-such-page"]) {
      const answer = await fetchPage(path);
      expect(answer.status, path).toBe(404);
      expect(answer.type, path).toMatch(/^application\/json/);
    }
    expect((await fetchPage("/v1/rooms/team-standup")).status).toBe(426);
  });
});
