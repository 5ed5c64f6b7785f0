/**
 * An allocation belongs to a whole 5-tuple (RFC 8656 §2.2): the client's address and port, the
 * transport, and the relay's listening address and port. Two clients behind one port-preserving NAT
 * that reach two listening addresses of one relay are two clients: neither rides the other's
 * permissions, and closing one's TCP connection leaves the other's allocation alone.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { ListenerAddress, RelayServer } from "../../relay/server/relay-server.js";
import { encodeLifetime, encodeRequestedTransport, encodeXorAddress, type TransportAddress } from "../../relay/stun/attributes.js";
import { newTransactionId } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import type { StunMessage } from "../../relay/stun/message.js";
import { TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, startRelay, xorAddressOf } from "./turn-client.js";

const UDP = encodeRequestedTransport(17);
const QUIET_MS = 300;

function outcome(message: StunMessage): string {
  return message.messageClass === StunClass.SuccessResponse ? "success" : `error ${errorCodeOf(message)}`;
}

async function allocated(client: TurnTestClient, credential: TurnCredential): Promise<TransportAddress> {
  const answer = await client.request(StunMethod.Allocate, [UDP], credential);
  expect(outcome(answer)).toBe("success");
  return xorAddressOf(answer)!;
}

async function permit(client: TurnTestClient, credential: TurnCredential, peer: TransportAddress): Promise<string> {
  const transactionId = newTransactionId();
  const request = await client.signedRequest(StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, peer, transactionId)], credential, transactionId);
  return outcome((await client.exchange(request)).message);
}

describe("the 5-tuple includes the relay's listening address", () => {
  let relay: RelayServer;
  let listeners: ListenerAddress[] = [];
  const opened: { close(): void }[] = [];
  const at = (transport: "udp" | "tcp", address: string) => listeners.find((listener) => listener.transport === transport && listener.address === address)!.port;

  beforeAll(async () => {
    // The helper listens on 127.0.0.1; a second listening address beside it.
    ({ relay } = await startRelay(["--listening-ip=127.0.0.2", "--allow-loopback-peers", "--min-port=44300", "--max-port=44399"], undefined, (bound) => {
      listeners = bound;
    }));
  });

  afterEach(() => {
    for (const socket of opened.splice(0)) socket.close();
  });

  afterAll(async () => {
    await relay?.stop();
  });

  it("UDP: one client address and port reaching two listening addresses holds two allocations, each with its own permissions", async () => {
    const client = await TurnTestClient.open(at("udp", "127.0.0.1"));
    const peer = await UdpPeer.open();
    opened.push(client, peer);
    const first = await mint("behind-nat-1");
    const second = await mint("behind-nat-2");
    const firstRelayed = await allocated(client, first);

    client.retarget("127.0.0.2", at("udp", "127.0.0.2"));
    const secondRelayed = await allocated(client, second);
    expect(secondRelayed.port).not.toBe(firstRelayed.port);
    expect(relay.allocationCount).toBe(2);

    // A permission through the second listener is the second allocation's alone.
    const target = { family: 4 as const, address: "127.0.0.1", port: peer.port };
    expect(await permit(client, second, target)).toBe("success");
    client.sendRaw(sendIndication(target, Buffer.from("through the second")));
    expect(await peer.waitFor(1, 1_000)).toBe(true);
    expect(peer.received[0]!.port).toBe(secondRelayed.port);

    client.retarget("127.0.0.1", at("udp", "127.0.0.1"));
    client.sendRaw(sendIndication(target, Buffer.from("through the first, which has no permission")));
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    expect(peer.received).toHaveLength(1);
  });

  it("TCP: closing one of two connections from one address and port ends only its own allocation", async () => {
    const one = await TurnTestClient.openStream(at("tcp", "127.0.0.1"), "tcp", undefined, { localAddress: "127.0.0.3" });
    opened.push(one);
    // libuv binds TCP sockets with SO_REUSEADDR, so a second connection may share the local address and port.
    const other = await TurnTestClient.openStream(at("tcp", "127.0.0.2"), "tcp", undefined, { host: "127.0.0.2", localAddress: "127.0.0.3", localPort: one.port });
    opened.push(other);
    expect(other.port).toBe(one.port);
    const otherCredential = await mint("same-port-2");
    await allocated(one, await mint("same-port-1"));
    await allocated(other, otherCredential);
    const before = relay.allocationCount;

    one.close();
    const deadline = Date.now() + 2_000;
    while (relay.allocationCount !== before - 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(relay.allocationCount).toBe(before - 1);
    // The other connection's allocation lives on.
    expect(outcome(await other.request(StunMethod.Refresh, [encodeLifetime(300)], otherCredential))).toBe("success");
  });
});
