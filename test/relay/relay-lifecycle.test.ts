/**
 * An allocation's life and the relay's limits, over real UDP on loopback: Refresh extends, clamps and
 * deletes; expiry frees the port; quotas and the port range refuse what is over them and give back
 * what is freed; credentials that expire under a live allocation; stop() frees everything; and a flood
 * of unauthenticated requests costs the relay no state and gets only small answers.
 *
 * Every relay gets a port range of its own (45000-45999 on the native addon, 35000-35999 on dgram: the
 * node-dgram project runs this file again, possibly beside the node project's run; no other suite
 * uses either), so a port being free or taken here is about this relay alone. Every wait is bounded.
 */
import { createSocket } from "node:dgram";
import { afterEach, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { RelayEvent, RelayServer } from "../../relay/server/relay-server.js";
import { encodeLifetime, encodeRequestedTransport, encodeXorAddress, readErrorCode, readLifetime, type TransportAddress } from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { TEST_UDP_IO, TurnTestClient, UdpPeer, canBindUdp, errorCodeOf, mint, sendIndication, startRelay, xorAddressOf } from "./turn-client.js";

const UDP = encodeRequestedTransport(17);

// ---------------------------------------------------------------------------------------------------------------
// Relays and sockets opened by a test, closed after it whatever happened.

const relays: RelayServer[] = [];
const clients: TurnTestClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) {
    try {
      client.close();
    } catch {
      // already closed by the test
    }
  }
  await Promise.all(relays.splice(0).map((relay) => relay.stop()));
});

/** Where this file's ports lie under the io this run uses: the figures below are the native run's. */
const PORT_SHIFT = TEST_UDP_IO === "native" ? 0 : -10_000;

/** A relay on 127.0.0.1 with the relay ports `minPort`..`maxPort` (shifted by PORT_SHIFT) and `flags`. */
async function relayWith(minPort: number, maxPort: number, flags: string[] = []) {
  const started = await startRelay([`--min-port=${minPort + PORT_SHIFT}`, `--max-port=${maxPort + PORT_SHIFT}`, ...flags]);
  relays.push(started.relay);
  return { ...started, rangeSize: maxPort - minPort + 1 };
}

async function clientOf(port: number): Promise<TurnTestClient> {
  const client = await TurnTestClient.open(port);
  clients.push(client);
  return client;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading answers.

function isSuccess(message: StunMessage): boolean {
  return message.messageClass === StunClass.SuccessResponse;
}

function lifetimeOf(message: StunMessage): number | undefined {
  const attribute = findAttribute(message, AttributeType.Lifetime);
  if (attribute === undefined) return undefined;
  const read = readLifetime(message, attribute);
  return read.ok ? read.value : undefined;
}


/** The reason phrase of an error answer. */
function reasonOf(message: StunMessage): string | undefined {
  const attribute = findAttribute(message, AttributeType.ErrorCode);
  if (attribute === undefined) return undefined;
  const code = readErrorCode(message, attribute);
  return code.ok ? code.value.reason : undefined;
}

/** What an answer was, for assertion messages: "success" or "error 437". */
function outcome(message: StunMessage): string {
  return isSuccess(message) ? "success" : `error ${errorCodeOf(message)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests.

function peerAt(port: number): TransportAddress {
  return { family: 4, address: "127.0.0.1", port };
}

function allocate(client: TurnTestClient, credential: TurnCredential, extra: StunAttributeValue[] = []): Promise<StunMessage> {
  return client.request(StunMethod.Allocate, [UDP, ...extra], credential);
}

function refresh(client: TurnTestClient, credential: TurnCredential, lifetime?: number): Promise<StunMessage> {
  return client.request(StunMethod.Refresh, lifetime === undefined ? [] : [encodeLifetime(lifetime)], credential);
}

/** Allocates and checks that it worked; returns the relayed address. */
async function allocated(client: TurnTestClient, credential: TurnCredential, extra: StunAttributeValue[] = []): Promise<TransportAddress> {
  const answer = await allocate(client, credential, extra);
  expect(outcome(answer)).toBe("success");
  const relayed = xorAddressOf(answer);
  expect(relayed).toBeDefined();
  return relayed!;
}

/** The answer to the request with `transactionId`, skipping any other datagram; fails after `timeoutMs`. */
async function answerTo(client: TurnTestClient, transactionId: Buffer, timeoutMs = 2_000): Promise<StunMessage> {
  return (await answersTo(client, [transactionId], timeoutMs))[0]!;
}

/** The answers to several requests in flight at once, in the order of `transactionIds`, whatever order they come in. */
async function answersTo(client: TurnTestClient, transactionIds: Buffer[], timeoutMs = 2_000): Promise<StunMessage[]> {
  const deadline = Date.now() + timeoutMs;
  const answers = new Map<string, StunMessage>();
  while (answers.size < transactionIds.length) {
    const left = deadline - Date.now();
    const raw = left > 0 ? await client.receive(left) : null;
    if (raw === null) {
      const missing = transactionIds.filter((id) => !answers.has(id.toString("hex"))).map((id) => id.toString("hex"));
      throw new Error(`no answer to transaction ${missing.join(", ")} within ${timeoutMs} ms`);
    }
    const decoded = decodeStunMessage(raw);
    const key = decoded.ok ? decoded.message.transactionId.toString("hex") : "";
    if (decoded.ok && transactionIds.some((id) => id.toString("hex") === key)) answers.set(key, decoded.message);
  }
  return transactionIds.map((id) => answers.get(id.toString("hex"))!);
}

/** Polls `condition` every 20 ms for at most `timeoutMs`; returns whether it came true. */
async function eventually(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/** Whether this process can bind 127.0.0.1:`port` right now (the relay socket there is really closed). */
function bindingRequest(): Buffer {
  return buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() });
}

// ---------------------------------------------------------------------------------------------------------------

describe("Refresh", () => {
  it("with LIFETIME 0 deletes the allocation: LIFETIME 0 back, the allocation gone, its port back in the pool; a later Refresh gets 437", async () => {
    const { relay, port } = await relayWith(45000, 45009);
    const client = await clientOf(port);
    const credential = await mint("alice");
    const freeBefore = relay.freePorts;

    await allocated(client, credential);
    expect(relay.allocationCount).toBe(1);
    expect(relay.freePorts).toBe(freeBefore - 1);

    const deleted = await refresh(client, credential, 0);
    expect(outcome(deleted)).toBe("success");
    expect(lifetimeOf(deleted)).toBe(0);
    expect(relay.allocationCount).toBe(0);
    // The port goes back once the relay socket has closed.
    expect(await eventually(() => relay.freePorts === freeBefore, 1_000), `freePorts ${relay.freePorts}, expected ${freeBefore}`).toBe(true);

    const after = await refresh(client, credential, 600);
    expect(outcome(after)).toBe("error 437");
  });

  it("grants the LIFETIME asked for, but never more than --max-allocate-lifetime; Allocate is clamped the same way", async () => {
    const { port } = await relayWith(45010, 45019, ["--max-allocate-lifetime=300"]);
    const client = await clientOf(port);
    const credential = await mint("alice");

    const allocation = await allocate(client, credential, [encodeLifetime(5000)]);
    expect(outcome(allocation)).toBe("success");
    expect(lifetimeOf(allocation)).toBe(300);

    const asked120 = await refresh(client, credential, 120);
    expect(outcome(asked120)).toBe("success");
    expect(lifetimeOf(asked120)).toBe(120);

    const asked99999 = await refresh(client, credential, 99_999);
    expect(outcome(asked99999)).toBe("success");
    expect(lifetimeOf(asked99999)).toBe(300);
  });

  it("signed with another user's credential on the same 5-tuple gets 441, and the allocation is untouched", async () => {
    const { relay, port } = await relayWith(45020, 45029);
    const client = await clientOf(port);
    const alice = await mint("alice");
    const mallory = await mint("mallory");
    await allocated(client, alice);

    const hijack = await refresh(client, mallory, 0);
    expect(outcome(hijack)).toBe("error 441");
    expect(relay.allocationCount).toBe(1);

    const own = await refresh(client, alice, 600);
    expect(outcome(own)).toBe("success");
  });
});

describe("expiry", () => {
  it("an allocation that is not refreshed is swept within a few seconds and its port goes back to the pool", async () => {
    const { relay, port } = await relayWith(45030, 45039);
    const client = await clientOf(port);
    const freeBefore = relay.freePorts;

    const answer = await allocate(client, await mint("alice"), [encodeLifetime(1)]);
    expect(outcome(answer)).toBe("success");
    expect(lifetimeOf(answer)).toBe(1);
    expect(relay.allocationCount).toBe(1);
    const relayed = xorAddressOf(answer)!;

    // Lifetime 1 s, the sweep runs every second: gone within 3 s, port and socket both released.
    const gone = await eventually(() => relay.allocationCount === 0 && relay.freePorts === freeBefore, 3_000);
    expect(gone, `allocations ${relay.allocationCount}, freePorts ${relay.freePorts} (expected 0 and ${freeBefore})`).toBe(true);
    expect(await canBindUdp(relayed.port)).toBe(true);
  });
});

describe("quotas and the port range", () => {
  it("--user-quota: a user at the quota gets 486 from another socket; another user still gets an allocation", async () => {
    const { relay, port } = await relayWith(45040, 45049, ["--user-quota=1"]);
    const alice = await mint("alice");
    await allocated(await clientOf(port), alice);

    const secondForAlice = await allocate(await clientOf(port), await mint("alice"));
    expect(outcome(secondForAlice)).toBe("error 486");

    await allocated(await clientOf(port), await mint("bob"));
    expect(relay.allocationCount).toBe(2);
  });

  it("--max-allocations-per-ip: clients at one address get 486 past the cap over UDP and TCP together; another address is still served", async () => {
    const { relay, port } = await relayWith(45180, 45189, ["--max-allocations-per-ip=2"]);
    const first = await clientOf(port);
    // Kept for the delete below: a credential minted again a second later is another username (441).
    const aliceCredential = await mint("alice");
    await allocated(first, aliceCredential);
    const overTcp = await TurnTestClient.openStream(port, "tcp");
    clients.push(overTcp);
    await allocated(overTcp, await mint("bob"));

    // A third allocation from 127.0.0.1, whoever the user is and whatever the transport.
    expect(outcome(await allocate(await clientOf(port), await mint("carol")))).toBe("error 486");
    expect(relay.stats.refusals.get("ip-quota")).toBe(1);
    // Another client address is counted on its own.
    const elsewhere = await TurnTestClient.open(port, "127.0.0.2");
    clients.push(elsewhere);
    await allocated(elsewhere, await mint("dave"));

    // A deleted allocation makes room again.
    expect(outcome(await refresh(first, aliceCredential, 0))).toBe("success");
    await allocated(await clientOf(port), await mint("erin"));
    expect(relay.allocationCount).toBe(3);
  });

  it("by default one user holds at most 200 allocations (--user-quota), enough for a 16-peer mesh with TCP and TLS fallbacks", async () => {
    // Every client's first try is answered 401 from 127.0.0.1: no limit on those, the quota is what is tested.
    const { relay, port } = await relayWith(45600, 45899, ["--unauthenticated-rate=0"]);
    const credential = await mint("one-credential");
    const outcomes = await Promise.all(
      Array.from({ length: 201 }, async () => {
        const client = await clientOf(port);
        return outcome(await allocate(client, credential));
      }),
    );
    expect(outcomes.filter((result) => result === "success")).toHaveLength(200);
    expect(outcomes.filter((result) => result === "error 486")).toHaveLength(1);
    expect(relay.allocationCount).toBe(200);
  });

  it("--total-quota: the allocation over the quota gets 508, whoever asks", async () => {
    const { relay, port } = await relayWith(45050, 45059, ["--total-quota=1"]);
    await allocated(await clientOf(port), await mint("alice"));

    const second = await allocate(await clientOf(port), await mint("bob"));
    expect(outcome(second)).toBe("error 508");
    expect(relay.allocationCount).toBe(1);
  });

  it("a port range of two: the third allocation gets 508; once one is deleted its port comes back and a new one succeeds", async () => {
    const { relay, port } = await relayWith(45060, 45061);
    const credential = await mint("alice");
    const first = await clientOf(port);
    const second = await clientOf(port);
    const third = await clientOf(port);
    await allocated(first, credential);
    await allocated(second, credential);
    expect(relay.freePorts).toBe(0);

    const refused = await allocate(third, credential);
    expect(outcome(refused)).toBe("error 508");

    expect(outcome(await refresh(first, credential, 0))).toBe("success");
    expect(await eventually(() => relay.freePorts === 1, 1_000), `freePorts ${relay.freePorts}`).toBe(true);

    await allocated(third, credential);
    expect(relay.allocationCount).toBe(2);
    expect(relay.freePorts).toBe(0);
  });

  it("--total-quota holds when Allocates from two clients arrive at the same time (10 rounds)", async () => {
    const { relay, port, rangeSize } = await relayWith(45070, 45079, ["--total-quota=1"]);
    for (let round = 0; round < 10; round++) {
      const pair = [
        { client: await clientOf(port), credential: await mint("alice"), id: newTransactionId() },
        { client: await clientOf(port), credential: await mint("bob"), id: newTransactionId() },
      ];
      // Signed up front (each client learns its NONCE first), then sent back to back.
      const requests = await Promise.all(pair.map(({ client, credential, id }) => client.signedRequest(StunMethod.Allocate, [UDP], credential, id)));
      pair.forEach(({ client }, i) => client.sendRaw(requests[i]!));
      const answers = await Promise.all(pair.map(({ client, id }) => answerTo(client, id)));

      expect(answers.map(outcome).sort(), `round ${round}`).toEqual(["error 508", "success"]);
      expect(relay.allocationCount, `round ${round}`).toBe(1);

      const winner = pair[answers.findIndex(isSuccess)]!;
      expect(outcome(await refresh(winner.client, winner.credential, 0))).toBe("success");
      expect(await eventually(() => relay.freePorts === rangeSize, 1_000), `round ${round}: freePorts ${relay.freePorts}`).toBe(true);
    }
  });

  it("one client sending two different Allocates at once ends up with one allocation, and no port outlives it", async () => {
    const { relay, port, rangeSize } = await relayWith(45080, 45089);
    const client = await clientOf(port);
    const credential = await mint("alice");
    const firstId = newTransactionId();
    const secondId = newTransactionId();
    const first = await client.signedRequest(StunMethod.Allocate, [UDP], credential, firstId);
    const second = await client.signedRequest(StunMethod.Allocate, [UDP], credential, secondId);
    client.sendRaw(first);
    client.sendRaw(second);
    const outcomes = (await answersTo(client, [firstId, secondId])).map(outcome).sort();

    // RFC 8656 §7.2: a second Allocate on a 5-tuple that has an allocation is 437.
    expect(outcomes).toEqual(["error 437", "success"]);
    expect(relay.allocationCount).toBe(1);
    expect(relay.freePorts).toBe(rangeSize - 1);

    expect(outcome(await refresh(client, credential, 0))).toBe("success");
    const released = await eventually(() => relay.freePorts === rangeSize, 1_000);
    expect(released, `freePorts ${relay.freePorts} of ${rangeSize} after the only allocation was deleted`).toBe(true);
  });

  it("a relay port another program held goes back to the pool once that program lets go of it", async () => {
    const { relay, port, rangeSize } = await relayWith(45090, 45090);
    const client = await clientOf(port);
    const credential = await mint("alice");
    const squatter = createSocket("udp4");
    try {
      await new Promise<void>((resolve) => squatter.bind(45090 + PORT_SHIFT, "127.0.0.1", resolve));
      expect(outcome(await allocate(client, credential))).toBe("error 508");
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }

    // The port is free again: the pool should offer it, not have lost it for good.
    const retry = await allocate(client, credential);
    expect(outcome(retry), `freePorts ${relay.freePorts} of ${rangeSize}`).toBe("success");
  });
});

describe("a credential that expires under a live allocation (--credential-clock-skew=0)", () => {
  /** Allocates with a 2-second credential, then waits (at most ~3 s) until the relay sees it as expired. */
  async function allocateThenOutliveCredential(port: number) {
    const client = await clientOf(port);
    const credential = await mint("alice", 2);
    await allocated(client, credential);
    // Expired once the relay's whole-second clock is past expiresAt (no skew allowed).
    const expiredAtMs = (credential.expiresAt + 1) * 1000 + 50;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiredAtMs - Date.now())));
    return { client, credential };
  }

  it("by default (coturn's behaviour) the allocation can still be refreshed and lives on", async () => {
    const { relay, port } = await relayWith(45100, 45109, ["--credential-clock-skew=0"]);
    const { client, credential } = await allocateThenOutliveCredential(port);

    // A fresh request, signed again; the NONCE (10 minutes) is still good, only the credential has expired.
    const refreshed = await refresh(client, credential, 600);
    expect(outcome(refreshed)).toBe("success");
    expect(lifetimeOf(refreshed)).toBe(600);
    expect(relay.allocationCount).toBe(1);
  });

  it("with --strict-expiry the allocation ends with its credential: data stops, the port is freed, the next Refresh gets 401", async () => {
    const ends: RelayEvent[] = [];
    const started = await startRelay([`--min-port=${45110 + PORT_SHIFT}`, `--max-port=${45119 + PORT_SHIFT}`, "--credential-clock-skew=0", "--strict-expiry", "--allow-loopback-peers"], (event) => {
      if (event.event === "allocation-end") ends.push(event);
    });
    relays.push(started.relay);
    const { relay, port } = started;
    const peer = await UdpPeer.open();
    try {
      const client = await clientOf(port);
      const credential = await mint("alice", 2);
      await allocated(client, credential);
      const transactionId = newTransactionId();
      const permission = await client.signedRequest(StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, peerAt(peer.port), transactionId)], credential, transactionId);
      expect(outcome((await client.exchange(permission)).message)).toBe("success");
      client.sendRaw(sendIndication(peerAt(peer.port), Buffer.from("before expiry")));
      expect(await eventually(() => peer.received.length === 1, 1_000), "relayed while the credential is good").toBe(true);

      // Expired once the relay's whole-second clock is past expiresAt; the sweep runs every second.
      const ended = await eventually(() => relay.allocationCount === 0, (credential.expiresAt + 3) * 1000 - Date.now());
      expect(ended, "the allocation still lives after its credential expired").toBe(true);
      expect(ends.map((event) => event.reason)).toEqual(["credential expired"]);
      // The port goes back once its socket has closed, a moment after the allocation ends.
      expect(await eventually(() => relay.freePorts === 10, 1_000), `freePorts ${relay.freePorts}`).toBe(true);
      client.sendRaw(sendIndication(peerAt(peer.port), Buffer.from("after expiry")));
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(peer.received.length, "data relayed after the credential expired").toBe(1);
      expect(outcome(await refresh(client, credential, 600))).toBe("error 401");
    } finally {
      peer.close();
    }
  });

  it("--max-credential-ttl: a credential that expires further ahead gets 401; one within it is served", async () => {
    const { relay, port } = await relayWith(45190, 45199, ["--credential-clock-skew=0", "--max-credential-ttl=600"]);
    const refused = await allocate(await clientOf(port), await mint("alice", 3600));
    expect(outcome(refused)).toBe("error 401");
    expect(reasonOf(refused)).toContain("max-credential-ttl");
    expect(relay.allocationCount).toBe(0);
    await allocated(await clientOf(port), await mint("alice", 600));
    expect(relay.allocationCount).toBe(1);
  });

  it.each([
    ["by default", [] as string[]],
    ["with --strict-expiry", ["--strict-expiry"]],
  ])("an Allocate with an already-expired credential gets 401 %s", async (_name, flags) => {
    const { relay, port } = await relayWith(45120, 45129, ["--credential-clock-skew=0", ...flags]);
    const client = await clientOf(port);
    const expired = await mint("alice", 60, Math.floor(Date.now() / 1000) - 120);

    expect(outcome(await allocate(client, expired))).toBe("error 401");
    expect(relay.allocationCount).toBe(0);
  });
});

describe("stop()", () => {
  it("with live allocations frees every relay port and stops answering", async () => {
    const { relay, port, rangeSize } = await relayWith(45130, 45139);
    const relayedPorts: number[] = [];
    for (const user of ["alice", "bob", "carol"]) relayedPorts.push((await allocated(await clientOf(port), await mint(user))).port);
    expect(relay.allocationCount).toBe(3);
    expect(relay.freePorts).toBe(rangeSize - 3);

    const prober = await clientOf(port);
    prober.sendRaw(bindingRequest());
    expect(await prober.receive(1_000), "a Binding request is answered while the relay runs").not.toBeNull();

    await relay.stop();
    expect(relay.allocationCount).toBe(0);
    expect(relay.freePorts).toBe(rangeSize);
    for (const relayed of relayedPorts) expect(await canBindUdp(relayed), `relay port ${relayed} is still bound`).toBe(true);

    prober.sendRaw(bindingRequest());
    expect(await prober.receive(300), "the listener answered after stop()").toBeNull();
  });
});

describe("unauthenticated Allocates (amplification)", () => {
  const FLOOD = 200;

  function unauthenticatedAllocate(): Buffer {
    return buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes: [UDP] });
  }

  it(`${FLOOD} from one client each get a 401 and leave no state behind`, async () => {
    // Without the per-source limit, so every request is answered and can be checked.
    const { relay, port } = await relayWith(45140, 45149, ["--unauthenticated-rate=0"]);
    const client = await clientOf(port);
    for (let i = 0; i < FLOOD; i++) {
      const { message } = await client.exchange(unauthenticatedAllocate());
      expect(outcome(message), `request ${i}`).toBe("error 401");
      expect(findAttribute(message, AttributeType.Nonce), `request ${i}`).toBeDefined();
    }
    expect(relay.allocationCount).toBe(0);
    // No transaction is remembered for a request that was never authenticated.
    expect(relay["transactions"].size).toBe(0);
  });

  it("the 401 is small (under 120 bytes) and carries no SOFTWARE", async () => {
    const { port } = await relayWith(45150, 45159);
    const client = await clientOf(port);
    const request = unauthenticatedAllocate();
    const { raw, message } = await client.exchange(request);

    expect(outcome(message)).toBe("error 401");
    expect(findAttribute(message, AttributeType.Software)).toBeUndefined();
    expect(raw.length, `a ${request.length}-byte request got a ${raw.length}-byte 401 (x${(raw.length / request.length).toFixed(1)})`).toBeLessThan(120);
  });
});

describe("the per-source limit on unauthenticated answers", () => {
  it("answers a one-source flood only up to the burst and the rate, and recovers", async () => {
    const { port } = await relayWith(45160, 45169, ["--unauthenticated-rate=20", "--unauthenticated-burst=40"]);
    const flooder = await clientOf(port);
    const started = Date.now();
    for (let i = 0; i < 500; i++) {
      flooder.sendRaw(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() }));
    }
    let answers = 0;
    while ((await flooder.receive(300)) !== null) answers++;
    const elapsedSeconds = (Date.now() - started) / 1000;
    expect(answers).toBeGreaterThanOrEqual(40);
    expect(answers).toBeLessThanOrEqual(40 + Math.ceil(20 * elapsedSeconds) + 1);
    // A second later the source is answered again.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const again = await flooder.exchange(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() }));
    expect(again.message.messageClass).toBe(StunClass.SuccessResponse);
  });

  it("does not limit requests that carry a valid credential", async () => {
    const { relay, port } = await relayWith(45170, 45179, ["--unauthenticated-rate=1", "--unauthenticated-burst=1"]);
    const client = await clientOf(port);
    const credential = await mint("steady");
    // The one unauthenticated answer this source gets is the 401 that carries the nonce.
    const allocate = await client.signedRequest(StunMethod.Allocate, [UDP], credential);
    for (let i = 0; i < 20; i++) client.sendRaw(buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId() }));
    while ((await client.receive(200)) !== null) {
      // drain whatever Binding answers got through
    }
    const { message } = await client.exchange(allocate);
    expect(message.messageClass).toBe(StunClass.SuccessResponse);
    expect(relay.allocationCount).toBe(1);
  });
});
