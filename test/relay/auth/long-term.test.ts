/**
 * The long-term credential check (RFC 8489 §9.2.4) with TURN REST credentials, on real STUN messages built with
 * the codec and credentials minted by the shared keyring.
 */
import { describe, expect, it, vi } from "vitest";
import { DEFAULT_KEY_CACHE_SIZE, type AuthResult, LongTermAuthenticator } from "../../../relay/auth/long-term.js";
import { NonceIssuer } from "../../../relay/auth/nonce.js";
import { encodeErrorCode, encodeRequestedTransport, encodeText } from "../../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { PasswordAlgorithm, longTermKey } from "../../../relay/stun/integrity.js";
import { type StunMessage, decodeStunMessage } from "../../../relay/stun/message.js";
import { TurnKeyring } from "../../../shared/turn/credentials.js";

const REALM = "relay.example.org";
const CLIENT = "udp:192.0.2.1:50000";
const NOW_S = 1_750_000_000;
const NOW_MS = NOW_S * 1000 + 250;
const SECRET = "first-secret-0123456789";
const OLD_SECRET = "old-secret-9876543210";

interface Setup {
  keyring?: TurnKeyring;
  keyCacheSize?: number;
  maxTtlSeconds?: number;
  clockSkewSeconds?: number;
}

function setup(options: Setup = {}) {
  const keyring = options.keyring ?? new TurnKeyring([SECRET]);
  const nonces = new NonceIssuer({ secret: Buffer.alloc(32, 5), lifetimeSeconds: 600 });
  const auth = new LongTermAuthenticator({
    keyring,
    realm: REALM,
    nonces,
    ...(options.keyCacheSize !== undefined ? { keyCacheSize: options.keyCacheSize } : {}),
    ...(options.maxTtlSeconds !== undefined ? { maxTtlSeconds: options.maxTtlSeconds } : {}),
    ...(options.clockSkewSeconds !== undefined ? { clockSkewSeconds: options.clockSkewSeconds } : {}),
  });
  return { keyring, nonces, auth };
}

interface RequestSpec {
  username?: string | Uint8Array | null;
  realm?: string | null;
  nonce?: string | null;
  /** Password the client derives its key from; the key uses `keyRealm` (default: `realm`). */
  password?: string;
  keyRealm?: string;
  /** Which integrity attributes to send: "sha1" (default), "sha256", "both", or "none". */
  integrity?: "sha1" | "sha256" | "both" | "none";
  sha256Length?: number;
  /** Key for MESSAGE-INTEGRITY when it should differ from the MESSAGE-INTEGRITY-SHA256 key. */
  sha1Key?: Uint8Array;
  extra?: StunAttributeValue[];
}

function request(spec: RequestSpec): StunMessage {
  const attributes: StunAttributeValue[] = [encodeRequestedTransport(17)];
  const username = spec.username ?? null;
  if (typeof username === "string") attributes.push(encodeText(AttributeType.Username, username));
  else if (username !== null) attributes.push({ type: AttributeType.Username, value: username });
  const realm = spec.realm === undefined ? REALM : spec.realm;
  if (realm !== null) attributes.push(encodeText(AttributeType.Realm, realm));
  if (spec.nonce !== null && spec.nonce !== undefined) attributes.push(encodeText(AttributeType.Nonce, spec.nonce));
  attributes.push(...(spec.extra ?? []));
  const key = longTermKey(typeof username === "string" ? username : "", spec.keyRealm ?? realm ?? REALM, spec.password ?? "");
  const integrity = spec.integrity ?? "sha1";
  const buffer = buildStunMessage({
    method: StunMethod.Allocate,
    messageClass: StunClass.Request,
    transactionId: newTransactionId(),
    attributes,
    ...(integrity === "sha1" || integrity === "both" ? { messageIntegrityKey: spec.sha1Key ?? key } : {}),
    ...(integrity === "sha256" || integrity === "both" ? { messageIntegritySha256Key: key } : {}),
    ...(spec.sha256Length !== undefined ? { messageIntegritySha256Length: spec.sha256Length } : {}),
    fingerprint: true,
  });
  const decoded = decodeStunMessage(buffer);
  if (!decoded.ok) throw new Error(decoded.reason);
  return decoded.message;
}

/** A request carrying `credential` and a fresh nonce for CLIENT, as a client sends after the first 401. */
function signedRequest(nonces: NonceIssuer, credential: { username: string; password: string }, extra: Partial<RequestSpec> = {}): StunMessage {
  return request({ username: credential.username, password: credential.password, nonce: nonces.issue(CLIENT, NOW_MS), ...extra });
}

function passwordAlgorithm(algorithm: number, parameters: Uint8Array = new Uint8Array(0)): StunAttributeValue {
  const value = Buffer.alloc(4 + parameters.length);
  value.writeUInt16BE(algorithm, 0);
  value.writeUInt16BE(parameters.length, 2);
  value.set(parameters, 4);
  return { type: AttributeType.PasswordAlgorithm, value };
}

/** A failure's reason must fit an ERROR-CODE attribute, or the caller's response builder would throw. */
function expectFailure(result: AuthResult, code: 400 | 401 | 438): string {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error("unreachable");
  expect(result.code).toBe(code);
  expect(() => encodeErrorCode(result.code, result.reason)).not.toThrow();
  expect(result.reason).toMatch(/^[\x20-\x7e]+$/);
  return result.reason;
}

describe("LongTermAuthenticator: success", () => {
  it("accepts a minted credential and returns the user, the expiry and the key that verified", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 3600, NOW_S);
    const result = await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS);
    expect(result).toEqual({
      ok: true,
      username: credential.username,
      userId: "alice",
      expiresAt: NOW_S + 3600,
      key: longTermKey(credential.username, REALM, credential.password),
      integrity: "message-integrity",
    });
    expect(auth.cachedKeyCount).toBe(1);
  });

  it("accepts a request with only MESSAGE-INTEGRITY-SHA256, full length or truncated to 16 bytes", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("bob", 600, NOW_S);
    for (const sha256Length of [32, 16]) {
      const result = await auth.authenticate(signedRequest(nonces, credential, { integrity: "sha256", sha256Length }), CLIENT, NOW_MS);
      expect(result).toMatchObject({ ok: true, userId: "bob", integrity: "message-integrity-sha256" });
    }
  });

  it("checks MESSAGE-INTEGRITY-SHA256 rather than MESSAGE-INTEGRITY when both are present", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("carol", 600, NOW_S);
    // MESSAGE-INTEGRITY made with a wrong key, MESSAGE-INTEGRITY-SHA256 with the right one: accepted.
    const result = await auth.authenticate(signedRequest(nonces, credential, { integrity: "both", sha1Key: Buffer.alloc(16) }), CLIENT, NOW_MS);
    expect(result).toMatchObject({ ok: true, integrity: "message-integrity-sha256" });
    // And the other way round: refused.
    const wrongSha256 = request({ username: credential.username, password: "wrong", nonce: nonces.issue(CLIENT, NOW_MS), integrity: "sha256" });
    expectFailure(await auth.authenticate(wrongSha256, CLIENT, NOW_MS), 401);
  });

  it("accepts an explicit PASSWORD-ALGORITHM of MD5", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("dave", 600, NOW_S);
    const result = await auth.authenticate(signedRequest(nonces, credential, { extra: [passwordAlgorithm(PasswordAlgorithm.Md5)] }), CLIENT, NOW_MS);
    expect(result.ok).toBe(true);
  });

  it("verifies with the second secret during rotation, and returns that secret's key", async () => {
    const issuedUnderOld = await new TurnKeyring([OLD_SECRET]).mint("erin", 600, NOW_S);
    const { nonces, auth } = setup({ keyring: new TurnKeyring([SECRET, OLD_SECRET]) });
    const result = await auth.authenticate(signedRequest(nonces, issuedUnderOld), CLIENT, NOW_MS);
    expect(result).toMatchObject({ ok: true, userId: "erin", key: longTermKey(issuedUnderOld.username, REALM, issuedUnderOld.password) });
  });

  it("derives a key under every secret", async () => {
    const keyring = new TurnKeyring([SECRET, OLD_SECRET]);
    const { nonces, auth } = setup({ keyring });
    const credential = await keyring.mint("frank", 600, NOW_S);
    const message = signedRequest(nonces, credential);
    const passwords = vi.spyOn(keyring, "passwords");
    const result = await auth.authenticate(message, CLIENT, NOW_MS);
    expect(result.ok).toBe(true);
    expect(passwords).toHaveBeenCalledTimes(1);
    expect((await passwords.mock.results[0]!.value as string[]).length).toBe(2);
  });

  it("allows an expiry within the clock skew", async () => {
    const { keyring, nonces, auth } = setup({ clockSkewSeconds: 30 });
    const credential = await keyring.mint("gina", 10, NOW_S - 30);
    expect((await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS)).ok).toBe(true);
  });
});

describe("LongTermAuthenticator: failures", () => {
  it("answers a request without MESSAGE-INTEGRITY with 401, and challenge() gives our realm and a nonce for that client", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    const result = await auth.authenticate(request({ username: credential.username, nonce: nonces.issue(CLIENT, NOW_MS), integrity: "none" }), CLIENT, NOW_MS);
    expectFailure(result, 401);
    expectFailure(await auth.authenticate(request({ integrity: "none", realm: null }), CLIENT, NOW_MS), 401);
    const challenge = auth.challenge(CLIENT, NOW_MS);
    expect(challenge.realm).toBe(REALM);
    expect(nonces.check(challenge.nonce, CLIENT, NOW_MS)).toBe("valid");
    expect(nonces.check(challenge.nonce, "udp:192.0.2.9:1", NOW_MS)).toBe("invalid");
  });

  it.each([
    ["USERNAME", { username: null }],
    ["REALM", { realm: null }],
    ["NONCE", { nonce: null }],
  ] as const)("answers 400 when MESSAGE-INTEGRITY comes without %s", async (name, omit) => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    const message = request({ username: credential.username, password: credential.password, nonce: nonces.issue(CLIENT, NOW_MS), ...omit });
    expect(expectFailure(await auth.authenticate(message, CLIENT, NOW_MS), 400)).toContain(name);
  });

  it("answers 400 to a USERNAME that is not UTF-8", async () => {
    const { nonces, auth } = setup();
    const message = request({ username: Buffer.from([0xff, 0xfe, 0x3a]), nonce: nonces.issue(CLIENT, NOW_MS) });
    expectFailure(await auth.authenticate(message, CLIENT, NOW_MS), 400);
  });

  it("answers 400 to a PASSWORD-ALGORITHM other than MD5, or a malformed one", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    const sha256 = signedRequest(nonces, credential, { extra: [passwordAlgorithm(PasswordAlgorithm.Sha256)] });
    expect(expectFailure(await auth.authenticate(sha256, CLIENT, NOW_MS), 400)).toMatch(/PASSWORD-ALGORITHM 0x0002 is not supported.*MD5/);
    const short = signedRequest(nonces, credential, { extra: [{ type: AttributeType.PasswordAlgorithm, value: Buffer.from([0, 1]) }] });
    expectFailure(await auth.authenticate(short, CLIENT, NOW_MS), 400);
    const badLength = Buffer.from([0, 1, 0, 9]);
    expectFailure(await auth.authenticate(signedRequest(nonces, credential, { extra: [{ type: AttributeType.PasswordAlgorithm, value: badLength }] }), CLIENT, NOW_MS), 400);
  });

  it("answers 438 to a stale nonce (the clock moved past its lifetime)", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 3600, NOW_S);
    const message = signedRequest(nonces, credential);
    expectFailure(await auth.authenticate(message, CLIENT, NOW_MS + 601_000), 438);
  });

  it("answers 438 to a nonce issued to another client address", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    const message = request({ username: credential.username, password: credential.password, nonce: nonces.issue("udp:198.51.100.7:4000", NOW_MS) });
    expectFailure(await auth.authenticate(message, CLIENT, NOW_MS), 438);
  });

  it("answers 438 to a tampered or made-up nonce", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    const nonce = nonces.issue(CLIENT, NOW_MS);
    const tampered = `${nonce.slice(0, -1)}${nonce.endsWith("A") ? "B" : "A"}`;
    for (const bad of [tampered, "obMatt+/AAAAsomething", "x"]) {
      const message = request({ username: credential.username, password: credential.password, nonce: bad });
      expectFailure(await auth.authenticate(message, CLIENT, NOW_MS), 438);
    }
  });

  it("answers 401 to a realm that is not ours, even with a key consistent with it", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    const message = signedRequest(nonces, credential, { realm: "other.example" });
    expect(expectFailure(await auth.authenticate(message, CLIENT, NOW_MS), 401)).toContain("REALM");
  });

  it("answers 401 to the right realm with a key made for another realm", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    expectFailure(await auth.authenticate(signedRequest(nonces, credential, { keyRealm: "other.example" }), CLIENT, NOW_MS), 401);
  });

  it("answers 401 to an expired credential", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 60, NOW_S - 3600);
    expect(expectFailure(await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS), 401)).toContain("expired");
  });

  it("answers 401 to a credential expiring further ahead than the max TTL", async () => {
    const { keyring, nonces, auth } = setup({ maxTtlSeconds: 3600 });
    const credential = await keyring.mint("alice", 7200, NOW_S);
    expectFailure(await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS), 401);
  });

  it("answers 401 to a wrong password, a secret we do not have, or a malformed username", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    expectFailure(await auth.authenticate(signedRequest(nonces, { ...credential, password: "guess" }), CLIENT, NOW_MS), 401);
    const foreign = await new TurnKeyring(["someone-elses-secret"]).mint("alice", 600, NOW_S);
    expectFailure(await auth.authenticate(signedRequest(nonces, foreign), CLIENT, NOW_MS), 401);
    for (const username of ["alice", `${NOW_S + 60}:bad:id`, `${NOW_S + 60}:`, `-1:alice`]) {
      expectFailure(await auth.authenticate(signedRequest(nonces, { username, password: credential.password }), CLIENT, NOW_MS), 401);
    }
    expect(auth.cachedKeyCount).toBe(0);
  });

  it("answers 401 to usernames that are Object.prototype property names, with or without a REST expiry", async () => {
    const { nonces, auth } = setup();
    const names = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];
    for (const name of names) {
      for (const username of [name, `${NOW_S + 60}:${name}`]) {
        for (const password of ["", "undefined", "[object Object]", "function Object() { [native code] }"]) {
          expectFailure(await auth.authenticate(signedRequest(nonces, { username, password }), CLIENT, NOW_MS), 401);
        }
      }
    }
    expect(auth.cachedKeyCount).toBe(0);
  });

  it("treats a genuinely minted `__proto__` user like any other, without touching Object.prototype", async () => {
    const { keyring, nonces, auth } = setup();
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    const credential = await keyring.mint("__proto__", 600, NOW_S);
    expect(await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS)).toMatchObject({ ok: true, userId: "__proto__" });
    expect(await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS)).toMatchObject({ ok: true, userId: "__proto__" });
    expect(auth.cachedKeyCount).toBe(1);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
  });
});

describe("LongTermAuthenticator: key cache", () => {
  it("derives a user's keys once, then reuses them for the allocation's later requests", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    const passwords = vi.spyOn(keyring, "passwords");
    for (let i = 0; i < 5; i++) expect((await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS)).ok).toBe(true);
    expect(passwords).toHaveBeenCalledTimes(1);
  });

  it("still checks the password on a cache hit, and expiry before the cache", async () => {
    const { keyring, nonces, auth } = setup();
    const credential = await keyring.mint("alice", 600, NOW_S);
    expect((await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS)).ok).toBe(true);
    expectFailure(await auth.authenticate(signedRequest(nonces, { ...credential, password: "guess" }), CLIENT, NOW_MS), 401);
    const later = NOW_MS + 700_000;
    const lateRequest = request({ username: credential.username, password: credential.password, nonce: nonces.issue(CLIENT, later) });
    expectFailure(await auth.authenticate(lateRequest, CLIENT, later), 401);
  });

  it("stays within keyCacheSize, evicting the least recently used", async () => {
    const { keyring, nonces, auth } = setup({ keyCacheSize: 3 });
    const credentials = await Promise.all(Array.from({ length: 10 }, (_, i) => keyring.mint(`user${i}`, 600, NOW_S)));
    for (const credential of credentials) {
      expect((await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS)).ok).toBe(true);
      expect(auth.cachedKeyCount).toBeLessThanOrEqual(3);
    }
    expect(auth.cachedKeyCount).toBe(3);
    // user7..user9 are cached; using user7 again makes user8 the oldest, so user0 evicts user8.
    const passwords = vi.spyOn(keyring, "passwords");
    await auth.authenticate(signedRequest(nonces, credentials[7]!), CLIENT, NOW_MS);
    expect(passwords).toHaveBeenCalledTimes(0);
    await auth.authenticate(signedRequest(nonces, credentials[0]!), CLIENT, NOW_MS);
    expect(passwords).toHaveBeenCalledTimes(1);
    await auth.authenticate(signedRequest(nonces, credentials[7]!), CLIENT, NOW_MS);
    await auth.authenticate(signedRequest(nonces, credentials[9]!), CLIENT, NOW_MS);
    expect(passwords).toHaveBeenCalledTimes(1);
    await auth.authenticate(signedRequest(nonces, credentials[8]!), CLIENT, NOW_MS);
    expect(passwords).toHaveBeenCalledTimes(2);
    expect(auth.cachedKeyCount).toBe(3);
  });

  it("caches nothing with keyCacheSize 0, and defaults to DEFAULT_KEY_CACHE_SIZE", async () => {
    const { keyring, nonces, auth } = setup({ keyCacheSize: 0 });
    const credential = await keyring.mint("alice", 600, NOW_S);
    expect((await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS)).ok).toBe(true);
    expect(auth.cachedKeyCount).toBe(0);
    expect(DEFAULT_KEY_CACHE_SIZE).toBe(10_000);
  });

  it("does not let failed attempts into the cache", async () => {
    const { keyring, nonces, auth } = setup();
    for (let i = 0; i < 50; i++) {
      const credential = await keyring.mint(`mallory${i}`, 600, NOW_S);
      expectFailure(await auth.authenticate(signedRequest(nonces, { ...credential, password: "guess" }), CLIENT, NOW_MS), 401);
    }
    expect(auth.cachedKeyCount).toBe(0);
  });
});

describe("LongTermAuthenticator: robustness", () => {
  it("keeps no state for a flood of 100k challenges and unauthenticated requests", async () => {
    const { nonces, auth } = setup();
    const issuerProperties = Object.getOwnPropertyNames(nonces).sort();
    for (let i = 0; i < 100_000; i++) {
      const challenge = auth.challenge(`udp:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:${1024 + (i % 60_000)}`, NOW_MS + i);
      if (challenge.realm !== REALM || challenge.nonce.length !== 35) throw new Error(`bad challenge ${i}`);
    }
    const unauthenticated = request({ integrity: "none" });
    for (let i = 0; i < 1_000; i++) {
      expectFailure(await auth.authenticate(unauthenticated, `udp:10.1.${i >> 8}.${i & 255}:9`, NOW_MS), 401);
    }
    expect(auth.cachedKeyCount).toBe(0);
    expect(Object.isFrozen(nonces)).toBe(true);
    expect(Object.getOwnPropertyNames(nonces).sort()).toEqual(issuerProperties);
  });

  it("never throws on random text in USERNAME, REALM and NONCE", async () => {
    const { nonces, auth } = setup();
    const random = (length: number) => Buffer.from(Array.from({ length }, () => Math.floor(Math.random() * 256)));
    for (let i = 0; i < 300; i++) {
      const attributes: StunAttributeValue[] = [
        { type: AttributeType.Username, value: random(Math.floor(Math.random() * 40)) },
        { type: AttributeType.Realm, value: i % 3 === 0 ? Buffer.from(REALM) : random(Math.floor(Math.random() * 40)) },
        { type: AttributeType.Nonce, value: i % 2 === 0 ? Buffer.from(nonces.issue(CLIENT, NOW_MS)) : random(Math.floor(Math.random() * 800)) },
      ];
      const buffer = buildStunMessage({ method: StunMethod.Refresh, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes, messageIntegrityKey: random(16) });
      const decoded = decodeStunMessage(buffer);
      if (!decoded.ok) continue;
      const result = await auth.authenticate(decoded.message, CLIENT, NOW_MS);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(() => encodeErrorCode(result.code, result.reason)).not.toThrow();
    }
  });

  it("fails closed with 401 if the keyring throws", async () => {
    const keyring = new TurnKeyring([SECRET]);
    const { nonces, auth } = setup({ keyring });
    const credential = await keyring.mint("alice", 600, NOW_S);
    vi.spyOn(keyring, "passwords").mockRejectedValue(new Error("boom"));
    expectFailure(await auth.authenticate(signedRequest(nonces, credential), CLIENT, NOW_MS), 401);
  });

  it("refuses a realm it could not send, and a bad cache size", () => {
    const nonces = new NonceIssuer({ secret: Buffer.alloc(32), lifetimeSeconds: 600 });
    const keyring = new TurnKeyring([SECRET]);
    expect(() => new LongTermAuthenticator({ keyring, nonces, realm: "" })).toThrow(RangeError);
    expect(() => new LongTermAuthenticator({ keyring, nonces, realm: "r".repeat(128) })).toThrow(RangeError);
    expect(() => new LongTermAuthenticator({ keyring, nonces, realm: REALM, keyCacheSize: -1 })).toThrow(RangeError);
    expect(() => new LongTermAuthenticator({ keyring, nonces, realm: REALM, keyCacheSize: 1.5 })).toThrow(RangeError);
  });
});
