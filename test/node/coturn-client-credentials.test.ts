/**
 * coturn's own client derives TURN REST credentials that our code accepts.
 *
 * `turnutils_uclient -W <secret> -u <user>` computes the username ("<expiry>:<user>") and the
 * password (base64 HMAC-SHA1 of the username under the secret) itself and never prints the
 * password. So a tiny STUN responder on 127.0.0.1 challenges its Allocate with 401 + REALM + NONCE,
 * and the retry's long-term-credential MESSAGE-INTEGRITY (RFC 8489 §9.2, §14.5) shows which password
 * it used: it verifies only under MD5(username ":" realm ":" password) for that password.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { readText } from "../../relay/stun/attributes.js";
import { AttributeType } from "../../relay/stun/constants.js";
import { longTermKey, verifyMessageIntegrity } from "../../relay/stun/integrity.js";
import { type StunMessage, decodeStunMessage, findAttribute } from "../../relay/stun/message.js";
import { TurnKeyring, checkTurnUsername, nowSeconds } from "../../shared/turn/credentials.js";
import { type AllocateCapture, captureAuthenticatedAllocate, findExecutable } from "./stun-capture.js";

const SECRET = "coturn-client-shared-secret";
const OTHER_SECRET = "a-different-shared-secret";
const USER_ID = "uclient.alice";
const REALM = "relaykit.test";
const NONCE = "4f1e2d3c5b6a7980";
const CAPTURE_TIMEOUT_MS = 10_000;

/** Decodes one STUN message with the relay's codec; throws, with the decoder's reason, on anything else. */
function decode(bytes: Buffer): StunMessage {
  const decoded = decodeStunMessage(bytes);
  if (!decoded.ok) throw new Error(`not a STUN message (${decoded.reason}): ${bytes.toString("hex")}`);
  return decoded.message;
}

/** A text attribute's value (USERNAME, REALM, NONCE), or undefined if absent; throws if it is not valid text. */
function textAttribute(message: StunMessage, type: number): string | undefined {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) return undefined;
  const text = readText(message, attribute);
  if (!text.ok) throw new Error(text.reason);
  return text.value;
}

/** Whether `message` carries MESSAGE-INTEGRITY made with `password` for its own USERNAME and REALM. */
function integrityWith(message: StunMessage, password: string): boolean {
  const username = textAttribute(message, AttributeType.Username)!;
  const realm = textAttribute(message, AttributeType.Realm)!;
  return verifyMessageIntegrity(message, longTermKey(username, realm, password));
}

describe("STUN long-term MESSAGE-INTEGRITY check", () => {
  it("verifies RFC 5769 §2.4's sample request with long-term authentication", () => {
    const sample = Buffer.from(
      [
        "00010060 2112a442 78ad3433 c6ad72c0 29da412e", // Binding request, length 96, cookie, transaction id
        "00060012 e3839ee3 8388e383 aae38383 e382afe3 82b90000", // USERNAME
        "0015001c 662f2f34 39396b39 35346436 4f4c3334 6f4c3946 53547679 36347341", // NONCE
        "0014000b 6578616d 706c652e 6f726700", // REALM
        "00080014 f6702465 6dd64a3e 02b8e071 2e85c9a2 8ca89666", // MESSAGE-INTEGRITY
      ]
        .join("")
        .replaceAll(" ", ""),
      "hex",
    );
    const message = decode(sample);
    const username = textAttribute(message, AttributeType.Username)!;
    expect(username).toBe("\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9");
    expect(textAttribute(message, AttributeType.Nonce)).toBe("f//499k954d6OL34oL9FSTvy64sA");
    expect(textAttribute(message, AttributeType.Realm)).toBe("example.org");
    // "TheMatrIX" is the password after SASLprep, as the RFC gives it.
    expect(verifyMessageIntegrity(message, longTermKey(username, "example.org", "TheMatrIX"))).toBe(true);
    expect(verifyMessageIntegrity(message, longTermKey(username, "example.org", "TheMatrix"))).toBe(false);
  });
});

describe("turnutils_uclient -W (coturn's TURN REST client)", () => {
  let capture: AllocateCapture;
  let startedAt: number;

  beforeAll(async () => {
    const uclient = findExecutable("turnutils_uclient");
    if (uclient === undefined) {
      throw new Error("turnutils_uclient (Debian package coturn) is not installed: run `bash scripts/install-test-prerequisites.sh`");
    }
    startedAt = nowSeconds();
    capture = await captureAuthenticatedAllocate(uclient, {
      // One client (-m 1), no RTCP allocation (-c), one message (-n 1), UDP to our responder.
      args: (port) => ["-W", SECRET, "-u", USER_ID, "-m", "1", "-n", "1", "-c", "-e", "127.0.0.1", "-p", String(port), "127.0.0.1"],
      realm: REALM,
      nonce: NONCE,
      timeoutMs: CAPTURE_TIMEOUT_MS,
    });
  }, CAPTURE_TIMEOUT_MS + 10_000);

  it("sends an Allocate without credentials, then retries with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY", () => {
    const { challenged, authenticated } = capture;
    expect(attributeTypes(challenged)).not.toContain(AttributeType.Username);
    expect(attributeTypes(challenged)).not.toContain(AttributeType.MessageIntegrity);
    expect(attributeTypes(authenticated)).toEqual(
      expect.arrayContaining([AttributeType.Username, AttributeType.Realm, AttributeType.Nonce, AttributeType.MessageIntegrity]),
    );
    expect(textAttribute(authenticated, AttributeType.Realm)).toBe(REALM);
    expect(textAttribute(authenticated, AttributeType.Nonce)).toBe(NONCE);
    // Only FINGERPRINT may follow MESSAGE-INTEGRITY. The decoder drops what it must ignore after
    // MESSAGE-INTEGRITY, so count bytes: none follow it, or exactly FINGERPRINT's 8 (the decoder only
    // accepts FINGERPRINT as the last attribute).
    const integrity = authenticated.messageIntegrity!;
    const after = authenticated.buffer.length - (integrity.offset + integrity.length);
    expect(after).toBe(authenticated.fingerprint === undefined ? 0 : 8);
  });

  it("uses a REST username our checkTurnUsername accepts, for the -u user", () => {
    const username = textAttribute(capture.authenticated, AttributeType.Username)!;
    const checked = checkTurnUsername(username);
    expect(checked, username).toMatchObject({ ok: true, userId: USER_ID });
    if (checked.ok) expect(checked.expiresAt).toBeGreaterThan(startedAt);
  });

  it("signs with the password our keyring derives from the same secret, which verify() accepts", async () => {
    const username = textAttribute(capture.authenticated, AttributeType.Username)!;
    const keyring = new TurnKeyring([SECRET]);
    const [password] = await keyring.passwords(username);
    expect(integrityWith(capture.authenticated, password!)).toBe(true);
    expect(await keyring.verify(username, password!)).toMatchObject({ ok: true, userId: USER_ID });
  });

  it("does not verify under a keyring of a different secret", async () => {
    const username = textAttribute(capture.authenticated, AttributeType.Username)!;
    const other = new TurnKeyring([OTHER_SECRET]);
    const [wrong] = await other.passwords(username);
    expect(integrityWith(capture.authenticated, wrong!)).toBe(false);
    const [right] = await new TurnKeyring([SECRET]).passwords(username);
    expect(await other.verify(username, right!)).toMatchObject({ ok: false, reason: "wrong-password" });
  });

  it("verifies during a rotation, under the secret that is not first", async () => {
    const username = textAttribute(capture.authenticated, AttributeType.Username)!;
    const rotating = new TurnKeyring([OTHER_SECRET, SECRET]);
    const matches = (await rotating.passwords(username)).map((password) => integrityWith(capture.authenticated, password));
    expect(matches).toEqual([false, true]);
  });

  it("does not verify once a byte of the signed message changes", async () => {
    const username = textAttribute(capture.authenticated, AttributeType.Username)!;
    const [password] = await new TurnKeyring([SECRET]).passwords(username);
    const key = longTermKey(username, REALM, password!);
    expect(verifyMessageIntegrity(capture.authenticated, key)).toBe(true);
    const tampered = Buffer.from(capture.authenticated.buffer);
    tampered[findAttribute(capture.authenticated, AttributeType.Username)!.offset]! ^= 0x01; // the expiry's first digit
    expect(verifyMessageIntegrity(decode(tampered), key)).toBe(false);
  });
});

function attributeTypes(message: StunMessage): number[] {
  return message.attributes.map((a) => a.type);
}
