/**
 * The first exchange of a pair: the peer that was in the room first offers, the newcomer holds its
 * own offer until that one arrives, and offers what it held only once its connection has settled.
 * (An extra negotiation round during the first ICE and DTLS setup fails werift's connection: it starts
 * its transports again on every answer.)
 *
 * The room client runs for real against the loopback room server (room-server.ts); the mesh runs
 * for real over it, on recording peer connections (recording-peer-connection.ts) whose
 * negotiationneeded and connection state the test fires as a WebRTC stack would.
 */
import { describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { HELD_OFFER_SETTLE_MAX_MS, Mesh, RoomClient, type MeshOptions } from "../../../shared/client/index.js";
import { RecordingPeerConnection } from "./recording-peer-connection.js";
import { RoomServer, roomServerForEachTest, sleep, until, welcomeFrame } from "./room-server.js";

const ME = "newcomer";
const OLD = "old-timer";
/** Long enough for a wrongly made offer to reach the room server. */
const QUIET_MS = 300;

let server: RoomServer;
const closers = roomServerForEachTest((started) => (server = started));

/** The description types this side sent to OLD, in order. */
function sentDescriptions(): string[] {
  return server.received.flatMap((text) => {
    const frame = JSON.parse(text) as { type?: string; to?: string; data?: { mesh?: { description?: { type: string } } } };
    const type = frame.type === "signal" && frame.to === OLD ? frame.data?.mesh?.description?.type : undefined;
    return type === undefined ? [] : [type];
  });
}

/** Joins as the newcomer (OLD is already in the room) and returns the link's connection. */
async function joinAsNewcomer(extra: Partial<MeshOptions<RecordingPeerConnection>> = {}): Promise<RecordingPeerConnection> {
  server.welcome = () => welcomeFrame(ME, [OLD], undefined);
  const room = new RoomClient({ server: server.url, room: "first-offer", WebSocket });
  closers.push(() => room.close());
  let created: RecordingPeerConnection | undefined;
  const mesh = new Mesh<RecordingPeerConnection>({
    room,
    createPeerConnection: (config) => new RecordingPeerConnection(config, []),
    setup: (link) => {
      created = link.pc;
      link.pc.remotePeerId = link.peerId;
    },
    ...extra,
  });
  closers.push(() => mesh.close());
  await room.connect();
  await until(() => created !== undefined, "the link to the peer already in the room");
  return created!;
}

/** What the stack does when the app adds a channel or track in `setup`. */
function fireNegotiationNeeded(pc: RecordingPeerConnection): void {
  pc.onnegotiationneeded?.(undefined as never);
}

function offerFromOld(): void {
  server.push({ type: "signal", from: OLD, data: { mesh: { session: "old-session", description: { type: "offer", sdp: "v=0\r\na=ice-ufrag:old\r\n" } } } });
}

function answerFromOld(): void {
  server.push({ type: "signal", from: OLD, data: { mesh: { session: "old-session", description: { type: "answer", sdp: "v=0\r\na=ice-ufrag:old\r\n" } } } });
}

/**
 * The newcomer joins with a change to negotiate (held, as the first offer is the other side's),
 * answers the other side's offer, and its connection starts connecting.
 */
async function answeredWhileHolding(extra: Partial<MeshOptions<RecordingPeerConnection>> = {}): Promise<RecordingPeerConnection> {
  const pc = await joinAsNewcomer(extra);
  fireNegotiationNeeded(pc);
  offerFromOld();
  await until(() => sentDescriptions().length === 1, "the answer to the first offer");
  pc.setConnectionState("connecting");
  return pc;
}

describe("a newcomer's first offer", () => {
  it("is held until the other side's offer is answered, then made once the connection is up, not while it is connecting", async () => {
    const pc = await joinAsNewcomer();
    fireNegotiationNeeded(pc);
    await sleep(QUIET_MS);
    expect(sentDescriptions()).toEqual([]);

    offerFromOld();
    await until(() => sentDescriptions().length === 1, "the answer to the first offer");
    pc.setConnectionState("connecting");
    await sleep(QUIET_MS);
    expect(sentDescriptions()).toEqual(["answer"]);

    pc.setConnectionState("connected");
    await until(() => sentDescriptions().length === 2, "the held offer after the connection is up");
    expect(sentDescriptions()).toEqual(["answer", "offer"]);
  });

  it("is made when the connection fails instead of coming up", async () => {
    const pc = await answeredWhileHolding({ maxIceRestarts: 0 });
    pc.setConnectionState("failed");
    await until(() => sentDescriptions().length === 2, "the held offer after the connection failed");
    expect(sentDescriptions()).toEqual(["answer", "offer"]);
  });

  it("is made at once when the wait for the other side's offer runs out (it had nothing to offer)", async () => {
    const pc = await joinAsNewcomer({ firstOfferWaitMs: 200 });
    fireNegotiationNeeded(pc);
    const started = Date.now();
    await until(() => sentDescriptions().length === 1, "the held offer after firstOfferWaitMs");
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(pc.connectionState).toBe("new");
    expect(sentDescriptions()).toEqual(["offer"]);
  });

  it("is not made twice when the stack asks again after the answer (as browsers do for a change still unnegotiated)", async () => {
    const pc = await answeredWhileHolding();
    fireNegotiationNeeded(pc);
    await until(() => sentDescriptions().length === 2, "the offer the stack asked for");
    answerFromOld();
    await until(() => pc.signalingState === "stable", "the answer applied");
    pc.setConnectionState("connected");
    await sleep(QUIET_MS);
    expect(sentDescriptions()).toEqual(["answer", "offer"]);
  });

  it(`is made anyway when the connection is still connecting ${HELD_OFFER_SETTLE_MAX_MS} ms after the answer`, async () => {
    await answeredWhileHolding();
    const answered = Date.now();
    await until(() => sentDescriptions().length === 2, "the held offer after the settle wait", HELD_OFFER_SETTLE_MAX_MS + 5_000);
    expect(Date.now() - answered).toBeGreaterThanOrEqual(HELD_OFFER_SETTLE_MAX_MS - 500);
    expect(sentDescriptions()).toEqual(["answer", "offer"]);
  }, HELD_OFFER_SETTLE_MAX_MS + 15_000);

  it("is not made at all when nothing was held", async () => {
    const pc = await joinAsNewcomer();
    offerFromOld();
    await until(() => sentDescriptions().length === 1, "the answer to the first offer");
    pc.setConnectionState("connected");
    await sleep(QUIET_MS);
    expect(sentDescriptions()).toEqual(["answer"]);
  });
});
