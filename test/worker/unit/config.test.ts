import { describe, expect, it } from "vitest";
import { MAX_CREDENTIAL_TTL_SECONDS } from "../../../shared/turn/credentials.js";
import { ConfigError, ROOM_DEFAULTS, openRoomsRefusal, readRoomConfig, readTurnConfig } from "../../../worker/config.js";
import type { Env } from "../../../worker/env.js";

const base = {} as Env;

describe("readRoomConfig", () => {
  it("uses the documented defaults when nothing is set", () => {
    expect(readRoomConfig(base)).toEqual(ROOM_DEFAULTS);
    expect(ROOM_DEFAULTS).toMatchObject({ capacity: 16, maxFrameBytes: 65536, resumeGraceMs: 30_000 });
    expect(ROOM_DEFAULTS.rateBurst).toBeGreaterThanOrEqual(50);
    expect(ROOM_DEFAULTS.ratePerSecond).toBeGreaterThanOrEqual(20);
  });

  it("reads numbers from strings (secrets, .dev.vars) and from numbers (wrangler.toml)", () => {
    const config = readRoomConfig({ ...base, ROOM_CAPACITY: "4", RESUME_GRACE_SECONDS: 2.5, PEER_IDLE_TIMEOUT_SECONDS: " 90 " });
    expect(config).toMatchObject({ capacity: 4, resumeGraceMs: 2500, idleTimeoutMs: 90_000 });
  });

  it.each([
    ["ROOM_CAPACITY", "0"],
    ["ROOM_CAPACITY", "2.5"],
    ["ROOM_CAPACITY", "many"],
    ["MAX_FRAME_BYTES", "10"],
    ["RATE_LIMIT_PER_SECOND", "-1"],
    ["PEER_IDLE_TIMEOUT_SECONDS", "Infinity"],
  ])("refuses %s=%j, naming the variable and its range", (variable, value) => {
    expect(() => readRoomConfig({ ...base, [variable]: value })).toThrow(ConfigError);
    expect(() => readRoomConfig({ ...base, [variable]: value })).toThrow(new RegExp(`^${variable} is "${value}"; it must be .* from `));
  });
});

describe("readTurnConfig", () => {
  const turn = { ...base, TURN_SECRETS: "s", TURN_URLS: "turn:relay.example.com:3478" };

  it("defaults TURN_MAX_TTL to the maximum every relay enforces, and TURN_TTL to a day", () => {
    expect(readTurnConfig(turn)).toMatchObject({ maxTtlSeconds: MAX_CREDENTIAL_TTL_SECONDS, ttlSeconds: 86_400 });
    expect(MAX_CREDENTIAL_TTL_SECONDS).toBe(172_800);
  });

  it.each([String(MAX_CREDENTIAL_TTL_SECONDS + 1), 2_592_000])("refuses TURN_MAX_TTL=%j, saying relays refuse it and to lower it", (value) => {
    expect(() => readTurnConfig({ ...turn, TURN_MAX_TTL: value })).toThrow(ConfigError);
    expect(() => readTurnConfig({ ...turn, TURN_MAX_TTL: value })).toThrow(/longer than relays accept.*--max-credential-ttl.*Lower TURN_MAX_TTL to 172800 or less/);
  });

  it("keeps TURN_TTL within TURN_MAX_TTL", () => {
    expect(() => readTurnConfig({ ...turn, TURN_MAX_TTL: "600", TURN_TTL: "601" })).toThrow(/^TURN_TTL is "601"; it must be a whole number from 10 to 600/);
  });
});

describe("openRoomsRefusal", () => {
  it.each([
    ["nothing set (local development)", {}, false],
    ["TURN_SECRETS without JOIN_SECRET", { TURN_SECRETS: "s" }, true],
    ["API_KEYS without JOIN_SECRET", { API_KEYS: "k" }, true],
    ["blank TURN_SECRETS and API_KEYS", { TURN_SECRETS: " , ", API_KEYS: "" }, false],
    ["TURN_SECRETS with AUTH_MODE=open", { TURN_SECRETS: "s", AUTH_MODE: "open" }, false],
    ["TURN_SECRETS with JOIN_SECRET", { TURN_SECRETS: "s", JOIN_SECRET: "j" }, false],
  ])("%s: refused %s", (_, vars, refused) => {
    const reason = openRoomsRefusal({ ...base, ...vars });
    if (refused) expect(reason).toMatch(/no JOIN_SECRET.*AUTH_MODE=open/);
    else expect(reason).toBeNull();
  });
});
