/**
 * The fleet's options and the pure parts of the relay's fleet side: --fleet-url and the fleet key
 * (flag, variable, file; errors that name the option and never quote the key), the relay id, region,
 * location and public URLs, the URLs derived from the listeners, the room list a heartbeat carries,
 * the rates, and the reconnect backoff.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FLEET_CLOSE_CODES, FLEET_LIMITS, HEARTBEAT_INTERVAL_MS, isValidRelayId, parseRelayMessage } from "../../../shared/fleet/protocol.js";
import { RELAY_USAGE } from "../../../relay/config.js";
import { config, failure } from "../parse-config.js";
import { FLEET_CLIENT_TIMING, backoffDelay, backoffFloor, closeCodeLabel, heartbeatInterval } from "../../../relay/fleet/control-client.js";
import { bitsPerSecond, cpuPercent, p99Milliseconds, roomLoads } from "../../../relay/fleet/heartbeat.js";
import { derivePublicUrls, publicHost } from "../../../relay/fleet/public-urls.js";
import { registerMessage, relayVersion } from "../../../relay/fleet/register.js";
import { registeredUrls } from "../../../relay/fleet/relay-fleet.js";
import { relayIdFromHostname } from "../../../relay/fleet/settings.js";

const SECRET = "fleet-options-turn-secret";
const KEY = "fleet-key-0123456789abcdef0123456789abcdef";
const OTHER_KEY = "fleet-key-fedcba9876543210fedcba9876543210";
const BASE = ["--listening-ip=127.0.0.1", `--static-auth-secret=${SECRET}`];
const FLEET = [...BASE, "--fleet-url=wss://relaykit.example.workers.dev/v1/fleet"];


let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-fleet-options-"));
});
afterAll(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

async function file(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content, { mode: 0o600 });
  return path;
}

describe("fleet options", () => {
  it("are off by default: no fleet", () => {
    expect(config(BASE).fleet).toBeNull();
  });

  it("read the URL, the key from RELAY_FLEET_KEY, and default the rest", () => {
    const fleet = config(FLEET, { RELAY_FLEET_KEY: KEY }).fleet!;
    expect(fleet).toEqual({
      url: "wss://relaykit.example.workers.dev/v1/fleet",
      keys: [KEY],
      relayId: relayIdFromHostname(hostname()),
      region: "",
      location: null,
      publicUrls: [],
    });
    expect(isValidRelayId(fleet.relayId)).toBe(true);
  });

  it("read every option by flag and by variable", async () => {
    const keyFile = await file("fleet-key", `\n  ${KEY}\n${OTHER_KEY}\n\n`);
    const byFlag = config([
      ...FLEET,
      `--fleet-key-file=${keyFile}`,
      "--fleet-relay-id=fra1-relay.02",
      "--fleet-region=eu-central",
      "--fleet-location=50.11,8.68",
      "--public-url=turn:relay.example.com:3478?transport=udp",
      "--public-url=turns:relay.example.com:443?transport=tcp",
    ]).fleet;
    expect(byFlag).toEqual({
      url: "wss://relaykit.example.workers.dev/v1/fleet",
      keys: [KEY, OTHER_KEY],
      relayId: "fra1-relay.02",
      region: "eu-central",
      location: { lat: 50.11, lon: 8.68 },
      publicUrls: ["turn:relay.example.com:3478?transport=udp", "turns:relay.example.com:443?transport=tcp"],
    });
    const byEnv = config(BASE, {
      RELAY_FLEET_URL: "wss://relaykit.example.workers.dev/v1/fleet",
      RELAY_FLEET_KEY_FILE: keyFile,
      RELAY_FLEET_RELAY_ID: "fra1-relay.02",
      RELAY_FLEET_REGION: "eu-central",
      RELAY_FLEET_LOCATION: "50.11, 8.68",
      RELAY_PUBLIC_URL: "turn:relay.example.com:3478?transport=udp,turns:relay.example.com:443?transport=tcp",
    }).fleet;
    expect(byEnv).toEqual(byFlag);
  });

  it("allow ws:// only to a loopback host", () => {
    for (const url of ["ws://127.0.0.1:8787/v1/fleet", "ws://localhost:8787/v1/fleet", "ws://[::1]:8787/v1/fleet"]) {
      expect(config([...BASE, `--fleet-url=${url}`], { RELAY_FLEET_KEY: KEY }).fleet!.url).toBe(url);
    }
    expect(failure([...BASE, "--fleet-url=ws://relaykit.example.workers.dev/v1/fleet"], { RELAY_FLEET_KEY: KEY })).toMatch(/--fleet-url uses ws:\/\/.*loopback.*use wss:\/\//);
    expect(failure([...BASE, "--fleet-url=ws://10.0.0.5/v1/fleet"], { RELAY_FLEET_KEY: KEY })).toMatch(/loopback/);
  });

  const badUrls: [string, RegExp][] = [
    ["wss://relaykit.example.workers.dev/", /--fleet-url must have the path \/v1\/fleet/],
    ["wss://relaykit.example.workers.dev/v1/fleet/", /must have the path \/v1\/fleet/],
    ["wss://relaykit.example.workers.dev/v1/room/x", /must have the path \/v1\/fleet/],
    ["https://relaykit.example.workers.dev/v1/fleet", /--fleet-url must start with wss:\/\//],
    ["relaykit.example.workers.dev/v1/fleet", /--fleet-url must be a URL like wss:\/\//],
    ["wss://user:pass@relaykit.example.workers.dev/v1/fleet", /must not carry a user or password/],
    ["wss://relaykit.example.workers.dev/v1/fleet?x=1", /no query or fragment/],
  ];
  it.each(badUrls)("refuse the URL %s", (url, expected) => {
    expect(failure([...BASE, `--fleet-url=${url}`], { RELAY_FLEET_KEY: KEY })).toMatch(expected);
  });

  it("need a fleet key with --fleet-url, one way only, long enough, and never quote it", async () => {
    expect(failure(FLEET)).toMatch(/--fleet-url is given without a fleet key: give --fleet-key-file FILE .* or the key in RELAY_FLEET_KEY/);
    const keyFile = await file("fleet-key-2", KEY);
    expect(failure([...FLEET, `--fleet-key-file=${keyFile}`], { RELAY_FLEET_KEY: KEY })).toMatch(/--fleet-key-file and RELAY_FLEET_KEY are both given/);
    const short = "short-fleet-key-31-characters-x";
    const message = failure(FLEET, { RELAY_FLEET_KEY: short });
    expect(message).toMatch(/RELAY_FLEET_KEY: fleet key 1 is 31 characters; use at least 32/);
    expect(message).not.toContain(short);
    const shortFile = await file("short-key", `${KEY}\n${short}\n`);
    const fromFile = failure([...FLEET, `--fleet-key-file=${shortFile}`]);
    expect(fromFile).toMatch(/--fleet-key-file ".*short-key": fleet key 2 is 31 characters/);
    expect(fromFile).not.toContain(short);
    expect(fromFile).not.toContain(KEY);
    expect(failure([...FLEET, `--fleet-key-file=${await file("empty-key", "\n\n")}`])).toMatch(/holds no fleet key/);
    expect(failure([...FLEET, `--fleet-key-file=${join(dir, "missing")}`])).toMatch(/--fleet-key-file ".*missing" cannot be read \(there is no such file\)/);
    // An error that would quote the key (pasted into the wrong option) has it scrubbed.
    const misplaced = failure([...FLEET, `--public-url=${KEY}`], { RELAY_FLEET_KEY: KEY });
    expect(misplaced).toMatch(/--public-url "<secret>" is not a turn: or turns: URL/);
    expect(misplaced).not.toContain(KEY);
  });

  it("refuse fleet options without --fleet-url", async () => {
    expect(failure([...BASE, "--fleet-region=eu"])).toMatch(/--fleet-region is given without --fleet-url/);
    expect(failure(BASE, { RELAY_FLEET_KEY: KEY })).toMatch(/RELAY_FLEET_KEY is given without --fleet-url/);
    expect(failure([...BASE, "--public-url=turn:a.example:3478"])).toMatch(/--public-url is given without --fleet-url/);
    expect(failure([...BASE, `--fleet-key-file=${await file("k3", KEY)}`])).toMatch(/--fleet-key-file is given without --fleet-url/);
  });

  const badValues: [string, string, RegExp][] = [
    ["a relay id with a space", "--fleet-relay-id=relay one", /--fleet-relay-id must be 1-64 characters of A-Z a-z 0-9 _ \. -/],
    ["a relay id of 65 characters", `--fleet-relay-id=${"r".repeat(65)}`, /--fleet-relay-id must be 1-64/],
    ["a region of 65 characters", `--fleet-region=${"e".repeat(65)}`, /--fleet-region must be a label of at most 64 printable characters/],
    ["a latitude of 91", "--fleet-location=91,8", /--fleet-location must be LAT,LON in decimal degrees, latitude -90\.\.90/],
    ["a longitude of 181", "--fleet-location=50,181", /--fleet-location must be LAT,LON/],
    ["a location of one number", "--fleet-location=50.1", /--fleet-location must be LAT,LON/],
    ["a location with words", "--fleet-location=north,east", /--fleet-location must be LAT,LON/],
    ["an http public URL", "--public-url=https://relay.example.com", /--public-url "https:\/\/relay\.example\.com" is not a turn: or turns: URL/],
    ["a stun public URL", "--public-url=stun:relay.example.com:3478", /is not a turn: or turns: URL/],
    ["a public URL of 257 characters", `--public-url=turn:${"a".repeat(252)}`, /of at most 256 characters/],
  ];
  it.each(badValues)("refuse %s", (_, flag, expected) => {
    expect(failure([...FLEET, flag], { RELAY_FLEET_KEY: KEY })).toMatch(expected);
  });

  it("refuse more public URLs than a register message takes", () => {
    const urls = Array.from({ length: FLEET_LIMITS.maxUrls + 1 }, (_, i) => `--public-url=turn:relay${i}.example.com:3478`);
    expect(failure([...FLEET, ...urls], { RELAY_FLEET_KEY: KEY })).toMatch(/--public-url gives 9 URLs; a relay registers at most 8/);
  });

  it("need --public-url or --external-ip when listening only on wildcards", () => {
    const wildcard = ["--listening-ip=0.0.0.0", "--relay-ip=10.0.0.5", `--static-auth-secret=${SECRET}`, "--fleet-url=wss://w.example/v1/fleet"];
    expect(failure(wildcard, { RELAY_FLEET_KEY: KEY })).toMatch(/--fleet-url needs the URLs clients should use.*give --public-url turn:HOST:3478\?transport=udp.*or --external-ip/);
    expect(config([...wildcard, "--external-ip=203.0.113.10/10.0.0.5"], { RELAY_FLEET_KEY: KEY }).fleet).not.toBeNull();
    expect(config([...wildcard, "--public-url=turn:relay.example.com:3478"], { RELAY_FLEET_KEY: KEY }).fleet).not.toBeNull();
    // Discovery finds the public address at start: allowed.
    expect(config([...wildcard, "--external-ip-stun-server=stun.example.com"], { RELAY_FLEET_KEY: KEY }).fleet).not.toBeNull();
  });

  it("are listed in --help", () => {
    for (const option of ["--fleet-url", "--fleet-key-file", "--fleet-relay-id", "--fleet-region", "--fleet-location", "--public-url", "RELAY_FLEET_KEY"]) expect(RELAY_USAGE).toContain(option);
  });
});

describe("relay ids from host names", () => {
  it("keep what fits and replace the rest", () => {
    expect(relayIdFromHostname("relay-1.fra.example.com")).toBe("relay-1.fra.example.com");
    expect(relayIdFromHostname("relay 1/ü")).toBe("relay-1--");
    expect(relayIdFromHostname("x".repeat(80))).toBe("x".repeat(64));
    expect(relayIdFromHostname("")).toBe("relay");
  });
});

describe("registered URLs", () => {
  const listeners = [
    { transport: "udp" as const, address: "127.0.0.1", port: 3478 },
    { transport: "tcp" as const, address: "127.0.0.1", port: 3478 },
    { transport: "tls" as const, address: "127.0.0.1", port: 5349 },
    { transport: "udp" as const, address: "::1", port: 3478 },
  ];

  it("are derived from the first external IP, else the first listening IP that is not a wildcard", () => {
    expect(publicHost({ externalIps: [{ public: "203.0.113.10" }, { public: "2001:db8::10" }], listeningIps: ["10.0.0.5"] })).toBe("203.0.113.10");
    expect(publicHost({ externalIps: [{ public: "2001:db8::10" }], listeningIps: ["10.0.0.5"] })).toBe("[2001:db8::10]");
    expect(publicHost({ externalIps: [], listeningIps: ["0.0.0.0", "::", "fd00::5"] })).toBe("[fd00::5]");
    expect(publicHost({ externalIps: [], listeningIps: ["0.0.0.0", "::"] })).toBeNull();
    expect(derivePublicUrls("203.0.113.10", listeners)).toEqual([
      "turn:203.0.113.10:3478?transport=udp",
      "turn:203.0.113.10:3478?transport=tcp",
      "turns:203.0.113.10:5349?transport=tcp",
    ]);
    expect(derivePublicUrls("[2001:db8::10]", [listeners[2]!])).toEqual(["turns:[2001:db8::10]:5349?transport=tcp"]);
  });

  it("are the --public-url list when given, and pass the fleet's own check", () => {
    const cfg = config([...FLEET, "--external-ip=203.0.113.10"], { RELAY_FLEET_KEY: KEY });
    const derived = registeredUrls(cfg, cfg.fleet!, listeners);
    expect(derived).toEqual(["turn:203.0.113.10:3478?transport=udp", "turn:203.0.113.10:3478?transport=tcp", "turns:203.0.113.10:5349?transport=tcp"]);
    const given = config([...FLEET, "--public-url=turn:relay.example.com:3478?transport=udp"], { RELAY_FLEET_KEY: KEY });
    expect(registeredUrls(given, given.fleet!, listeners)).toEqual(["turn:relay.example.com:3478?transport=udp"]);
    const message = registerMessage({ relayId: "r1", region: "eu", location: { lat: 1.5, lon: -2 } }, derived, { totalQuota: 500, bpsCapacity: 12_500_000 }, relayVersion());
    expect(message.capacity).toEqual({ allocations: 500, bps: 100_000_000 });
    const parsed = parseRelayMessage(JSON.stringify(message));
    expect(parsed).toEqual({ ok: true, message });
  });

  it("carry the package version", async () => {
    const { version } = JSON.parse(await import("node:fs").then((fs) => fs.readFileSync(new URL("../../../package.json", import.meta.url), "utf8"))) as { version: string };
    expect(relayVersion()).toBe(version);
    const bundleDir = await mkdtemp(join(tmpdir(), "relay-fleet-version-"));
    await writeFile(join(bundleDir, "package.json"), JSON.stringify({ name: "relaykit-relay", version: "9.8.7" }));
    expect(relayVersion(new URL(`file://${bundleDir}/relay.mjs`))).toBe("9.8.7");
    await rm(bundleDir, { recursive: true, force: true });
  });
});

describe("heartbeat arithmetic", () => {
  it("lists rooms most allocations first, ties by name, capped, the rest counted", () => {
    const counts = new Map([["b", 1], ["a", 1], ["big", 5], ["mid", 2]]);
    expect(roomLoads(counts)).toEqual({
      rooms: [{ room: "big", allocations: 5 }, { room: "mid", allocations: 2 }, { room: "a", allocations: 1 }, { room: "b", allocations: 1 }],
      roomsOmitted: 0,
    });
    expect(roomLoads(counts, 2)).toEqual({ rooms: [{ room: "big", allocations: 5 }, { room: "mid", allocations: 2 }], roomsOmitted: 2 });
    expect(roomLoads(new Map())).toEqual({ rooms: [], roomsOmitted: 0 });
    const many = new Map(Array.from({ length: FLEET_LIMITS.maxRooms + 7 }, (_, i) => [`room-${i}`, 1] as [string, number]));
    const capped = roomLoads(many);
    expect(capped.rooms).toHaveLength(FLEET_LIMITS.maxRooms);
    expect(capped.roomsOmitted).toBe(7);
  });

  it("turns byte counts into bits per second, and CPU microseconds into percent", () => {
    expect(bitsPerSecond(1_000, 126_000, 5_000)).toBe(200_000);
    expect(bitsPerSecond(1_000, 1_000, 5_000)).toBe(0);
    expect(bitsPerSecond(2_000, 1_000, 5_000)).toBe(0);
    expect(bitsPerSecond(0, 1_000, 0)).toBe(0);
    expect(cpuPercent({ user: 400_000, system: 100_000 }, 5_000)).toBe(10);
    expect(cpuPercent({ user: 9_000_000, system: 1_000_000 }, 5_000)).toBe(200);
    expect(p99Milliseconds({ count: 0, percentile: () => 5e6 })).toBe(0);
    expect(p99Milliseconds({ count: 10, percentile: () => 21_234_567 })).toBe(21.2);
  });
});

describe("reconnect backoff", () => {
  const timing = FLEET_CLIENT_TIMING;

  it("is full jitter over 0.5 s doubling to 30 s", () => {
    expect(backoffDelay(0, 0.999, timing)).toBeLessThanOrEqual(500);
    expect(backoffDelay(1, 0.999, timing)).toBeLessThanOrEqual(1_000);
    expect(backoffDelay(3, 0.5, timing)).toBe(2_000);
    expect(backoffDelay(20, 0.999, timing)).toBeLessThanOrEqual(30_000);
    expect(backoffDelay(1_000, 0.999, timing)).toBeLessThanOrEqual(30_000);
    expect(backoffDelay(5, 0, timing)).toBe(0);
  });

  it("waits at least 60 s after a close only an operator can fix, 30 s after being replaced", () => {
    for (const code of [FLEET_CLOSE_CODES.badToken, FLEET_CLOSE_CODES.fleetFull, FLEET_CLOSE_CODES.notConfigured]) {
      expect(backoffDelay(0, 0, timing, backoffFloor(code, timing))).toBe(60_000);
    }
    expect(backoffFloor(FLEET_CLOSE_CODES.replaced, timing)).toBe(30_000);
    for (const code of [1000, 1006, 1011, FLEET_CLOSE_CODES.tokenExpired, FLEET_CLOSE_CODES.tokenReplayed, FLEET_CLOSE_CODES.protocolViolation]) expect(backoffFloor(code, timing)).toBe(0);
  });

  it("keeps the fleet's heartbeat interval within 1-5 s, and close codes to a small label set", () => {
    expect(heartbeatInterval(undefined, timing)).toBe(HEARTBEAT_INTERVAL_MS);
    expect(heartbeatInterval(2_000, timing)).toBe(2_000);
    expect(heartbeatInterval(10, timing)).toBe(1_000);
    expect(heartbeatInterval(60_000, timing)).toBe(HEARTBEAT_INTERVAL_MS);
    expect(closeCodeLabel(4401)).toBe("4401");
    expect(closeCodeLabel(1006)).toBe("1006");
    expect(closeCodeLabel(4999)).toBe("other");
  });
});
