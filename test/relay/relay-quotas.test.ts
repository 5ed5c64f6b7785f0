/**
 * Per-allocation quotas: permissions (--max-permissions) and channels (--max-channels).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TurnCredential } from "../../shared/turn/credentials.js";
import type { RelayServer } from "../../relay/server/relay-server.js";
import { encodeChannelNumber, encodeRequestedTransport, encodeXorAddress, type TransportAddress } from "../../relay/stun/attributes.js";
import { newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { TurnTestClient, UdpPeer, errorCodeOf, mint, sendIndication, startRelay } from "./turn-client.js";

const peer = (address: string, port = 5000): TransportAddress => ({ family: 4, address, port });

/** One credential per user, as a real client keeps it: minted anew, a second later its username (expiry) would differ (441). */
const credentials = new Map<string, Promise<TurnCredential>>();

async function send(client: TurnTestClient, method: number, userId: string, attributes: (id: Buffer) => StunAttributeValue[]) {
  const id = newTransactionId();
  if (!credentials.has(userId)) credentials.set(userId, mint(userId));
  const credential = await credentials.get(userId)!;
  return (await client.exchange(await client.signedRequest(method, attributes(id), credential, id))).message;
}

describe("per-allocation quotas", () => {
  let relay: RelayServer;
  let port: number;
  const clients: TurnTestClient[] = [];

  beforeAll(async () => {
    ({ relay, port } = await startRelay(["--allowed-peer-ip=198.51.100.0/24", "--max-permissions=2", "--max-channels=1", "--min-port=45400", "--max-port=45499"]));
  });

  afterAll(async () => {
    for (const client of clients) client.close();
    await relay?.stop();
  });

  async function allocated(userId: string) {
    const client = await TurnTestClient.open(port);
    clients.push(client);
    const answer = await send(client, StunMethod.Allocate, userId, () => [encodeRequestedTransport(17)]);
    expect(answer.messageClass).toBe(StunClass.SuccessResponse);
    return client;
  }

  const permit = (client: TurnTestClient, userId: string, addresses: string[]) =>
    send(client, StunMethod.CreatePermission, userId, (id) => addresses.map((a) => encodeXorAddress(AttributeType.XorPeerAddress, peer(a), id)));

  it("holds at most --max-permissions peer addresses, all or nothing per request", async () => {
    const client = await allocated("perm");
    expect(errorCodeOf(await permit(client, "perm", ["198.51.100.1", "198.51.100.2", "198.51.100.3"]))).toBe(508);
    expect((await permit(client, "perm", ["198.51.100.1", "198.51.100.2"])).messageClass).toBe(StunClass.SuccessResponse);
    // Refreshing the ones held is fine; a third is not.
    expect((await permit(client, "perm", ["198.51.100.2"])).messageClass).toBe(StunClass.SuccessResponse);
    expect(errorCodeOf(await permit(client, "perm", ["198.51.100.3"]))).toBe(508);
  });

  it("holds at most --max-channels channels", async () => {
    const client = await allocated("chan");
    const bind = (channel: number, address: string) =>
      send(client, StunMethod.ChannelBind, "chan", (id) => [encodeChannelNumber(channel), encodeXorAddress(AttributeType.XorPeerAddress, peer(address), id)]);
    expect((await bind(0x4000, "198.51.100.1")).messageClass).toBe(StunClass.SuccessResponse);
    expect((await bind(0x4000, "198.51.100.1")).messageClass).toBe(StunClass.SuccessResponse); // a refresh
    expect(errorCodeOf(await bind(0x4001, "198.51.100.2"))).toBe(508);
  });
});

describe("bandwidth limits", () => {
  it.each([
    ["--max-bps (per allocation)", "--max-bps=10000", 45500],
    ["--bps-capacity (the whole relay)", "--bps-capacity=10000", 45510],
  ])("%s: beyond the burst, excess datagrams are dropped", async (_, flag, minPort) => {
    const { relay, port } = await startRelay(["--allow-loopback-peers", flag, `--min-port=${minPort}`, `--max-port=${minPort + 9}`]);
    const client = await TurnTestClient.open(port);
    const farPeer = await UdpPeer.open();
    try {
      expect((await send(client, StunMethod.Allocate, "bulk", () => [encodeRequestedTransport(17)])).messageClass).toBe(StunClass.SuccessResponse);
      const target = { family: 4 as const, address: "127.0.0.1", port: farPeer.port };
      expect((await send(client, StunMethod.CreatePermission, "bulk", (id) => [encodeXorAddress(AttributeType.XorPeerAddress, target, id)])).messageClass).toBe(
        StunClass.SuccessResponse,
      );
      // 200 KB at once against 10 KB/s with the default 64 KiB burst: about 65 of 200 get through.
      const payload = Buffer.alloc(1000, 7);
      for (let i = 0; i < 200; i++) client.sendRaw(sendIndication(target, payload));
      await farPeer.waitFor(200, 1_000);
      expect(farPeer.received.length).toBeGreaterThanOrEqual(60);
      expect(farPeer.received.length).toBeLessThanOrEqual(90);
    } finally {
      client.close();
      farPeer.close();
      await relay.stop();
    }
  });
});
