/**
 * ICE servers for apps: fetch them from the Worker's `/v1/ice-servers`, and know when to fetch again.
 * TURN REST credentials expire (`expiresAt`); a client refreshes a little before, so a call never
 * has to allocate with a dead credential.
 */
import { ROOM_NAME_RULE, USER_ID_RULE, isValidRoomName, isValidUserId } from "../ids.js";
import type { HttpErrorBody } from "../signaling/protocol.js";
import type { IceServer, IceServersResponse } from "../turn/ice-servers.js";

export type FetchLike = (input: string, init?: { headers?: Record<string, string>; signal?: AbortSignal }) => Promise<Response>;

export interface FetchIceServersOptions {
  /** The Worker's origin, e.g. `https://relaykit.example.workers.dev` or `http://127.0.0.1:8787`. */
  server: string;
  /** A join token (browsers): the TURN user is its `sub`. */
  token?: string;
  /** An API key (app backends only: never ship one to a browser). */
  apiKey?: string;
  /** Ask for a shorter credential lifetime, in seconds (the Worker clamps it to its maximum). */
  ttl?: number;
  /** TURN user id to mint for (API-key callers only). */
  user?: string;
  /**
   * The room and this peer's id in it, for a member of an open room (no join token): the Worker then
   * mints a room-scoped TURN user `<room>/<peer>`, so the relay can count the room's allocations and
   * the room can be told when a relay it uses drains. A join token names both itself: send neither with one.
   */
  room?: string;
  peer?: string;
  fetch?: FetchLike;
  /** Give up after this long. Default 10 s. */
  timeoutMs?: number;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 10_000;

/** The Worker refused or could not be reached; `status` is 0 when no HTTP answer came. */
export class IceServersError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
    this.name = "IceServersError";
  }
}

/** `http(s)://host[:port][/base]` → the same without a trailing slash; anything else is refused. */
export function normalizeServerUrl(server: string): string {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TypeError(`server must be the Worker's http(s) origin, like https://relaykit.example.workers.dev; got ${JSON.stringify(server)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`server must be an http: or https: URL (the client derives ws: or wss: itself); got ${JSON.stringify(server)}`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/** Refuses a room or peer the Worker would refuse too, and one sent beside a join token, which names both. */
function checkRoomMember(options: FetchIceServersOptions): void {
  if (options.room === undefined && options.peer === undefined) return;
  if (options.token !== undefined) {
    throw new TypeError("room and peer come from the join token's claims: pass them only for an open room (no token)");
  }
  if (options.room === undefined || options.peer === undefined) throw new TypeError("pass room and peer together (a room member's TURN user is <room>/<peer>), or neither");
  if (!isValidRoomName(options.room)) throw new TypeError(`room must be ${ROOM_NAME_RULE}; got ${JSON.stringify(options.room.slice(0, 70))}`);
  if (!isValidUserId(options.peer)) throw new TypeError(`peer must be ${USER_ID_RULE}; got ${JSON.stringify(options.peer.slice(0, 140))}`);
}

/**
 * Fetches `GET /v1/ice-servers` with a join token (browsers) or an API key (backends) and checks the
 * answer; throws an IceServersError with the Worker's code and message when refused or unreachable.
 */
export async function fetchIceServers(options: FetchIceServersOptions): Promise<IceServersResponse> {
  const base = normalizeServerUrl(options.server);
  checkRoomMember(options);
  const query = new URLSearchParams();
  if (options.ttl !== undefined) query.set("ttl", String(options.ttl));
  if (options.user !== undefined) query.set("user", options.user);
  if (options.room !== undefined && options.peer !== undefined) {
    query.set("room", options.room);
    query.set("peer", options.peer);
  }
  const search = query.toString();
  const url = `${base}/v1/ice-servers${search.length > 0 ? `?${search}` : ""}`;
  const bearer = options.token ?? options.apiKey;
  const doFetch: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  let response: Response;
  try {
    response = await doFetch(url, {
      headers: bearer === undefined ? {} : { Authorization: `Bearer ${bearer}` },
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS),
    });
  } catch (error) {
    throw new IceServersError(`could not reach ${url}: ${error instanceof Error ? error.message : String(error)}`, 0, "unreachable");
  }
  const text = await response.text();
  if (!response.ok) {
    let body: HttpErrorBody | undefined;
    try {
      body = JSON.parse(text) as HttpErrorBody;
    } catch {
      // not our JSON: a proxy's page, say
    }
    const message = body?.error?.message ?? (text.slice(0, 200) || response.statusText);
    throw new IceServersError(`${url} answered ${response.status}: ${message}`, response.status, body?.error?.code ?? "http-error");
  }
  const parsed = parseIceServersResponse(text);
  if (parsed === null) throw new IceServersError(`${url} answered 200 but not with {iceServers, ttl, expiresAt}: ${text.slice(0, 200)}`, response.status, "bad-response");
  return parsed;
}

/** One RTCIceServer as the Worker sends it: `urls` (a string or strings), and optional `username`/`credential` strings. */
export function isIceServer(value: unknown): value is IceServer {
  if (typeof value !== "object" || value === null) return false;
  const { urls, username, credential } = value as Record<string, unknown>;
  const urlsOk = typeof urls === "string" || (Array.isArray(urls) && urls.every((url) => typeof url === "string"));
  return urlsOk && (username === undefined || typeof username === "string") && (credential === undefined || typeof credential === "string");
}

/** The body of `/v1/ice-servers`, checked; null when it is anything else. */
export function parseIceServersResponse(text: string): IceServersResponse | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { iceServers, ttl, expiresAt } = value as Record<string, unknown>;
  if (!Array.isArray(iceServers) || !iceServers.every(isIceServer)) return null;
  if (typeof ttl !== "number" || typeof expiresAt !== "string" || Number.isNaN(Date.parse(expiresAt))) return null;
  return { iceServers, ttl, expiresAt };
}

/** Refresh no earlier than this before expiry... */
const MAX_REFRESH_LEAD_MS = 5 * 60_000;
/** ...and for short credentials, with a fifth of their remaining life left. */
const REFRESH_LEAD_FRACTION = 0.2;
/** Never schedule sooner than this (a credential that is already nearly dead is fetched at once anyway). */
const MIN_REFRESH_DELAY_MS = 1_000;

/**
 * How long from `nowMs` to fetch fresh credentials that expire at `expiresAt`: five minutes before
 * expiry for long-lived ones, at four fifths of the remaining life for short ones.
 */
export function refreshDelayMs(expiresAt: string, nowMs: number): number {
  const remaining = Date.parse(expiresAt) - nowMs;
  if (!Number.isFinite(remaining)) return MIN_REFRESH_DELAY_MS;
  const lead = Math.min(MAX_REFRESH_LEAD_MS, remaining * REFRESH_LEAD_FRACTION);
  return Math.max(MIN_REFRESH_DELAY_MS, Math.round(remaining - lead));
}
