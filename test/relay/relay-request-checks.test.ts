/**
 * Requests the relay must not act on, over real UDP, TCP and TLS: a wrong FINGERPRINT (RFC 8489
 * §7.3: silently discarded), a transaction id reused with other content (no retransmission, so no
 * cached answer); and over UDP, resends of cached answers, which go out under the per-source limit
 * for unauthenticated answers (a resend is not authenticated again).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ListenerAddress, RelayServer } from "../../relay/server/relay-server.js";
import { encodeLifetime, encodeRequestedTransport } from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId } from "../../relay/stun/builder.js";
import { StunClass, StunMethod } from "../../relay/stun/constants.js";
import { decodeStunMessage } from "../../relay/stun/message.js";
import { TurnTestClient, mint, startRelay, testCertificate, type ClientTransport } from "./turn-client.js";

const UDP = encodeRequestedTransport(17);
/** How long "no answer" is waited for: loopback answers come back in well under a millisecond. */
const SILENCE_MS = 400;

/** `message` with the last byte of its FINGERPRINT value flipped. */
function withWrongFingerprint(message: Buffer): Buffer {
  const damaged = Buffer.from(message);
  damaged[damaged.length - 1]! ^= 0xff;
  return damaged;
}

describe("requests the relay does not act on", () => {
  let relay: RelayServer;
  let listeners: ListenerAddress[] = [];
  let certificate: ReturnType<typeof testCertificate> | undefined;
  const clients: TurnTestClient[] = [];

  beforeAll(async () => {
    certificate = testCertificate();
    ({ relay } = await startRelay(["--min-port=44100", "--max-port=44199", ...certificate.flags, "--tls-listening-port=0"], undefined, (bound) => {
      listeners = bound;
    }));
  });

  afterAll(async () => {
    for (const opened of clients) opened.close();
    await relay?.stop();
    certificate?.remove();
  });

  describe.each<ClientTransport>(["udp", "tcp", "tls"])("over %s", (transport) => {
    const client = async () => {
      const port = listeners.find((listener) => listener.transport === transport)!.port;
      const opened = transport === "udp" ? await TurnTestClient.open(port) : await TurnTestClient.openStream(port, transport);
      clients.push(opened);
      return opened;
    };

    describe("FINGERPRINT", () => {
      it("answers a Binding with a right FINGERPRINT and drops one with a wrong FINGERPRINT", async () => {
        const c = await client();
        const binding = () => buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), fingerprint: true });
        const before = relay.stats.badFingerprints;
        c.sendRaw(withWrongFingerprint(binding()));
        expect(await c.receive(SILENCE_MS)).toBeNull();
        expect(relay.stats.badFingerprints).toBe(before + 1);
        const { message } = await c.exchange(binding());
        expect(message.messageClass).toBe(StunClass.SuccessResponse);
      });

      it("drops a signed Allocate whose FINGERPRINT is wrong, and allocates nothing", async () => {
        const c = await client();
        const credential = await mint("fingerprint");
        const allocate = await c.signedRequest(StunMethod.Allocate, [UDP], credential);
        const allocations = relay.allocationCount;
        c.sendRaw(withWrongFingerprint(allocate));
        expect(await c.receive(SILENCE_MS)).toBeNull();
        expect(relay.allocationCount).toBe(allocations);
        // The same request undamaged is served.
        const { message } = await c.exchange(allocate);
        expect(message.messageClass).toBe(StunClass.SuccessResponse);
        expect(relay.allocationCount).toBe(allocations + 1);
      });
    });

    describe("the transaction cache", () => {
      it("resends the cached answer only for the very same request", async () => {
        const c = await client();
        const credential = await mint("reuse");
        const transactionId = newTransactionId();
        const allocate = await c.signedRequest(StunMethod.Allocate, [UDP], credential, transactionId);
        const first = await c.exchange(allocate);
        expect(first.message.messageClass).toBe(StunClass.SuccessResponse);
        expect((await c.exchange(allocate)).raw.equals(first.raw)).toBe(true);

        // Same transaction id, other content (another method, or the same method with another attribute).
        const mismatches = relay.stats.transactionMismatches;
        c.sendRaw(await c.signedRequest(StunMethod.Refresh, [encodeLifetime(0)], credential, transactionId));
        expect(await c.receive(SILENCE_MS)).toBeNull();
        c.sendRaw(await c.signedRequest(StunMethod.Allocate, [UDP, encodeLifetime(300)], credential, transactionId));
        expect(await c.receive(SILENCE_MS)).toBeNull();
        expect(relay.stats.transactionMismatches).toBe(mismatches + 2);
        // Neither was acted on: the allocation is still there.
        const refreshed = await c.request(StunMethod.Refresh, [encodeLifetime(300)], credential);
        expect(refreshed.messageClass).toBe(StunClass.SuccessResponse);
      });
    });
  });
});

describe("resends of cached answers under --unauthenticated-rate", () => {
  let relay: RelayServer;
  let port: number;

  beforeAll(async () => {
    ({ relay, port } = await startRelay(["--min-port=44200", "--max-port=44299", "--unauthenticated-rate=1", "--unauthenticated-burst=2"]));
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it("resends a cached answer no faster than the per-source limit allows", async () => {
    const c = await TurnTestClient.open(port);
    try {
      const allocate = await c.signedRequest(StunMethod.Allocate, [UDP], await mint("resend"));
      expect((await c.exchange(allocate)).message.messageClass).toBe(StunClass.SuccessResponse);
      const limited = relay.stats.rateLimitedAnswers;
      const resends = 20;
      for (let i = 0; i < resends; i++) c.sendRaw(allocate);
      let answers = 0;
      while ((await c.receive(SILENCE_MS)) !== null) answers++;
      // The 401 that taught the client the nonce took one of the burst of 2; one more second may refill one.
      expect(answers).toBeGreaterThanOrEqual(1);
      expect(answers).toBeLessThanOrEqual(3);
      expect(relay.stats.rateLimitedAnswers - limited).toBe(resends - answers);
    } finally {
      c.close();
    }
  });
});

// Keeps the decoder honest about what the tests above send: the damaged message is still well-formed STUN.
it("damages only the FINGERPRINT value", () => {
  const damaged = withWrongFingerprint(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), fingerprint: true }));
  const decoded = decodeStunMessage(damaged);
  expect(decoded.ok && decoded.message.fingerprint !== undefined).toBe(true);
});
