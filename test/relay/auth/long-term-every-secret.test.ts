/**
 * The authenticator checks MESSAGE-INTEGRITY under every secret's key, whether or not an earlier one matched, so
 * the time taken does not tell which secret verified. Counted by wrapping the integrity checks (a module mock,
 * hence a file of its own).
 */
import { beforeEach, describe, expect, it, vi } from "vitest";
import { LongTermAuthenticator } from "../../../relay/auth/long-term.js";
import { NonceIssuer } from "../../../relay/auth/nonce.js";
import { encodeText } from "../../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId } from "../../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { longTermKey } from "../../../relay/stun/integrity.js";
import { type StunMessage, decodeStunMessage } from "../../../relay/stun/message.js";
import { TurnKeyring } from "../../../shared/turn/credentials.js";

const calls = vi.hoisted(() => ({ sha1: 0, sha256: 0 }));

vi.mock("../../../relay/stun/integrity.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../../relay/stun/integrity.js")>();
  return {
    ...original,
    verifyMessageIntegrity: (message: StunMessage, key: Uint8Array) => {
      calls.sha1++;
      return original.verifyMessageIntegrity(message, key);
    },
    verifyMessageIntegritySha256: (message: StunMessage, key: Uint8Array) => {
      calls.sha256++;
      return original.verifyMessageIntegritySha256(message, key);
    },
  };
});

const REALM = "relay.example.org";
const CLIENT = "tcp:[2001:db8::1]:443";
const NOW_S = 1_750_000_000;
const NOW_MS = NOW_S * 1000;
const SECRETS = ["secret-a-0123456789", "secret-b-0123456789", "secret-c-0123456789"];

function signed(nonces: NonceIssuer, username: string, password: string, sha256: boolean): StunMessage {
  const key = longTermKey(username, REALM, password);
  const buffer = buildStunMessage({
    method: StunMethod.Refresh,
    messageClass: StunClass.Request,
    transactionId: newTransactionId(),
    attributes: [
      encodeText(AttributeType.Username, username),
      encodeText(AttributeType.Realm, REALM),
      encodeText(AttributeType.Nonce, nonces.issue(CLIENT, NOW_MS)),
    ],
    ...(sha256 ? { messageIntegritySha256Key: key } : { messageIntegrityKey: key }),
  });
  const decoded = decodeStunMessage(buffer);
  if (!decoded.ok) throw new Error(decoded.reason);
  return decoded.message;
}

describe("LongTermAuthenticator: every secret is tried", () => {
  beforeEach(() => {
    calls.sha1 = 0;
    calls.sha256 = 0;
  });

  it.each([0, 1, 2])("checks all three keys when secret %i matches, and returns that secret's key", async (index) => {
    const nonces = new NonceIssuer({ secret: Buffer.alloc(32, 3), lifetimeSeconds: 600 });
    const auth = new LongTermAuthenticator({ keyring: new TurnKeyring(SECRETS), realm: REALM, nonces });
    const credential = await new TurnKeyring([SECRETS[index]!]).mint("alice", 600, NOW_S);
    const result = await auth.authenticate(signed(nonces, credential.username, credential.password, false), CLIENT, NOW_MS);
    expect(result).toMatchObject({ ok: true, key: longTermKey(credential.username, REALM, credential.password) });
    expect(calls).toEqual({ sha1: 3, sha256: 0 });
  });

  it("checks all three keys with MESSAGE-INTEGRITY-SHA256, and on a cache hit, and when none matches", async () => {
    const nonces = new NonceIssuer({ secret: Buffer.alloc(32, 3), lifetimeSeconds: 600 });
    const keyring = new TurnKeyring(SECRETS);
    const auth = new LongTermAuthenticator({ keyring, realm: REALM, nonces });
    const credential = await keyring.mint("bob", 600, NOW_S);
    expect((await auth.authenticate(signed(nonces, credential.username, credential.password, true), CLIENT, NOW_MS)).ok).toBe(true);
    expect((await auth.authenticate(signed(nonces, credential.username, credential.password, true), CLIENT, NOW_MS)).ok).toBe(true);
    expect((await auth.authenticate(signed(nonces, credential.username, "wrong", true), CLIENT, NOW_MS)).ok).toBe(false);
    expect(calls).toEqual({ sha1: 0, sha256: 9 });
  });
});
