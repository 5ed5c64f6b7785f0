// The fleet's settings: defaults, ranges, and errors that name the variable.
import { describe, expect, it } from "vitest";
import { ConfigError, FLEET_DEFAULTS, parseLocation, readFleetConfig, readTurnConfig } from "../../../worker/config.js";
import type { Env } from "../../../worker/env.js";
import { callerLocation } from "../../../worker/fleet/relay-choice.js";

const base = {} as Env;
const KEY = "k".repeat(32);
const fleet = { ...base, FLEET_KEYS: KEY };

describe("readFleetConfig", () => {
  it("is null without FLEET_KEYS, and has the documented defaults with it", () => {
    expect(readFleetConfig(base)).toBeNull();
    expect(readFleetConfig({ ...base, FLEET_KEYS: " , " })).toBeNull();
    expect(readFleetConfig(fleet)).toEqual({ keys: [KEY], pick: 2, maxRelays: 100, defaultLocation: null, locationHeader: false });
    expect(FLEET_DEFAULTS).toEqual({ pick: 2, maxRelays: 100 });
  });

  it("reads every setting", () => {
    const config = readFleetConfig({ ...fleet, FLEET_KEYS: `${KEY}, ${"n".repeat(40)}`, FLEET_PICK: "3", FLEET_MAX_RELAYS: 500, FLEET_DEFAULT_LOCATION: "50.11, 8.68", FLEET_LOCATION_HEADER: "on" });
    expect(config).toEqual({ keys: [KEY, "n".repeat(40)], pick: 3, maxRelays: 500, defaultLocation: { lat: 50.11, lon: 8.68 }, locationHeader: true });
  });

  it.each([
    [{ FLEET_KEYS: "short" }, /^FLEET_KEYS: fleet key 1 is 5 characters; use at least 32/],
    [{ FLEET_PICK: "0" }, /^FLEET_PICK is "0"; it must be a whole number from 1 to 10/],
    [{ FLEET_PICK: "11" }, /^FLEET_PICK is "11"/],
    [{ FLEET_MAX_RELAYS: "many" }, /^FLEET_MAX_RELAYS is "many"; it must be a whole number from 1 to 1000/],
    [{ FLEET_DEFAULT_LOCATION: "berlin" }, /^FLEET_DEFAULT_LOCATION is "berlin"; it must be "<latitude>,<longitude>"/],
    [{ FLEET_DEFAULT_LOCATION: "91,0" }, /^FLEET_DEFAULT_LOCATION/],
    [{ FLEET_LOCATION_HEADER: "yes" }, /^FLEET_LOCATION_HEADER is "yes"/],
  ])("refuses %j, naming the variable", (vars, message) => {
    expect(() => readFleetConfig({ ...fleet, ...vars })).toThrow(ConfigError);
    expect(() => readFleetConfig({ ...fleet, ...vars })).toThrow(message);
  });
});

describe("readTurnConfig with a fleet", () => {
  it("needs no TURN_URLS when FLEET_KEYS is set, but still TURN_SECRETS to mint", () => {
    expect(readTurnConfig({ ...fleet, TURN_SECRETS: "s" })).toMatchObject({ turnUrls: [], stunUrls: [] });
    expect(() => readTurnConfig({ ...base, TURN_SECRETS: "s" })).toThrow(/TURN_URLS/);
    expect(readTurnConfig(fleet)).toBeNull();
  });
});

describe("the caller's location", () => {
  const config = (vars: Partial<Env>) => readFleetConfig({ ...fleet, ...vars });
  const request = (headers: Record<string, string>, cf?: Record<string, string>) => {
    const r = new Request("http://relaykit.test/", { headers });
    if (cf !== undefined) Object.defineProperty(r, "cf", { value: cf });
    return r;
  };

  it("comes from the header only under FLEET_LOCATION_HEADER=on, then request.cf, then FLEET_DEFAULT_LOCATION", () => {
    const header = { "X-Relaykit-Location": "1,2" };
    const cf = { latitude: "3.5", longitude: "4.5" };
    expect(callerLocation(request(header, cf), config({ FLEET_LOCATION_HEADER: "on" }))).toEqual({ lat: 1, lon: 2 });
    expect(callerLocation(request(header, cf), config({}))).toEqual({ lat: 3.5, lon: 4.5 });
    expect(callerLocation(request(header), config({ FLEET_DEFAULT_LOCATION: "5,6" }))).toEqual({ lat: 5, lon: 6 });
    expect(callerLocation(request({ "X-Relaykit-Location": "nonsense" }), config({ FLEET_LOCATION_HEADER: "on" }))).toBeNull();
    expect(callerLocation(request(header), null)).toBeNull();
  });

  it("parses lat,lon within range only", () => {
    expect(parseLocation("-33.87,151.21")).toEqual({ lat: -33.87, lon: 151.21 });
    expect(parseLocation("0,181")).toBeNull();
    expect(parseLocation("1;2")).toBeNull();
  });
});
