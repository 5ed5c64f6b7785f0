/**
 * What the Worker answers for ICE configuration, in the two shapes clients expect: WebRTC's own
 * `RTCIceServer` list (pass it straight to `new RTCPeerConnection({ iceServers })`), and the TURN
 * REST draft's `{username, password, ttl, uris}` used by coturn, Matrix and Jitsi clients.
 */
import type { TurnCredential } from "./credentials.js";

/** The `RTCIceServer` dictionary, spelled out so Workers and Node code need no DOM types. */
export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** `GET /v1/ice-servers` */
export interface IceServersResponse {
  iceServers: IceServer[];
  /** Seconds the TURN credential is valid for from issue. */
  ttl: number;
  /** ISO 8601 time after which the TURN entry stops working: fetch again before then. */
  expiresAt: string;
}

/** `GET /v1/turn-credentials` (draft-uberti-behave-turn-rest-00) */
export interface TurnRestResponse {
  username: string;
  password: string;
  ttl: number;
  uris: string[];
}

const TURN_URL = /^turns?:[^\s,]+$/;
const STUN_URL = /^stuns?:[^\s,]+$/;

/** True for a `turn:` or `turns:` URL (with no spaces or commas). */
export function isTurnUrl(url: string): boolean {
  return TURN_URL.test(url);
}

/** True for a `stun:` or `stuns:` URL (with no spaces or commas). */
export function isStunUrl(url: string): boolean {
  return STUN_URL.test(url);
}

/**
 * The STUN URLs implied by TURN URLs: every TURN server answers STUN Binding on its plain
 * (`turn:`) listeners, so `turn:host:3478?transport=udp` gives `stun:host:3478`.
 */
export function stunUrlsFromTurnUrls(turnUrls: readonly string[]): string[] {
  const stun = new Set<string>();
  for (const url of turnUrls) {
    const match = /^turn:([^?]+)/.exec(url);
    if (match) stun.add(`stun:${match[1]}`);
  }
  return [...stun];
}

/**
 * The `/v1/ice-servers` body for one credential and several relays: one `stun:` entry (when there are
 * STUN URLs), then one TURN entry per relay (each relay's URLs), all with the same credential. The
 * Worker answers with exactly this, and so does `mintIceServers` (./mint-ice-servers.ts) for app backends.
 */
export function iceServersForRelays(credential: TurnCredential, relays: readonly (readonly string[])[], stunUrls: readonly string[]): IceServersResponse {
  const iceServers: IceServer[] = [];
  if (stunUrls.length > 0) iceServers.push({ urls: [...stunUrls] });
  for (const urls of relays) iceServers.push({ urls: [...urls], username: credential.username, credential: credential.password });
  return { iceServers, ttl: credential.ttl, expiresAt: new Date(credential.expiresAt * 1000).toISOString() };
}

/** The `/v1/ice-servers` body for one credential and one relay's TURN URLs (plus STUN URLs, if any). */
export function iceServersResponse(credential: TurnCredential, turnUrls: readonly string[], stunUrls: readonly string[]): IceServersResponse {
  return iceServersForRelays(credential, [turnUrls], stunUrls);
}

/** The `/v1/turn-credentials` body (the TURN REST draft's shape) for one credential and its TURN URLs. */
export function turnRestResponse(credential: TurnCredential, turnUrls: readonly string[]): TurnRestResponse {
  return { username: credential.username, password: credential.password, ttl: credential.ttl, uris: [...turnUrls] };
}
