/** Stateless nonces: binding to the client address, expiry, tampering, and no state kept per nonce. */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { DEFAULT_NONCE_LIFETIME_SECONDS, DEFAULT_VERIFIED_NONCE_MEMO_SIZE, MIN_NONCE_SECRET_BYTES, NONCE_CLOCK_STEP_TOLERANCE_MS, NonceIssuer, newNonceSecret } from "../../../relay/auth/nonce.js";
import { encodeText } from "../../../relay/stun/attributes.js";
import { AttributeType } from "../../../relay/stun/constants.js";

const CLIENT = "udp:192.0.2.1:50000";
const NOW_MS = 1_750_000_000_123;
const LIFETIME_SECONDS = 600;

function issuer(secret: Uint8Array = Buffer.alloc(32, 7), verifiedMemoSize?: number): NonceIssuer {
  return new NonceIssuer({ secret, lifetimeSeconds: LIFETIME_SECONDS, ...(verifiedMemoSize !== undefined && { verifiedMemoSize }) });
}

/** Replaces the character at `index` with a different one from the nonce alphabet. */
function alter(nonce: string, index: number): string {
  const current = nonce[index]!;
  const replacement = current === "0" ? "1" : current === "." ? "-" : "0";
  return nonce.slice(0, index) + replacement + nonce.slice(index + 1);
}

describe("NonceIssuer", () => {
  it("issues short ASCII nonces that fit the NONCE attribute and need no quoting", () => {
    const nonce = issuer().issue(CLIENT, NOW_MS);
    expect(nonce).toMatch(/^[0-9a-f]{12}\.[A-Za-z0-9_-]{22}$/);
    expect(nonce.length).toBeLessThan(128);
    expect(() => encodeText(AttributeType.Nonce, nonce)).not.toThrow();
  });

  it("carries the first 16 bytes of HMAC-SHA1(secret, context, time, address) as node:crypto computes it, for any address", () => {
    const secret = Buffer.alloc(32, 7);
    const nonces = issuer(secret);
    for (const client of [CLIENT, "udp:[2001:db8::1]:50000", `tcp:${"x".repeat(300)}`, "udp:é:1", ""]) {
      const nonce = nonces.issue(client, NOW_MS);
      const time = NOW_MS.toString(16).padStart(12, "0");
      const mac = createHmac("sha1", secret).update(`relay-nonce-v2\n${time}${client}`, "utf8").digest().subarray(0, 16).toString("base64url");
      expect(nonce).toBe(`${time}.${mac}`);
      expect(nonces.check(nonce, client, NOW_MS)).toBe("valid");
    }
  });

  it("accepts its own nonce from the same client within the lifetime, up to the last millisecond", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    expect(nonces.check(nonce, CLIENT, NOW_MS)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, NOW_MS + LIFETIME_SECONDS * 1000)).toBe("valid");
  });

  it("calls a nonce past its lifetime stale", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    expect(nonces.check(nonce, CLIENT, NOW_MS + LIFETIME_SECONDS * 1000 + 1)).toBe("stale");
    expect(nonces.check(nonce, CLIENT, NOW_MS + 86_400_000)).toBe("stale");
  });

  it("tolerates a small backwards clock step, and calls a nonce from further in the future stale", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    expect(nonces.check(nonce, CLIENT, NOW_MS - NONCE_CLOCK_STEP_TOLERANCE_MS)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, NOW_MS - NONCE_CLOCK_STEP_TOLERANCE_MS - 1)).toBe("stale");
    expect(nonces.check(nonce, CLIENT, Number.NaN)).toBe("stale");
  });

  it("refuses a nonce issued to another client address as invalid", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    for (const other of ["udp:192.0.2.1:50001", "udp:192.0.2.2:50000", "tcp:192.0.2.1:50000", "", `${CLIENT} `]) {
      expect(nonces.check(nonce, other, NOW_MS)).toBe("invalid");
    }
  });

  it("refuses every single-character alteration, including of the time, as invalid", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    for (let i = 0; i < nonce.length; i++) expect(nonces.check(alter(nonce, i), CLIENT, NOW_MS)).toBe("invalid");
    // A later issue time with the old MAC: the usual attempt to extend a nonce.
    const [time, mac] = nonce.split(".");
    const extended = `${(Number.parseInt(time!, 16) + 1000).toString(16).padStart(12, "0")}.${mac}`;
    expect(nonces.check(extended, CLIENT, NOW_MS)).toBe("invalid");
  });

  it("refuses a nonce from an issuer with another secret (another process) as invalid", () => {
    const nonce = issuer(Buffer.alloc(32, 1)).issue(CLIENT, NOW_MS);
    expect(issuer(Buffer.alloc(32, 2)).check(nonce, CLIENT, NOW_MS)).toBe("invalid");
  });

  it("never throws on any input, and calls garbage invalid", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    const inputs = [
      "",
      ".",
      "obMatt+/AAAA",
      nonce.toUpperCase(),
      `${nonce}x`,
      ` ${nonce}`,
      `${nonce}\n`,
      nonce.slice(0, -1),
      nonce.replace(".", ":"),
      "ffffffffffff.AAAAAAAAAAAAAAAAAAAAAA",
      "000000000000.AAAAAAAAAAAAAAAAAAAAAA",
      "__proto__",
      "constructor",
      "\u0000".repeat(35),
      "é".repeat(200),
      "a".repeat(100_000),
      "\ud800\udc00\ud800",
    ];
    for (const input of inputs) expect(nonces.check(input, CLIENT, NOW_MS)).toBe("invalid");
    for (let i = 0; i < 2_000; i++) {
      const random = String.fromCharCode(...Array.from({ length: Math.floor(Math.random() * 60) }, () => Math.floor(Math.random() * 0x10000)));
      expect(nonces.check(random, CLIENT, NOW_MS)).toBe("invalid");
    }
    // Not strings at all (only possible through a cast): still no throw.
    expect(nonces.check(undefined as unknown as string, CLIENT, NOW_MS)).toBe("invalid");
    expect(nonces.check(nonce, null as unknown as string, NOW_MS)).toBe("invalid");
  });

  it("keeps no state when issuing: frozen, and nothing remembered however many nonces it issues", () => {
    const nonces = issuer();
    expect(Object.isFrozen(nonces)).toBe(true);
    const before = Object.getOwnPropertyNames(nonces).sort();
    expect(before).toEqual(["lifetimeMs", "macKey", "verified", "verifiedMemoSize"]);
    for (let i = 0; i < 10_000; i++) nonces.issue(`udp:10.0.${i >> 8}.${i & 255}:${i}`, NOW_MS + i);
    expect(Object.getOwnPropertyNames(nonces).sort()).toEqual(before);
    expect(nonces.rememberedCount).toBe(0);
  });

  it("remembers nothing for nonces that fail the MAC: made-up, altered, or another client's", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    for (let i = 0; i < 1_000; i++) {
      expect(nonces.check(alter(nonce, i % nonce.length), CLIENT, NOW_MS)).toBe("invalid");
      expect(nonces.check(nonce, `udp:198.51.100.${i & 255}:${i}`, NOW_MS)).toBe("invalid");
      expect(nonces.check(`${(NOW_MS + i).toString(16).padStart(12, "0")}.AAAAAAAAAAAAAAAAAAAAAA`, CLIENT, NOW_MS)).toBe("invalid");
    }
    expect(nonces.rememberedCount).toBe(0);
  });

  it("after a nonce verified, judges it again from the memo exactly as before: valid, stale with age, invalid elsewhere", () => {
    const nonces = issuer();
    const nonce = nonces.issue(CLIENT, NOW_MS);
    expect(nonces.check(nonce, CLIENT, NOW_MS)).toBe("valid");
    expect(nonces.rememberedCount).toBe(1);
    expect(nonces.check(nonce, CLIENT, NOW_MS + 1000)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, NOW_MS + LIFETIME_SECONDS * 1000 + 1)).toBe("stale");
    expect(nonces.check(nonce, CLIENT, NOW_MS - NONCE_CLOCK_STEP_TOLERANCE_MS - 1)).toBe("stale");
    // The remembered nonce is this client's only: the same string from elsewhere, or a near miss, is still refused.
    expect(nonces.check(nonce, "udp:192.0.2.1:50001", NOW_MS)).toBe("invalid");
    for (let i = 0; i < nonce.length; i++) expect(nonces.check(alter(nonce, i), CLIENT, NOW_MS)).toBe("invalid");
    expect(nonces.check(`${nonce}x`, CLIENT, NOW_MS)).toBe("invalid");
    // A newer nonce for the same client replaces the old one in the memo; the old one still verifies by its MAC.
    const newer = nonces.issue(CLIENT, NOW_MS + 5000);
    expect(nonces.check(newer, CLIENT, NOW_MS + 5000)).toBe("valid");
    expect(nonces.check(nonce, CLIENT, NOW_MS + 5000)).toBe("valid");
    expect(nonces.rememberedCount).toBe(1);
  });

  it("bounds the memo: the oldest client goes first, and its nonce still verifies afterwards", () => {
    const nonces = issuer(Buffer.alloc(32, 7), 3);
    const clients = Array.from({ length: 10 }, (_, i) => `udp:192.0.2.${i}:4000`);
    const issued = clients.map((client) => nonces.issue(client, NOW_MS));
    clients.forEach((client, i) => expect(nonces.check(issued[i]!, client, NOW_MS)).toBe("valid"));
    expect(nonces.rememberedCount).toBe(3);
    clients.forEach((client, i) => expect(nonces.check(issued[i]!, client, NOW_MS)).toBe("valid"));
    expect(nonces.rememberedCount).toBe(3);
    const off = issuer(Buffer.alloc(32, 7), 0);
    expect(off.check(issued[0]!, clients[0]!, NOW_MS)).toBe("valid");
    expect(off.rememberedCount).toBe(0);
    expect(DEFAULT_VERIFIED_NONCE_MEMO_SIZE).toBeGreaterThan(0);
    expect(() => issuer(Buffer.alloc(32, 7), -1)).toThrow(RangeError);
    expect(() => issuer(Buffer.alloc(32, 7), 1.5)).toThrow(RangeError);
  });

  it("copies the secret, so changing the caller's array later changes nothing", () => {
    const secret = Buffer.alloc(32, 9);
    const nonces = issuer(secret);
    const nonce = nonces.issue(CLIENT, NOW_MS);
    secret.fill(0);
    expect(nonces.check(nonce, CLIENT, NOW_MS)).toBe("valid");
    expect(nonces.issue(CLIENT, NOW_MS)).toBe(nonce);
  });

  it("refuses a short secret or a lifetime that is not positive, and a nonsense issue time", () => {
    expect(() => new NonceIssuer({ secret: Buffer.alloc(MIN_NONCE_SECRET_BYTES - 1), lifetimeSeconds: 600 })).toThrow(RangeError);
    expect(() => new NonceIssuer({ secret: newNonceSecret(), lifetimeSeconds: 0 })).toThrow(RangeError);
    expect(() => new NonceIssuer({ secret: newNonceSecret(), lifetimeSeconds: Number.NaN })).toThrow(RangeError);
    const nonces = new NonceIssuer({ secret: newNonceSecret(), lifetimeSeconds: DEFAULT_NONCE_LIFETIME_SECONDS });
    expect(() => nonces.issue(CLIENT, Number.NaN)).toThrow(RangeError);
    expect(() => nonces.issue(CLIENT, -1)).toThrow(RangeError);
  });

  it("makes distinct random secrets", () => {
    const a = newNonceSecret();
    expect(a.length).toBeGreaterThanOrEqual(MIN_NONCE_SECRET_BYTES);
    expect(a.equals(newNonceSecret())).toBe(false);
  });
});
