/**
 * The fleet's settings, checked: the control channel's URL, the relay id, the location, the URLs a
 * relay registers. Pure: text in, a value or the reason it is refused out; relay/config.ts turns
 * the reason into an error naming the option.
 */
import { isIP } from "node:net";
import { FLEET_LIMITS, FLEET_PATH, RELAY_ID_RULE, isValidRelayId, type GeoLocation } from "../../shared/fleet/protocol.js";
import { isTurnUrl } from "../../shared/turn/ice-servers.js";

export type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };

/** Host names a plain ws:// URL may name: the control channel leaves this machine only over TLS. */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

/**
 * `wss://<worker>/v1/fleet`; `ws://` only to a loopback host (a Worker under `wrangler dev`). No
 * user or password in the URL (the relay authenticates with a token), no query, no fragment.
 */
export function checkFleetUrl(text: string): Checked<string> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, reason: `must be a URL like wss://relaykit.example.workers.dev${FLEET_PATH}` };
  }
  if (url.protocol !== "wss:" && url.protocol !== "ws:") return { ok: false, reason: `must start with wss:// (the Worker's address, path ${FLEET_PATH})` };
  if (url.protocol === "ws:" && !isLoopbackHost(url.hostname)) {
    return { ok: false, reason: "uses ws://, which is allowed only for a loopback host (a local wrangler dev); use wss:// so the fleet token travels encrypted" };
  }
  if (url.username !== "" || url.password !== "") return { ok: false, reason: "must not carry a user or password: the relay authenticates with a token signed by the fleet key" };
  if (url.pathname !== FLEET_PATH) return { ok: false, reason: `must have the path ${FLEET_PATH} (the Worker's fleet endpoint), not ${JSON.stringify(url.pathname.slice(0, 80))}` };
  if (url.search !== "" || url.hash !== "") return { ok: false, reason: `must end with ${FLEET_PATH}: no query or fragment` };
  return { ok: true, value: url.href };
}

/** A host name made into a relay id: characters outside the rule become '-', cut to 64; "relay" if nothing is left. */
export function relayIdFromHostname(hostname: string): string {
  const id = hostname.replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 64);
  return isValidRelayId(id) ? id : "relay";
}

export function checkRelayId(text: string): Checked<string> {
  return isValidRelayId(text) ? { ok: true, value: text } : { ok: false, reason: `must be ${RELAY_ID_RULE}` };
}

export function checkRegion(text: string): Checked<string> {
  if (text.length > FLEET_LIMITS.maxRegionLength || /[\u0000-\u001f\u007f]/.test(text)) {
    return { ok: false, reason: `must be a label of at most ${FLEET_LIMITS.maxRegionLength} printable characters (eu-west, fra1...)` };
  }
  return { ok: true, value: text };
}

/** `LAT,LON` in decimal degrees: `50.11,8.68`. */
export function checkLocation(text: string): Checked<GeoLocation> {
  const match = /^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text);
  const lat = Number(match?.[1]);
  const lon = Number(match?.[2]);
  if (match === null || !(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180)) {
    return { ok: false, reason: "must be LAT,LON in decimal degrees, latitude -90..90 and longitude -180..180 (Frankfurt: 50.11,8.68)" };
  }
  return { ok: true, value: { lat, lon } };
}

/** The URLs given with --public-url: each a turn: or turns: URL, as many as a register message takes. */
export function checkPublicUrls(urls: readonly string[]): Checked<string[]> {
  if (urls.length > FLEET_LIMITS.maxUrls) return { ok: false, reason: `gives ${urls.length} URLs; a relay registers at most ${FLEET_LIMITS.maxUrls}` };
  const bad = urls.find((url) => url.length > FLEET_LIMITS.maxUrlLength || !isTurnUrl(url));
  if (bad !== undefined) {
    return { ok: false, reason: `${JSON.stringify(bad.slice(0, 80))} is not a turn: or turns: URL of at most ${FLEET_LIMITS.maxUrlLength} characters (turn:relay.example.com:3478?transport=udp)` };
  }
  return { ok: true, value: [...new Set(urls)] };
}
