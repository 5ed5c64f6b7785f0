import { describe, expect, it } from "vitest";
import { ConfigError, ROOM_DEFAULTS, readRoomConfig } from "../../../worker/config.js";
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
