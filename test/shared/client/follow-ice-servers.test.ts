/**
 * The client library follows the relay fleet: it applies ICE servers the room pushes (a relay is
 * draining) and, when a call fails (a relay vanished), fetches fresh ones before restarting ICE.
 *
 * The room client runs for real against a loopback HTTP and WebSocket server (room-server.ts) that
 * plays the Worker's part on cue: pushing an `ice-servers` frame, answering /v1/ice-servers late,
 * wrongly or never. The mesh runs for real over that room client, on recording peer connections
 * (recording-peer-connection.ts) whose connection state the test moves as a WebRTC stack would.
 */
import { describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  DISCONNECTED_RECOVERY_MS,
  FRESH_ICE_SERVERS_MS,
  RECOVERY_CHECK_MS,
  ICE_RECOVERY_BACKOFF,
  Mesh,
  POLITE_RESTART_DELAY_MS,
  RECOVERY_FETCH_TIMEOUT_MS,
  RoomClient,
  isPolite,
  type IceServersUpdate,
  type MeshOptions,
  type RoomClientOptions,
} from "../../../shared/client/index.js";
import { fetchIceServers } from "../../../shared/client/ice-servers.js";
import { RecordingPeerConnection, usernames } from "./recording-peer-connection.js";
import { RoomServer, roomServerForEachTest, iceServersFrame, sleep, turnServer, until, welcomeFrame } from "./room-server.js";

const ROOM = "fleet-follow";
/** A recovery check much shorter than the default, so the tests that wait for one are quick. */
const SHORT_RECOVERY_CHECK_MS = 1_500;

let server: RoomServer;
const closers = roomServerForEachTest((started) => (server = started));

function roomClient(extra: Partial<RoomClientOptions> = {}): RoomClient {
  const room = new RoomClient({ server: server.url, room: ROOM, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 200 }, ...extra });
  closers.push(() => room.close());
  return room;
}

/** Every `ice-servers` event of `room`, in order. */
function updates(room: RoomClient): IceServersUpdate[] {
  const seen: IceServersUpdate[] = [];
  room.on("ice-servers", (update) => seen.push(update));
  return seen;
}

/** A mesh on recording connections; `pcs` maps each remote peer id to its connection. */
function recordingMesh(room: RoomClient, extra: Partial<MeshOptions<RecordingPeerConnection>> = {}) {
  const log: string[] = [];
  const pcs = new Map<string, RecordingPeerConnection>();
  const errors: string[] = [];
  const mesh = new Mesh<RecordingPeerConnection>({
    room,
    createPeerConnection: (config) => new RecordingPeerConnection(config, log),
    setup: (link) => {
      link.pc.remotePeerId = link.peerId;
      pcs.set(link.peerId, link.pc);
    },
    ...extra,
  });
  mesh.on("error", (peerId, error) => errors.push(`${peerId}: ${error.message}`));
  closers.push(() => mesh.close());
  return { mesh, pcs, log, errors };
}

/**
 * Joins `me` with `peers` in the room, the welcome carrying `initial` servers (or none, so that the
 * first recovery cannot take the welcome's as fresh); all links connected.
 */
async function connectedMesh(me: string, peers: string[], extra: Partial<MeshOptions<RecordingPeerConnection>> = {}, welcomeServers = true) {
  server.welcome = () => welcomeFrame(me, peers, welcomeServers ? [turnServer("initial")] : undefined);
  const room = roomClient();
  const seen = updates(room);
  const roomErrors: string[] = [];
  room.on("error", (error) => roomErrors.push(`${error.code}: ${error.message}`));
  const made = recordingMesh(room, extra);
  await room.connect();
  expect([...made.pcs.keys()].sort()).toEqual([...peers].sort());
  for (const pc of made.pcs.values()) pc.setConnectionState("connected");
  return { room, seen, roomErrors, ...made };
}

describe("a pushed ice-servers frame", () => {
  it("replaces the servers, says why in the ice-servers event, and reschedules the refresh to the new expiry", async () => {
    server.welcome = () => welcomeFrame("me", [], [turnServer("initial")], 3_600_000);
    const room = roomClient();
    const seen = updates(room);
    await room.connect();
    expect(seen.map((update) => update.reason)).toEqual(["welcome"]);

    // The pushed credentials expire in 2.5 s, so the refresh comes at about 2 s, not in an hour.
    const pushed = iceServersFrame([turnServer("pushed")], 2_500);
    server.push(pushed);
    await until(() => seen.length === 2, "the pushed frame's event");
    expect(seen[1]).toEqual({ iceServers: pushed.iceServers, expiresAt: pushed.expiresAt, reason: "relay-draining" });
    expect(room.iceServers).toEqual(pushed.iceServers);
    expect(room.iceServersExpireAt).toBe(pushed.expiresAt);

    const pushedAt = Date.now();
    await until(() => seen.length === 3, "the refresh the pushed expiry scheduled", 6_000);
    expect(Date.now() - pushedAt).toBeGreaterThanOrEqual(1_500);
    expect(seen[2]!.reason).toBe("refresh");
    expect(usernames({ iceServers: seen[2]!.iceServers })).toBe("fetched");
    expect(server.iceServersRequests).toHaveLength(1);
  });

  it("moves calls that are up to the new servers: setConfiguration on every link, one ICE restart per pair, from one side", async () => {
    // "m" is polite towards "a" and "b", impolite towards "y" and "z"; the link to "y" is still new.
    const { pcs, log, errors } = await connectedMesh("m", ["a", "b", "y", "z"]);
    expect([isPolite("m", "a"), isPolite("m", "b"), isPolite("m", "y"), isPolite("m", "z")]).toEqual([true, true, false, false]);
    pcs.get("y")!.connectionState = "new";
    log.length = 0;

    server.push(iceServersFrame([turnServer("pushed")], 3_600_000));
    await until(() => log.filter((entry) => entry.endsWith("setConfiguration pushed")).length === 4, "setConfiguration on every link");
    // The impolite side restarts at once; a link that never connected gathers anew when it negotiates.
    expect(pcs.get("z")!.calls()).toEqual(["setConfiguration pushed", "restartIce"]);
    expect(pcs.get("y")!.calls()).toEqual(["setConfiguration pushed"]);

    // "a" restarts from its side (its offer arrives); "b" does not, so "m" restarts that pair itself.
    server.push({ type: "signal", from: "a", data: { mesh: { session: "peer-a", description: { type: "offer", sdp: "v=0\r\na=ice-ufrag:restarted\r\n" } } } });
    await sleep(POLITE_RESTART_DELAY_MS + 500);
    expect(pcs.get("a")!.calls()).toEqual(["setConfiguration pushed", "setRemoteDescription offer", "setLocalDescription answer"]);
    expect(pcs.get("b")!.calls()).toEqual(["setConfiguration pushed", "restartIce"]);
    expect(pcs.get("z")!.count("restartIce")).toBe(1);
    expect(errors).toEqual([]);
  });

  it("is ignored when the app passed its own iceServers", async () => {
    const own = [{ urls: "stun:127.0.0.1:3478" }];
    server.welcome = () => welcomeFrame("a", ["b"], [turnServer("initial")]);
    const room = roomClient({ iceServers: own });
    const seen = updates(room);
    const { pcs, log } = recordingMesh(room);
    await room.connect();
    pcs.get("b")!.setConnectionState("connected");
    const broadcasts: unknown[] = [];
    room.on("broadcast", (_from, data) => broadcasts.push(data));

    server.push(iceServersFrame([turnServer("pushed")], 3_600_000));
    // Frames arrive in order: once the broadcast sent after the push is in, the push was handled.
    server.push({ type: "broadcast", from: "b", data: "after the push" });
    await until(() => broadcasts.length === 1, "the broadcast after the push");
    expect(seen).toEqual([]);
    expect(room.iceServers).toBe(own);
    expect(log.filter((entry) => !entry.startsWith("b setLocalDescription"))).toEqual([]);
    expect(pcs.get("b")!.configuration.iceServers).toBe(own);
  });

  it("keeps the servers in hand, and says so, when the pushed ones are not ICE servers", async () => {
    server.welcome = () => welcomeFrame("me", [], [turnServer("initial")]);
    const room = roomClient();
    const seen = updates(room);
    const errors: string[] = [];
    room.on("error", (error) => errors.push(`${error.code}: ${error.message}`));
    await room.connect();
    server.push({ type: "ice-servers", iceServers: [{ urls: 5 }], expiresAt: new Date().toISOString(), reason: "relay-draining" });
    server.push({ type: "ice-servers", iceServers: [turnServer("x")], expiresAt: "tomorrow", reason: "relay-draining" });
    await until(() => errors.length === 2, "two errors");
    expect(errors.every((error) => error.startsWith('ice-servers: the room pushed ICE servers this client cannot read (reason "relay-draining")'))).toBe(true);
    expect(seen.map((update) => update.reason)).toEqual(["welcome"]);
    expect(usernames({ iceServers: room.iceServers })).toBe("initial");
  });

  it("wins over a fetch that was already out when it came", async () => {
    server.welcome = () => welcomeFrame("me", [], undefined);
    server.answer = { kind: "servers", iceServers: [turnServer("fetched-late")], ttlSeconds: 3600, delayMs: 600 };
    const room = roomClient();
    const seen = updates(room);
    await room.connect();
    const fetching = room.refreshIceServers("ice-failed");
    await until(() => server.iceServersRequests.length === 1, "the fetch");
    server.push(iceServersFrame([turnServer("pushed")], 3_600_000));
    expect(await fetching).toBe(true);
    expect(seen.map((update) => update.reason)).toEqual(["relay-draining"]);
    expect(usernames({ iceServers: room.iceServers })).toBe("pushed");
  });
});

describe("a call that fails", () => {
  it("fetches fresh servers once for several failed links, then moves every call that is up to them, the failed ones included", async () => {
    // "a" is impolite towards b, c and d.
    const { pcs, log, seen, errors } = await connectedMesh("a", ["b", "c", "d"], {}, false);
    server.answer = { kind: "servers", iceServers: [turnServer("fresh")], ttlSeconds: 3600, delayMs: 300 };
    log.length = 0;

    pcs.get("b")!.setConnectionState("failed");
    pcs.get("c")!.setConnectionState("failed");
    await until(() => pcs.get("b")!.count("restartIce") === 1 && pcs.get("c")!.count("restartIce") === 1, "restarts of b and c");
    expect(server.iceServersRequests).toHaveLength(1);
    expect(pcs.get("b")!.calls()).toEqual(["setConfiguration fresh", "restartIce"]);
    expect(pcs.get("c")!.calls()).toEqual(["setConfiguration fresh", "restartIce"]);
    // The link that looks up moves too: it may run through the same vanished relay.
    expect(pcs.get("d")!.calls()).toEqual(["setConfiguration fresh", "restartIce"]);
    expect(seen.at(-1)!.reason).toBe("ice-failed");

    // A link failing moments later restarts on the same fresh servers: no second fetch.
    await sleep(300);
    pcs.get("d")!.setConnectionState("failed");
    await until(() => pcs.get("d")!.count("restartIce") === 2, "restart of d");
    expect(pcs.get("d")!.calls()).toEqual(["setConfiguration fresh", "restartIce", "restartIce"]);
    expect(server.iceServersRequests).toHaveLength(1);
    expect(Date.now() - server.iceServersRequests[0]!.at).toBeLessThan(FRESH_ICE_SERVERS_MS);
    expect(errors).toEqual([]);
  });

  it(`recovers a connection that stays disconnected for ${DISCONNECTED_RECOVERY_MS} ms without waiting for failed, and leaves one that comes back alone`, async () => {
    const { pcs, log } = await connectedMesh("a", ["b", "c"], {}, false);
    server.answer = { kind: "servers", iceServers: [turnServer("fresh")], ttlSeconds: 3600 };
    log.length = 0;
    // c drops for a moment and comes back; b's path is gone.
    pcs.get("b")!.setConnectionState("disconnected");
    pcs.get("c")!.setConnectionState("disconnected");
    await sleep(DISCONNECTED_RECOVERY_MS / 3);
    pcs.get("c")!.setConnectionState("connected");
    await sleep(DISCONNECTED_RECOVERY_MS / 2);
    expect(server.iceServersRequests, "nothing before the wait is over").toHaveLength(0);
    await until(() => pcs.get("b")!.count("restartIce") === 1, "b's recovery", DISCONNECTED_RECOVERY_MS + 3_000);
    expect(server.iceServersRequests).toHaveLength(1);
    expect(pcs.get("b")!.calls()).toEqual(["setConfiguration fresh", "restartIce"]);
    // c moves with the fresh servers (as every call that is up does), but was never recovered on its own.
    expect(pcs.get("c")!.calls()).toEqual(["setConfiguration fresh", "restartIce"]);
  });

  it(`tries again when a recovery's restart has not brought the call back within recoveryCheckMs (the state sits in failed, with no further event)`, async () => {
    const { pcs, log } = await connectedMesh("a", ["b"], { recoveryCheckMs: SHORT_RECOVERY_CHECK_MS }, false);
    server.answer = { kind: "servers", iceServers: [turnServer("fresh")], ttlSeconds: 3600 };
    log.length = 0;
    pcs.get("b")!.setConnectionState("failed");
    await until(() => pcs.get("b")!.count("restartIce") === 1, "the first recovery");
    expect(server.iceServersRequests).toHaveLength(1);
    // Nothing changes: no event says the restart went nowhere. The check does.
    const firstAt = Date.now();
    await until(() => pcs.get("b")!.count("restartIce") === 2, "the second recovery", SHORT_RECOVERY_CHECK_MS + ICE_RECOVERY_BACKOFF.maxDelayMs / 4);
    expect(Date.now() - firstAt, "not before the check").toBeGreaterThanOrEqual(SHORT_RECOVERY_CHECK_MS - 100);
    expect(server.iceServersRequests, "the second recovery asks the Worker anew").toHaveLength(2);
    // Back up: no third.
    pcs.get("b")!.setConnectionState("connected");
    await sleep(SHORT_RECOVERY_CHECK_MS + 1_000);
    expect(pcs.get("b")!.count("restartIce")).toBe(2);
  }, 30_000);

  it(`checks ${RECOVERY_CHECK_MS} ms after a recovery by default, and refuses timings that would spin or never act`, async () => {
    const room = roomClient();
    const make = (extra: Partial<MeshOptions<RecordingPeerConnection>>) => new Mesh<RecordingPeerConnection>({ room, createPeerConnection: (config) => new RecordingPeerConnection(config, []), ...extra });
    expect(() => make({ recoveryCheckMs: 50 })).toThrow(/recoveryCheckMs must be milliseconds from 100 to 600000; got 50/);
    expect(() => make({ recoveryCheckMs: Number.NaN })).toThrow(/recoveryCheckMs must be milliseconds/);
    expect(() => make({ firstOfferWaitMs: -1 })).toThrow(/firstOfferWaitMs must be milliseconds from 0 to 600000; got -1/);
    expect(() => make({ maxIceRestarts: 1.5 })).toThrow(/maxIceRestarts must be a whole number, 0 or more; got 1.5/);
    make({ firstOfferWaitMs: 0, maxIceRestarts: 0, recoveryCheckMs: 100 }).close();
    // Without the option the check comes RECOVERY_CHECK_MS after the restart.
    const { pcs, log } = await connectedMesh("a", ["b"], {}, false);
    server.answer = { kind: "servers", iceServers: [turnServer("fresh")], ttlSeconds: 3600 };
    log.length = 0;
    pcs.get("b")!.setConnectionState("failed");
    await until(() => pcs.get("b")!.count("restartIce") === 1, "the first recovery");
    await sleep(RECOVERY_CHECK_MS - 1_000);
    expect(pcs.get("b")!.count("restartIce"), "no second recovery before the default check").toBe(1);
    await until(() => pcs.get("b")!.count("restartIce") === 2, "the second recovery", ICE_RECOVERY_BACKOFF.maxDelayMs / 4);
  }, 30_000);

  it("on the polite side also fetches and applies, and restarts only if the other side has not", async () => {
    const { pcs, log } = await connectedMesh("m", ["a"], {}, false);
    server.answer = { kind: "servers", iceServers: [turnServer("fresh")], ttlSeconds: 3600 };
    log.length = 0;
    pcs.get("a")!.setConnectionState("failed");
    await until(() => pcs.get("a")!.count("setConfiguration fresh") === 1, "the fresh servers applied");
    expect(server.iceServersRequests).toHaveLength(1);
    await sleep(POLITE_RESTART_DELAY_MS - 1_000);
    expect(pcs.get("a")!.count("restartIce")).toBe(0);
    await until(() => pcs.get("a")!.count("restartIce") === 1, "the polite side's own restart", 3_000);
    expect(pcs.get("a")!.calls()).toEqual(["setConfiguration fresh", "restartIce"]);
  });

  it("restarts a failed link once when a push comes while its recovery is fetching", async () => {
    const { pcs, log, seen } = await connectedMesh("a", ["b"], {}, false);
    server.answer = { kind: "servers", iceServers: [turnServer("fresh")], ttlSeconds: 3600, delayMs: 600 };
    log.length = 0;
    pcs.get("b")!.setConnectionState("failed");
    await until(() => server.iceServersRequests.length === 1, "the recovery's fetch");
    server.push(iceServersFrame([turnServer("pushed")], 3_600_000));
    await until(() => seen.some((update) => update.reason === "relay-draining"), "the push");
    await sleep(1_000); // the fetch has answered by now, and its answer was dropped as older
    expect(pcs.get("b")!.calls()).toEqual(["setConfiguration pushed", "restartIce"]);
    expect(seen.map((update) => update.reason)).toEqual(["relay-draining"]);
  });

  it("does not restart a link that the other side's restart brought back while the fetch was out (and failed)", async () => {
    // "m" is impolite towards "z" and polite towards "a".
    const { pcs, log } = await connectedMesh("m", ["a", "z"], {}, false);
    server.answer = { kind: "error", status: 503, code: "turn-not-configured", message: "no relay", delayMs: 500 };
    log.length = 0;
    pcs.get("a")!.setConnectionState("failed");
    pcs.get("z")!.setConnectionState("failed");
    await until(() => server.iceServersRequests.length === 1, "the recovery's fetch");
    pcs.get("a")!.setConnectionState("connected");
    pcs.get("z")!.setConnectionState("connected");
    await sleep(POLITE_RESTART_DELAY_MS + 1_000);
    expect(pcs.get("a")!.calls()).toEqual([]);
    expect(pcs.get("z")!.calls()).toEqual([]);
  });

  it("still restarts when the Worker refuses the fetch, and the room says why", async () => {
    const { pcs, log, roomErrors, room } = await connectedMesh("a", ["b"]);
    server.answer = { kind: "error", status: 503, code: "turn-not-configured", message: "no relay" };
    await sleep(FRESH_ICE_SERVERS_MS); // the welcome's servers are no longer fresh
    log.length = 0;
    pcs.get("b")!.setConnectionState("failed");
    await until(() => pcs.get("b")!.count("restartIce") === 1, "the restart");
    expect(pcs.get("b")!.calls()).toEqual(["restartIce"]);
    expect(server.iceServersRequests).toHaveLength(1);
    expect(roomErrors).toEqual([expect.stringMatching(/^ice-servers: could not fetch fresh ICE servers \(ice-failed\): .* answered 503: no relay$/)]);
    expect(usernames({ iceServers: room.iceServers })).toBe("initial");
  }, 15_000);

  it("still restarts when the Worker does not answer, after the recovery fetch's timeout", async () => {
    const { pcs, roomErrors } = await connectedMesh("a", ["b"]);
    server.answer = { kind: "hang" };
    await sleep(FRESH_ICE_SERVERS_MS);
    const failedAt = Date.now();
    pcs.get("b")!.setConnectionState("failed");
    await until(() => pcs.get("b")!.count("restartIce") === 1, "the restart after the timeout", RECOVERY_FETCH_TIMEOUT_MS + 3_000);
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(RECOVERY_FETCH_TIMEOUT_MS - 100);
    expect(roomErrors).toEqual([expect.stringMatching(/^ice-servers: could not fetch fresh ICE servers \(ice-failed\): could not reach /)]);
  }, 25_000);

  it("restarts at most maxIceRestarts times in a row, each after a backoff, and says when it gives up", async () => {
    const { pcs, errors } = await connectedMesh("a", ["b"], { maxIceRestarts: 2 });
    const pc = pcs.get("b")!;
    const restartsAt: number[] = [];
    const restartIce = pc.restartIce.bind(pc);
    pc.restartIce = () => {
      restartsAt.push(Date.now());
      restartIce();
    };
    // Each restart fails again at once: the recovery must not spin. The first recovery may take the
    // welcome's servers as fresh; the second asks the Worker anew, since they just failed.
    for (let round = 1; round <= 3; round++) {
      pc.setConnectionState("checking");
      pc.setConnectionState("failed");
      if (round <= 2) await until(() => restartsAt.length === round, `restart ${round}`, 2 * ICE_RECOVERY_BACKOFF.initialDelayMs + 2_000);
    }
    await until(() => errors.length === 1, "the give-up error");
    expect(errors[0]).toMatch(/^b: the connection failed again after 2 ICE restarts \(maxIceRestarts\)/);
    expect(restartsAt[1]! - restartsAt[0]!).toBeGreaterThanOrEqual(ICE_RECOVERY_BACKOFF.initialDelayMs / 2 - 50);
    expect(server.iceServersRequests.filter((request) => request.at > restartsAt[0]! && request.at < restartsAt[1]!)).toHaveLength(1);
    await sleep(ICE_RECOVERY_BACKOFF.initialDelayMs * 2);
    expect(restartsAt).toHaveLength(2);

    // Connected again, the count starts over: the next failure restarts at once.
    pc.setConnectionState("connected");
    pc.setConnectionState("failed");
    await until(() => restartsAt.length === 3, "a restart after reconnecting", 1_000);
  }, 20_000);
});

describe("/v1/ice-servers for a room member", () => {
  it("sends room and peer for an open room (no token), and neither with a join token", async () => {
    server.welcome = () => welcomeFrame("peer-1", [], undefined);
    const open = roomClient();
    await open.connect();
    expect(await open.refreshIceServers()).toBe(true);
    const [openRequest] = server.iceServersRequests;
    expect(Object.fromEntries(openRequest!.query)).toEqual({ room: ROOM, peer: "peer-1" });
    expect(openRequest!.authorization).toBeUndefined();
    // Fresh servers in hand: asking again at once fetches nothing.
    expect(await open.refreshIceServers()).toBe(true);
    expect(server.iceServersRequests).toHaveLength(1);

    let minted = 0;
    const guarded = roomClient({ token: () => `token-${++minted}` });
    await guarded.connect();
    expect(await guarded.refreshIceServers()).toBe(true);
    const tokenRequest = server.iceServersRequests[1]!;
    expect([...tokenRequest.query.keys()]).toEqual([]);
    expect(tokenRequest.authorization).toBe("Bearer token-2");
  });

  it("refuses room and peer beside a token, one without the other, or outside their rules, before any request", async () => {
    const base = { server: server.url };
    await expect(fetchIceServers({ ...base, token: "t", room: ROOM, peer: "p" })).rejects.toThrow(/room and peer come from the join token/);
    await expect(fetchIceServers({ ...base, room: ROOM })).rejects.toThrow(/pass room and peer together/);
    await expect(fetchIceServers({ ...base, room: "a/b", peer: "p" })).rejects.toThrow(/room must be 1-64 characters/);
    await expect(fetchIceServers({ ...base, room: ROOM, peer: "p:q" })).rejects.toThrow(/peer must be 1-128 of/);
    expect(server.iceServersRequests).toEqual([]);
  });

  it("fetches nothing for an app that passed its own servers", async () => {
    server.welcome = () => welcomeFrame("me", [], [turnServer("initial")]);
    const room = roomClient({ iceServers: [] });
    await room.connect();
    expect(await room.refreshIceServers()).toBe(false);
    expect(server.iceServersRequests).toEqual([]);
  });
});

describe("connectTo", () => {
  it("opens links only to the peers it names, at the welcome and on a join, and still answers a peer that signals first", async () => {
    // A broadcast viewer: it links with nobody by itself.
    const { mesh, pcs } = await connectedMesh("viewer-1", ["sender"], { connectTo: (peerId) => peerId === "sender" });
    expect([...mesh.links.keys()]).toEqual(["sender"]);
    server.push({ type: "peer-joined", peer: { id: "viewer-2", meta: {} } });
    await sleep(200);
    expect([...mesh.links.keys()]).toEqual(["sender"]);
    // A peer it did not name signals first (an offer): the link is made, to answer it.
    server.push({ type: "peer-joined", peer: { id: "viewer-3", meta: {} } });
    await sleep(200);
    expect(pcs.has("viewer-3")).toBe(false);
    server.push({ type: "signal", from: "viewer-3", data: { mesh: { session: "s-3", description: { type: "offer", sdp: "v=0 offer" } } } });
    await until(() => pcs.has("viewer-3"), "a link made for viewer-3's offer");
    expect([...mesh.links.keys()].sort()).toEqual(["sender", "viewer-3"]);
  });
});
