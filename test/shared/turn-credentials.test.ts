/**
 * TURN REST credentials (shared/turn/credentials.ts), after draft-uberti-behave-turn-rest-00:
 * username "<unix-expiry>:<user-id>", password base64(HMAC-SHA1(secret, username)). Every relay that
 * implements the draft (coturn's use-auth-secret among them) recomputes the same password, so the
 * exact bytes matter: the HMAC is checked against RFC 2202 and the password against node:crypto.
 */
import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  MAX_CREDENTIAL_TTL_SECONDS,
  TurnCredentialError,
  TurnKeyring,
  checkTurnUsername,
  constantTimeEqual,
  hmacSha1,
  nowSeconds,
  turnPassword,
} from "../../shared/turn/credentials.js";
import { isValidUserId } from "../../shared/ids.js";
import { MAX_TURN_USER_LENGTH, parseTurnUser, roomMemberUser } from "../../shared/turn/turn-user.js";

/** A fixed clock, so expiry judgements do not depend on when the suite runs. */
const NOW = 1_700_000_000;

/** The password computed independently of the code under test. */
const nodePassword = (secret: string, username: string) => createHmac("sha1", secret).update(username).digest("base64");

const bytes = (length: number, value: number) => new Uint8Array(length).fill(value);
const hex = (data: Uint8Array) => Buffer.from(data).toString("hex");

describe("hmacSha1", () => {
  // RFC 2202 section 3, all seven HMAC-SHA1 cases, keys and data exactly as the RFC gives them.
  it.each([
    [1, bytes(20, 0x0b), "Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"],
    [2, "Jefe", "what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"],
    [3, bytes(20, 0xaa), bytes(50, 0xdd), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"],
    [4, Uint8Array.from(Buffer.from("0102030405060708090a0b0c0d0e0f10111213141516171819", "hex")), bytes(50, 0xcd), "4c9007f4026250c6bc8414f9bf50c86c2d7235da"],
    [5, bytes(20, 0x0c), "Test With Truncation", "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"],
    [6, bytes(80, 0xaa), "Test Using Larger Than Block-Size Key - Hash Key First", "aa4ae5e15272d00e95705637ce8a3b55ed402112"],
    [7, bytes(80, 0xaa), "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data", "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"],
  ])("matches RFC 2202 test case %i", async (_, key, data, digest) => {
    expect(hex(await hmacSha1(key, data))).toBe(digest);
  });

  it("gives RFC 2202 case 5's 96-bit truncation as its first 12 bytes", async () => {
    const digest = await hmacSha1(bytes(20, 0x0c), "Test With Truncation");
    expect(hex(digest.slice(0, 12))).toBe("4c1a03424b55e07fe7f27be1");
  });

  it("encodes string keys and messages as UTF-8", async () => {
    const expected = createHmac("sha1", Buffer.from("clé", "utf8")).update(Buffer.from("€:ü", "utf8")).digest("hex");
    expect(hex(await hmacSha1("clé", "€:ü"))).toBe(expected);
  });
});

describe("TurnKeyring.mint", () => {
  it("issues username <expiry>:<user id> with expiry = now + ttl", async () => {
    const credential = await new TurnKeyring(["s3cret"]).mint("alice", 3600, NOW);
    expect(credential).toEqual({ username: "1700003600:alice", password: expect.any(String), ttl: 3600, expiresAt: 1_700_003_600 });
  });

  it("signs with base64(HMAC-SHA1(secret, username)), exactly what node:crypto computes", async () => {
    const credential = await new TurnKeyring(["s3cret"]).mint("alice", 3600, NOW);
    expect(credential.password).toBe(nodePassword("s3cret", "1700003600:alice"));
    expect(credential.password).toMatch(/^[A-Za-z0-9+/]{27}=$/); // 20 bytes of base64
    expect(await turnPassword("s3cret", credential.username)).toBe(credential.password);
  });

  it("reads the clock when no time is given", async () => {
    const before = nowSeconds();
    const credential = await new TurnKeyring(["s3cret"]).mint("alice", 60);
    const after = nowSeconds();
    expect(credential.expiresAt).toBeGreaterThanOrEqual(before + 60);
    expect(credential.expiresAt).toBeLessThanOrEqual(after + 60);
    expect(credential.username).toBe(`${credential.expiresAt}:alice`);
  });

  it("keeps an allowed user id exactly as given, up to 128 characters", async () => {
    const keyring = new TurnKeyring(["s3cret"]);
    const everyAllowedCharacter = "AZaz09_.@+=-";
    expect((await keyring.mint(everyAllowedCharacter, 60, NOW)).username).toBe(`1700000060:${everyAllowedCharacter}`);
    expect((await keyring.mint("u".repeat(128), 60, NOW)).username).toBe(`1700000060:${"u".repeat(128)}`);
  });

  // A relay splits the username at the first ':' and an app may key accounting on the user id, so an
  // id that does not fit is refused outright rather than quietly changed into another user's id.
  it.each(["", "a:b", "a b", "a/b/c", "bad room!/b", "room/", "/peer", "é", "a\nb", "u".repeat(129)])("refuses to mint for user id %j", async (userId) => {
    const minting = new TurnKeyring(["s3cret"]).mint(userId, 60, NOW);
    await expect(minting).rejects.toBeInstanceOf(TurnCredentialError);
    await expect(minting).rejects.toThrow(/not allowed/);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])("refuses ttl %s", async (ttl) => {
    const minting = new TurnKeyring(["s3cret"]).mint("alice", ttl, NOW);
    await expect(minting).rejects.toBeInstanceOf(TurnCredentialError);
    await expect(minting).rejects.toThrow(/ttl/);
  });
});

describe("TurnKeyring secrets", () => {
  it.each([[[]], [[""]], [["  ", "\t"]]])("refuses to exist without a usable secret: %j", (secrets) => {
    expect(() => new TurnKeyring(secrets)).toThrow(TurnCredentialError);
  });

  it.each(["", " ", " , ,"])("refuses an empty list %j", (list) => {
    expect(() => TurnKeyring.fromList(list)).toThrow(TurnCredentialError);
  });

  it("reads a comma-separated list, trimming whitespace and dropping empty entries, first one first", () => {
    expect(TurnKeyring.fromList(" new ,\told,, ").secrets).toEqual(["new", "old"]);
  });

  it("signs with the trimmed first secret of a list", async () => {
    const credential = await TurnKeyring.fromList(" new , old").mint("alice", 60, NOW);
    expect(credential.password).toBe(nodePassword("new", credential.username));
  });

  it("lists the password under every secret, in order", async () => {
    expect(await new TurnKeyring(["new", "old"]).passwords("1700000060:alice")).toEqual([
      nodePassword("new", "1700000060:alice"),
      nodePassword("old", "1700000060:alice"),
    ]);
  });
});

describe("TurnKeyring.verify", () => {
  const policy = { now: NOW };
  const relay = new TurnKeyring(["new", "old"]);

  it("accepts its own credential and reports who and until when", async () => {
    const credential = await relay.mint("alice", 600, NOW);
    expect(await relay.verify(credential.username, credential.password, policy)).toEqual({ ok: true, expiresAt: NOW + 600, userId: "alice", user: { kind: "user", userId: "alice" } });
  });

  it("signs with the first secret only", async () => {
    const credential = await relay.mint("alice", 600, NOW);
    expect(credential.password).toBe(nodePassword("new", credential.username));
    expect(credential.password).not.toBe(nodePassword("old", credential.username));
  });

  it("accepts a credential signed with its second secret, as while a rotation is under way", async () => {
    const stillOnOld = await new TurnKeyring(["old"]).mint("alice", 600, NOW);
    expect(await relay.verify(stillOnOld.username, stillOnOld.password, policy)).toEqual({ ok: true, expiresAt: NOW + 600, userId: "alice", user: { kind: "user", userId: "alice" } });
  });

  it("refuses a credential signed with a secret it does not know, as wrong-password", async () => {
    const foreign = await new TurnKeyring(["unknown"]).mint("alice", 600, NOW);
    expect(await relay.verify(foreign.username, foreign.password, policy)).toMatchObject({ ok: false, reason: "wrong-password" });
  });

  it("refuses a password that belongs to another username", async () => {
    const alice = await relay.mint("alice", 600, NOW);
    const bob = await relay.mint("bob", 600, NOW);
    expect(await relay.verify(bob.username, alice.password, policy)).toMatchObject({ ok: false, reason: "wrong-password" });
  });

  it("judges expiry before the password: a correctly signed expired credential is expired", async () => {
    const credential = await relay.mint("alice", 60, NOW - 1000);
    expect(await relay.verify(credential.username, credential.password, policy)).toMatchObject({ ok: false, reason: "expired" });
  });

  it("refuses a malformed username even with the password computed for it", async () => {
    const username = "1700000060:a:b";
    expect(await relay.verify(username, nodePassword("new", username), policy)).toMatchObject({ ok: false, reason: "malformed" });
  });
});

describe("checkTurnUsername", () => {
  it("uses a 30 s clock skew and a 48 h maximum ttl by default", () => {
    expect(DEFAULT_CLOCK_SKEW_SECONDS).toBe(30);
    expect(MAX_CREDENTIAL_TTL_SECONDS).toBe(48 * 3600);
  });

  it("accepts a credential that expired no more than the skew ago", () => {
    expect(checkTurnUsername(`${NOW - 30}:alice`, { now: NOW })).toEqual({ ok: true, expiresAt: NOW - 30, userId: "alice", user: { kind: "user", userId: "alice" } });
  });

  it("refuses a credential that expired more than the skew ago", () => {
    const result = checkTurnUsername(`${NOW - 31}:alice`, { now: NOW });
    expect(result).toMatchObject({ ok: false, reason: "expired" });
    expect(!result.ok && result.message).toContain(new Date((NOW - 31) * 1000).toISOString());
  });

  it("applies a configured skew, including none", () => {
    expect(checkTurnUsername(`${NOW}:alice`, { now: NOW, clockSkewSeconds: 0 }).ok).toBe(true);
    expect(checkTurnUsername(`${NOW - 1}:alice`, { now: NOW, clockSkewSeconds: 0 })).toMatchObject({ ok: false, reason: "expired" });
    expect(checkTurnUsername(`${NOW - 100}:alice`, { now: NOW, clockSkewSeconds: 100 }).ok).toBe(true);
  });

  it("accepts an expiry up to the maximum ttl plus the skew ahead", () => {
    expect(checkTurnUsername(`${NOW + MAX_CREDENTIAL_TTL_SECONDS + 30}:alice`, { now: NOW }).ok).toBe(true);
  });

  it("refuses an expiry further ahead than the maximum ttl plus the skew: nobody issued it", () => {
    expect(checkTurnUsername(`${NOW + MAX_CREDENTIAL_TTL_SECONDS + 31}:alice`, { now: NOW })).toMatchObject({ ok: false, reason: "too-far-ahead" });
    expect(checkTurnUsername(`${NOW + 91}:alice`, { now: NOW, maxTtlSeconds: 60 })).toMatchObject({ ok: false, reason: "too-far-ahead" });
    expect(checkTurnUsername(`${NOW + 90}:alice`, { now: NOW, maxTtlSeconds: 60 }).ok).toBe(true);
  });

  it("reads the clock when no time is given", () => {
    expect(checkTurnUsername(`${nowSeconds() + 60}:alice`).ok).toBe(true);
    expect(checkTurnUsername(`${nowSeconds() - 3600}:alice`)).toMatchObject({ ok: false, reason: "expired" });
  });

  it.each([
    ["no colon", "alice"],
    ["no colon, digits only", "1700000060"],
    ["empty", ""],
    ["empty user id", "1700000060:"],
    ["empty expiry", ":alice"],
    ["user id with ':'", "1700000060:alice:admin"],
    ["non-numeric expiry", "soon:alice"],
    ["hex expiry", "0x6553f100:alice"],
    ["negative expiry", "-1700000060:alice"],
    ["fractional expiry", "1700000060.5:alice"],
    ["expiry of 13 digits", "1700000060000:alice"],
    ["non-ASCII digits", "١٧٠٠٠٠٠٠٦٠:alice"],
    ["space before the expiry", " 1700000060:alice"],
    ["space in the user id", "1700000060:al ice"],
    ["trailing newline", "1700000060:alice\n"],
    ["user id of 129 characters", `1700000060:${"u".repeat(129)}`],
    ["user id and expiry swapped", "alice:1700000060"],
  ])("refuses a malformed username: %s", (_, username) => {
    expect(checkTurnUsername(username, { now: NOW })).toMatchObject({ ok: false, reason: "malformed", message: expect.stringContaining("<unix-expiry>:<user-id>") });
  });

  it("judges the user id by the one user id rule (shared/ids.ts)", () => {
    expect(isValidUserId("alice@example.com")).toBe(true);
    expect(isValidUserId("alice:admin")).toBe(false);
    expect(checkTurnUsername(`${NOW + 60}:alice@example.com`, { now: NOW })).toEqual({ ok: true, expiresAt: NOW + 60, userId: "alice@example.com", user: { kind: "user", userId: "alice@example.com" } });
  });
});

describe("constantTimeEqual", () => {
  it.each([
    ["", ""],
    ["a", "a"],
    ["same password", "same password"],
    ["é€𝄞", "é€𝄞"],
  ])("says %j equals %j", (a, b) => {
    expect(constantTimeEqual(a, b)).toBe(true);
  });

  it.each([
    ["", "a"],
    ["abc", "abd"],
    ["abc", "xbc"],
    ["abc", "abcd"],
    ["abcd", "abc"],
    // Padding the shorter side with zero bytes must not make these equal: the lengths differ.
    ["a", "a\u0000"],
    ["é", "e"],
    ["ā", "ȁ"], // U+0101 and U+0201 share their low byte: whole characters are compared
  ])("says %j differs from %j", (a, b) => {
    expect(constantTimeEqual(a, b)).toBe(false);
  });
});

describe("room-scoped TURN users (<room>/<peer-id>)", () => {
  it("mints and verifies a room member's credential, and says which room and peer it names", async () => {
    const keyring = new TurnKeyring(["room-secret"]);
    const credential = await keyring.mint(roomMemberUser("standup-42", "ann@example.com"), 600, NOW);
    expect(credential.username).toBe(`${NOW + 600}:standup-42/ann@example.com`);
    expect(await keyring.verify(credential.username, credential.password, { now: NOW })).toEqual({
      ok: true,
      expiresAt: NOW + 600,
      userId: "standup-42/ann@example.com",
      user: { kind: "room-member", room: "standup-42", peerId: "ann@example.com" },
    });
  });

  it("reads the two forms apart: a plain user id never holds a '/', a room member splits at its only one", () => {
    expect(parseTurnUser("ann@example.com")).toEqual({ kind: "user", userId: "ann@example.com" });
    expect(parseTurnUser("a.b_c-d/x=y+z")).toEqual({ kind: "room-member", room: "a.b_c-d", peerId: "x=y+z" });
    for (const bad of ["", "/", "room/", "/peer", "a/b/c", "ro om/p", "room/p:q", `${"r".repeat(65)}/p`, `r/${"p".repeat(129)}`]) {
      expect(parseTurnUser(bad), bad).toBeNull();
    }
  });

  it("is never longer than the longest room name, the separator and the longest peer id", () => {
    const longest = roomMemberUser("r".repeat(64), "p".repeat(128));
    expect(longest.length).toBe(MAX_TURN_USER_LENGTH);
    expect(parseTurnUser(longest)).not.toBeNull();
    expect(() => roomMemberUser("no spaces", "p")).toThrow(/room name/);
    expect(() => roomMemberUser("room", "a:b")).toThrow(/peer id/);
  });
});
