/**
 * Webhook signatures: the Worker signs every POST (`signWebhook`), an app backend checks it
 * (`verifyWebhook`). WebCrypto only: runs on Workers, Node >= 20 and in browsers.
 *
 *   Relaykit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=<…>]
 *
 * One `v1` per configured secret (WEBHOOK_SECRET, comma-separated, current first), so an app that
 * still holds the old secret keeps verifying while secrets rotate. The timestamp is inside the MAC,
 * and `verifyWebhook` refuses one further than the tolerance from now, so a captured request cannot
 * be replayed later. Verify the raw body exactly as received, before any JSON parsing.
 */
import { parseWebhookEvent, type WebhookEvent } from "./events.js";

export const SIGNATURE_HEADER = "Relaykit-Signature";
export const EVENT_ID_HEADER = "Relaykit-Event-Id";
export const EVENT_TYPE_HEADER = "Relaykit-Event-Type";
/** How far (either way) a signature's timestamp may be from the verifier's clock. */
export const DEFAULT_TOLERANCE_SECONDS = 300;
/** `v1` values read from one header at most: a longer list is refused as malformed. */
export const MAX_SIGNATURES_PER_HEADER = 8;

const encoder = new TextEncoder();

async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}

const toHex = (bytes: ArrayBuffer): string => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");

function fromHex(hex: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[0-9a-f]{64}$/i.test(hex)) return null;
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** The signed text: the timestamp, a dot, and the raw body. */
const signedPayload = (timestamp: number, body: string): Uint8Array<ArrayBuffer> => Uint8Array.from(encoder.encode(`${timestamp}.${body}`));

/** The `Relaykit-Signature` value for `body` at `timestamp` (unix seconds): one v1 per secret, in order. */
export async function signWebhook(secrets: readonly string[], body: string, timestamp: number): Promise<string> {
  if (secrets.length === 0) throw new Error("signWebhook needs at least one secret");
  const payload = signedPayload(timestamp, body);
  const signatures = await Promise.all(secrets.map(async (secret) => toHex(await crypto.subtle.sign("HMAC", await hmacKey(secret, "sign"), payload))));
  return [`t=${timestamp}`, ...signatures.map((sig) => `v1=${sig}`)].join(",");
}

export type WebhookFailure =
  /** No Relaykit-Signature header (or an empty one): the request did not come from relaykit, or a proxy dropped the header. */
  | "missing-signature"
  /** The header is not `t=<unix seconds>,v1=<64 hex>[,v1=…]`. */
  | "malformed-signature"
  /** t is older than the tolerance: a replay, a very late retry, or this server's clock is off. */
  | "timestamp-too-old"
  /** t is further in the future than the tolerance: a clock is off. */
  | "timestamp-in-future"
  /** No v1 matches under any of your secrets: the body was changed, or the secret differs from WEBHOOK_SECRET. */
  | "signature-mismatch"
  /** Signed correctly but the body is not a webhook event (should not happen; update this helper). */
  | "bad-event"
  /** verifyWebhook was called without a secret. */
  | "no-secret";

export type WebhookVerification = { ok: true; event: WebhookEvent } | { ok: false; reason: WebhookFailure; message: string };

export interface VerifyWebhookOptions {
  /** The raw request body, exactly as received (e.g. `await request.text()`). */
  body: string;
  /** The Relaykit-Signature header's value, or null/undefined when absent. */
  signature: string | null | undefined;
  /** The secret(s) you share with the Worker's WEBHOOK_SECRET: a match under any one verifies. */
  secrets: string | readonly string[];
  /** Default DEFAULT_TOLERANCE_SECONDS (300). */
  toleranceSeconds?: number;
  /** The verifier's clock, unix seconds (default: now). For tests. */
  nowSeconds?: number;
}

interface ParsedHeader {
  timestamp: number;
  signatures: Uint8Array<ArrayBuffer>[];
}

function parseHeader(value: string): ParsedHeader | null {
  let timestamp: number | null = null;
  const signatures: Uint8Array<ArrayBuffer>[] = [];
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) return null;
    const key = part.slice(0, eq).trim();
    const text = part.slice(eq + 1).trim();
    if (key === "t") {
      if (timestamp !== null || !/^\d{1,12}$/.test(text)) return null;
      timestamp = Number(text);
    } else if (key === "v1") {
      const bytes = fromHex(text);
      if (bytes === null || signatures.length >= MAX_SIGNATURES_PER_HEADER) return null;
      signatures.push(bytes);
    }
    // Other keys (a future scheme) are skipped.
  }
  return timestamp === null || signatures.length === 0 ? null : { timestamp, signatures };
}

const fail = (reason: WebhookFailure, message: string): WebhookVerification => ({ ok: false, reason, message });

/**
 * Checks a webhook request: the header's form, its timestamp against the tolerance, then each v1
 * against each secret (crypto.subtle.verify: a constant-time comparison). On success, the parsed event.
 */
export async function verifyWebhook(options: VerifyWebhookOptions): Promise<WebhookVerification> {
  const secrets = (typeof options.secrets === "string" ? [options.secrets] : [...options.secrets]).filter((s) => s.length > 0);
  if (secrets.length === 0) return fail("no-secret", "pass the webhook secret (WEBHOOK_SECRET's value) as `secrets`");
  const header = options.signature?.trim() ?? "";
  if (header === "") return fail("missing-signature", `no ${SIGNATURE_HEADER} header: this request was not sent by relaykit, or something on the way removed the header`);
  const parsed = parseHeader(header);
  if (parsed === null) return fail("malformed-signature", `${SIGNATURE_HEADER} must be "t=<unix seconds>,v1=<64 hex digits>" (more v1 during a secret rotation)`);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (parsed.timestamp < now - tolerance) {
    return fail("timestamp-too-old", `signed ${now - parsed.timestamp} s ago, more than the ${tolerance} s tolerance: a replayed request, or this server's clock is behind`);
  }
  if (parsed.timestamp > now + tolerance) {
    return fail("timestamp-in-future", `signed ${parsed.timestamp - now} s in the future, more than the ${tolerance} s tolerance: this server's clock is behind, or the sender's ahead`);
  }
  const payload = signedPayload(parsed.timestamp, options.body);
  let matched = false;
  for (const secret of secrets) {
    const key = await hmacKey(secret, "verify");
    for (const signature of parsed.signatures) {
      if (await crypto.subtle.verify("HMAC", key, signature, payload)) matched = true;
    }
  }
  if (!matched) {
    return fail("signature-mismatch", "no signature matches: verify the raw body exactly as received, with the same secret as the Worker's WEBHOOK_SECRET");
  }
  let json: unknown;
  try {
    json = JSON.parse(options.body);
  } catch {
    return fail("bad-event", "the signed body is not JSON");
  }
  const event = parseWebhookEvent(json);
  if (typeof event === "string") return fail("bad-event", event);
  return { ok: true, event };
}
