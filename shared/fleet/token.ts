/**
 * Fleet tokens: how a relay proves to the Worker's fleet object that it holds a fleet key.
 *
 * An HS256 JWT with `aud` "relaykit-fleet", `sub` the relay id, `iat`, `exp` at most
 * `FLEET_TOKEN_MAX_LIFETIME_SECONDS` later, and a random `jti`. A relay mints a fresh one for every
 * connection; the fleet object remembers each `jti` until its `exp`, so a token seen on the wire
 * cannot be used again. Fleet keys (the Worker's `FLEET_KEYS`, the relay's `--fleet-key-file` or
 * `RELAY_FLEET_KEY`) are their own secrets: a TURN secret or an API key never signs one.
 *
 * Web Crypto only: the relay (Node) mints, the Worker verifies, with the same code.
 */
import { isValidRelayId, RELAY_ID_RULE } from "./protocol.js";

export const FLEET_TOKEN_AUDIENCE = "relaykit-fleet";
/** A relay's tokens live this long: long enough for one connect, short enough that a stolen one soon dies. */
export const FLEET_TOKEN_TTL_SECONDS = 60;
/** The longest lifetime the fleet accepts in a token, whoever minted it. */
export const FLEET_TOKEN_MAX_LIFETIME_SECONDS = 300;
/** How far a relay's clock may be off from the Worker's. */
export const FLEET_CLOCK_SKEW_SECONDS = 30;
/** The shortest fleet key either side accepts: HMAC-SHA256 wants at least 32 bytes of secret. */
export const MIN_FLEET_KEY_LENGTH = 32;

export interface FleetTokenClaims {
  relayId: string;
  issuedAt: number;
  expiresAt: number;
  /** The token's one-time id. */
  nonce: string;
}

export type FleetTokenCheck =
  | { ok: true; claims: FleetTokenClaims }
  | { ok: false; reason: "malformed" | "bad-signature" | "expired" | "not-yet-valid" | "too-long-lived"; message: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  try {
    const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return null;
  }
}

function hmacKey(key: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(key), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

const HEADER = base64url(encoder.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));

/** Splits a comma-separated key list (FLEET_KEYS) and checks each; throws a TypeError saying what to fix. */
export function readFleetKeys(list: string): string[] {
  const keys = list.split(",").map((key) => key.trim()).filter((key) => key.length > 0);
  const short = keys.findIndex((key) => key.length < MIN_FLEET_KEY_LENGTH);
  if (short >= 0) throw new TypeError(`fleet key ${short + 1} is ${keys[short]!.length} characters; use at least ${MIN_FLEET_KEY_LENGTH} (e.g. \`openssl rand -base64 32\`)`);
  return keys;
}

export interface MintFleetTokenOptions {
  /** Unix seconds; defaults to the clock. */
  now?: number;
  ttlSeconds?: number;
  /** For tests: a fixed one-time id. */
  nonce?: string;
}

export async function mintFleetToken(key: string, relayId: string, options: MintFleetTokenOptions = {}): Promise<string> {
  if (!isValidRelayId(relayId)) throw new TypeError(`relay id ${JSON.stringify(relayId.slice(0, 70))} is not allowed: use ${RELAY_ID_RULE}`);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const nonce = options.nonce ?? base64url(crypto.getRandomValues(new Uint8Array(16)));
  const claims = { aud: FLEET_TOKEN_AUDIENCE, sub: relayId, iat: now, exp: now + (options.ttlSeconds ?? FLEET_TOKEN_TTL_SECONDS), jti: nonce };
  const signingInput = `${HEADER}.${base64url(encoder.encode(JSON.stringify(claims)))}`;
  const signature = await crypto.subtle.sign("HMAC", await hmacKey(key, "sign"), encoder.encode(signingInput));
  return `${signingInput}.${base64url(new Uint8Array(signature))}`;
}

/**
 * Checks a fleet token against every key (rotation: all verify), then its claims. Never throws.
 * Replay is the caller's to check: remember `claims.nonce` until `claims.expiresAt`.
 */
export async function verifyFleetToken(token: string, keys: readonly string[], now = Math.floor(Date.now() / 1000)): Promise<FleetTokenCheck> {
  const malformed = { ok: false, reason: "malformed", message: "the fleet token is not a JWT minted by a relaykit relay" } as const;
  if (token.length > 2048) return malformed;
  const parts = token.split(".");
  if (parts.length !== 3) return malformed;
  const [header, payload, signature] = parts as [string, string, string];
  const signatureBytes = fromBase64url(signature);
  const payloadBytes = fromBase64url(payload);
  if (header !== HEADER || signatureBytes === null || payloadBytes === null) return malformed;

  let matched = false;
  // Every key is tried, so the time taken does not tell which one matched; crypto.subtle.verify compares in constant time.
  for (const key of keys) {
    matched = (await crypto.subtle.verify("HMAC", await hmacKey(key, "verify"), signatureBytes, encoder.encode(`${header}.${payload}`))) || matched;
  }
  if (!matched) return { ok: false, reason: "bad-signature", message: "the fleet token is not signed with any of this Worker's FLEET_KEYS: check the relay's --fleet-key-file or RELAY_FLEET_KEY" };

  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(decoder.decode(payloadBytes)) as Record<string, unknown>;
  } catch {
    return malformed;
  }
  const { aud, sub, iat, exp, jti } = claims;
  if (aud !== FLEET_TOKEN_AUDIENCE || typeof sub !== "string" || !isValidRelayId(sub) || typeof jti !== "string" || jti.length < 16 || jti.length > 64) return malformed;
  if (typeof iat !== "number" || typeof exp !== "number" || !Number.isInteger(iat) || !Number.isInteger(exp)) return malformed;
  if (exp - iat > FLEET_TOKEN_MAX_LIFETIME_SECONDS || exp < iat) {
    return { ok: false, reason: "too-long-lived", message: `a fleet token may live at most ${FLEET_TOKEN_MAX_LIFETIME_SECONDS} s` };
  }
  if (exp + FLEET_CLOCK_SKEW_SECONDS < now) return { ok: false, reason: "expired", message: `the fleet token expired at ${new Date(exp * 1000).toISOString()}; the relay mints a new one per connection: check its clock` };
  if (iat - FLEET_CLOCK_SKEW_SECONDS > now) return { ok: false, reason: "not-yet-valid", message: "the fleet token was issued in the future: check the relay's clock" };
  return { ok: true, claims: { relayId: sub, issuedAt: iat, expiresAt: exp, nonce: jti } };
}
