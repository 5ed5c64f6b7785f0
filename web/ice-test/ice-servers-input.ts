/**
 * ICE servers typed or pasted by a person: checked here so a mistake gets a sentence that says
 * what is wrong and where, instead of a bare exception from the RTCPeerConnection constructor.
 */
import type { IceServer } from "../../shared/client/index.js";

export type IceServersInput = { ok: true; iceServers: IceServer[] } | { ok: false; message: string };

const URL_SCHEMES = /^(stun|stuns|turn|turns):/;

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value)}`;
}

/**
 * Accepts an array of RTCIceServer dictionaries, `{ "iceServers": [...] }` (what /v1/ice-servers
 * answers), or one RTCIceServer dictionary.
 */
export function readIceServers(value: unknown): IceServersInput {
  let list: unknown = value;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    list = "iceServers" in record ? record["iceServers"] : "urls" in record ? [record] : value;
  }
  if (!Array.isArray(list)) {
    return { ok: false, message: `Expected a list of ICE servers like [{"urls": "stun:stun.example.com:3478"}] or {"iceServers": [...]}, got ${describeValue(list)}.` };
  }
  if (list.length === 0) return { ok: false, message: "The list of ICE servers is empty: give at least one stun: or turn: URL." };
  const servers: IceServer[] = [];
  for (const [index, entry] of list.entries()) {
    const where = `iceServers[${index}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return { ok: false, message: `${where} must be an object with "urls", got ${describeValue(entry)}.` };
    const { urls, username, credential } = entry as Record<string, unknown>;
    const urlList = typeof urls === "string" ? [urls] : urls;
    if (!Array.isArray(urlList) || urlList.length === 0 || !urlList.every((url): url is string => typeof url === "string")) {
      return { ok: false, message: `${where}.urls must be a URL string or a non-empty list of them, got ${describeValue(urls)}.` };
    }
    const badUrl = urlList.find((url) => !URL_SCHEMES.test(url.trim()));
    if (badUrl !== undefined) return { ok: false, message: `${where}: "${badUrl}" is not a stun:, stuns:, turn: or turns: URL.` };
    if (username !== undefined && typeof username !== "string") return { ok: false, message: `${where}.username must be a string.` };
    if (credential !== undefined && typeof credential !== "string") return { ok: false, message: `${where}.credential must be a string.` };
    const needsCredential = urlList.some((url) => /^turns?:/.test(url.trim()));
    if (needsCredential && (username === undefined || credential === undefined)) {
      return { ok: false, message: `${where} has turn: URLs but no "username" and "credential"; TURN servers need both (get them from /v1/ice-servers).` };
    }
    servers.push({
      urls: typeof urls === "string" ? urls.trim() : urlList.map((url) => url.trim()),
      ...(username === undefined ? {} : { username }),
      ...(credential === undefined ? {} : { credential }),
    });
  }
  return { ok: true, iceServers: servers };
}

/** The textarea's text: JSON, then the shape above. */
export function parseIceServersJson(text: string): IceServersInput {
  if (text.trim() === "") return { ok: false, message: 'Paste ICE servers as JSON first, e.g. [{"urls": "stun:stun.example.com:3478"}].' };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, message: `That is not valid JSON (${error instanceof Error ? error.message : String(error)}). Paste the servers as JSON, e.g. [{"urls": "stun:stun.example.com:3478"}].` };
  }
  return readIceServers(value);
}

/** Every URL of a server list, one by one. */
export function urlsOf(iceServers: readonly IceServer[]): string[] {
  return iceServers.flatMap((server) => (typeof server.urls === "string" ? [server.urls] : server.urls));
}
