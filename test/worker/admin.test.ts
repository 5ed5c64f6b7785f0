/**
 * The admin API in real workerd: reading a room, kicking a peer (with and without a ban), closing a
 * room, each endpoint's auth, bodies and limits. Peers are real WebSockets (peer.ts) holding join
 * tokens, so a ban names the token's `sub`. The rooms' resume grace is 2 s in this project.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { mintJoinToken } from "../../shared/signaling/join-token.js";
import { CLOSE_CODES, type KickResult, type PeerMeta, type RoomClosedResult, type RoomView } from "../../shared/signaling/protocol.js";
import { MAX_BANS_PER_ROOM } from "../../worker/config.js";
import type { Env } from "../../worker/env.js";
import { TestPeer, fetchWorker, freshRoom, resuming, type Joined } from "./peer.js";
import { ISSUE_ATTEMPTS_PAST_ANY_WINDOW } from "../issue-limit.js";

const JOIN_SECRET = "admin-test-join-secret";
const GRACE_MS = 2_000;

/**
 * The Worker's variables for a test, with its own API key. The admin budget is kept per key *index*
 * (worker/auth/caller.ts), so every test gets the next index: one test's requests never spend another's.
 */
let keyIndex = 0;
function admin(): { vars: Partial<Env>; key: string } {
  keyIndex += 1;
  const keys = Array.from({ length: keyIndex + 1 }, (_, i) => `admin-key-${i}-${"x".repeat(8)}`);
  return { vars: { API_KEYS: keys.join(","), JOIN_SECRET }, key: keys[keyIndex]! };
}

async function join(room: string, sub: string, vars: Partial<Env>, meta?: PeerMeta): Promise<Joined> {
  const token = await mintJoinToken(JOIN_SECRET, { room, sub, ...(meta && { meta }) });
  return TestPeer.join(room, { query: { token }, vars });
}

function call(method: string, path: string, vars: Partial<Env>, authorization?: string, body?: string): Promise<Response> {
  const headers: Record<string, string> = authorization === undefined ? {} : { Authorization: authorization };
  return fetchWorker(`http://relaykit.test${path}`, { method, headers, ...(body !== undefined && { body }) }, vars);
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  vi.restoreAllMocks();
});

describe("GET /v1/rooms/:room (the room view)", () => {
  it("lists peers with meta, join time, and whether they are connected or away; no-store", async () => {
    const { vars, key } = admin();
    const room = freshRoom("view");
    const before = Date.now();
    const ann = await join(room, "ann", vars, { name: "Ann" });
    const bob = await join(room, "bob", vars);
    await ann.peer.next("peer-joined");
    bob.peer.close(1000, "network drop");
    await sleep(200);

    const response = await call("GET", `/v1/rooms/${room}`, vars, `Bearer ${key}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const view = (await response.json()) as RoomView;
    expect(view.room).toBe(room);
    expect(view.bans).toEqual([]);
    expect(view.peers.map((peer) => [peer.id, peer.meta, peer.connected])).toEqual([
      ["ann", { name: "Ann" }, true],
      ["bob", {}, false],
    ]);
    for (const peer of view.peers) {
      const joinedAt = Date.parse(peer.joinedAt!);
      expect(joinedAt).toBeGreaterThanOrEqual(before - 1);
      expect(joinedAt).toBeLessThanOrEqual(Date.now());
    }
    expect(view.peers[0]!.awaySince).toBeNull();
    expect(Date.parse(view.peers[1]!.awaySince!)).toBeGreaterThan(before);
    ann.peer.close();
  });

  it("shows a room nobody has joined as empty", async () => {
    const { vars, key } = admin();
    const response = await call("GET", `/v1/rooms/${freshRoom("never")}`, vars, `Bearer ${key}`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as RoomView).peers).toEqual([]);
  });

  it("keeps the WebSocket join with Upgrade, and the 426 of a bare GET", async () => {
    const { vars } = admin();
    const room = freshRoom("upgrade");
    const response = await call("GET", `/v1/rooms/${room}`, vars);
    expect(response.status).toBe(426);
    expect(await errorOf(response)).toMatchObject({ code: "upgrade-required" });
    const { peer, welcome } = await join(room, "ann", vars);
    expect(welcome.peerId).toBe("ann");
    peer.close();
  });

  it("refuses a join token (403), an unknown bearer (401), and answers 503 without API_KEYS", async () => {
    const { vars } = admin();
    const room = freshRoom("auth");
    const token = await mintJoinToken(JOIN_SECRET, { room, sub: "ann" });
    const asMember = await call("GET", `/v1/rooms/${room}`, vars, `Bearer ${token}`);
    expect(asMember.status).toBe(403);
    expect(asMember.headers.get("Cache-Control")).toBe("no-store");
    expect(await errorOf(asMember)).toMatchObject({ code: "forbidden" });
    const wrongKey = await call("GET", `/v1/rooms/${room}`, vars, "Bearer not-a-key");
    expect(wrongKey.status).toBe(401);
    expect(await errorOf(wrongKey)).toMatchObject({ code: "unauthorized" });
    const noKeys = await call("GET", `/v1/rooms/${room}`, { JOIN_SECRET }, `Bearer ${token}`);
    expect(noKeys.status).toBe(503);
    expect(await errorOf(noKeys)).toMatchObject({ code: "auth-not-configured" });
  });

  it("refuses a bad room name with 400", async () => {
    const { vars, key } = admin();
    const response = await call("GET", `/v1/rooms/${"x".repeat(65)}`, vars, `Bearer ${key}`);
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "bad-room" });
  });

  it("is rate-limited per API key (429 with Retry-After), apart from the credential budget", async () => {
    const { vars, key } = admin();
    const room = freshRoom("limit");
    let refused: Response | null = null;
    // ISSUE_RATE_LIMITER allows 50 per 10 s per key, counted in fixed windows.
    for (let i = 0; i < ISSUE_ATTEMPTS_PAST_ANY_WINDOW && refused === null; i++) {
      const response = await call("GET", `/v1/rooms/${room}`, vars, `Bearer ${key}`);
      if (response.status === 429) refused = response;
      else expect(response.status).toBe(200);
    }
    expect(refused).not.toBeNull();
    expect(refused!.headers.get("Retry-After")).toBe("10");
    expect(await errorOf(refused!)).toMatchObject({ code: "rate-limited" });
    // The same key still gets TURN credentials: the admin budget is a budget of its own.
    const credentials = await call("GET", "/v1/ice-servers", { ...vars, TURN_SECRETS: "s", TURN_URLS: "turn:relay.example.com:3478" }, `Bearer ${key}`);
    expect(credentials.status).toBe(200);
  });
});

describe("POST /v1/rooms/:room/peers/:peer/kick", () => {
  it("closes the peer with an error frame and 4004; the others see peer-left once; it cannot resume", async () => {
    const { vars, key } = admin();
    const room = freshRoom("kick");
    const ann = await join(room, "ann", vars);
    const bob = await join(room, "bob", vars);
    await ann.peer.next("peer-joined");

    const response = await call("POST", `/v1/rooms/${room}/peers/bob/kick`, vars, `Bearer ${key}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    expect((await response.json()) as KickResult).toEqual({ kicked: "bob", bannedUntil: null });

    const error = await bob.peer.next("error");
    expect(error.code).toBe("kicked");
    expect((await bob.peer.waitClosed()).code).toBe(CLOSE_CODES.kicked);
    expect(await ann.peer.next("peer-left")).toEqual({ type: "peer-left", peerId: "bob" });
    // Not again when bob's close event arrives, nor when its grace period would have ended.
    await ann.peer.expectSilence(GRACE_MS + 500);

    // The fleet was handed the kick: bob's credentials, until every one a member can hold has expired
    // (this project has no TURN secret, so the longest a credential can live).
    const revocations = await runInDurableObject(env.FLEET.get(env.FLEET.idFromName("fleet")), (_, state) =>
      state.storage.sql.exec<{ room: string; peer_id: string | null; until: number }>("SELECT room, peer_id, until FROM revocations WHERE room = ?", room).toArray(),
    );
    expect(revocations.map((row) => row.peer_id)).toEqual(["bob"]);
    expect(revocations[0]!.until).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 172_800 - 10);

    // The resume token went with the kick: offering it gives a fresh join, which ann sees as one.
    const viaResume = await TestPeer.join(room, resuming(bob.welcome.resumeToken, { vars, query: { token: await mintJoinToken(JOIN_SECRET, { room, sub: "bob" }) } }));
    expect(viaResume.welcome.resumed).toBe(false);
    expect(await ann.peer.next("peer-joined")).toMatchObject({ peer: { id: "bob" } });
    ann.peer.close();
    viaResume.peer.close();
  });

  it("removes a peer that is away within its grace period; the others see peer-left once", async () => {
    const { vars, key } = admin();
    const room = freshRoom("kick-away");
    const ann = await join(room, "ann", vars);
    const bob = await join(room, "bob", vars);
    await ann.peer.next("peer-joined");
    bob.peer.close(1000, "network drop");
    await sleep(200);

    const response = await call("POST", `/v1/rooms/${room}/peers/bob/kick`, vars, `Bearer ${key}`);
    expect(response.status).toBe(200);
    expect(await ann.peer.next("peer-left")).toEqual({ type: "peer-left", peerId: "bob" });
    await ann.peer.expectSilence(GRACE_MS + 500);
    const view = (await (await call("GET", `/v1/rooms/${room}`, vars, `Bearer ${key}`)).json()) as RoomView;
    expect(view.peers.map((peer) => peer.id)).toEqual(["ann"]);
    // Its resume token is gone too: a resume is a fresh join.
    const back = await TestPeer.join(room, resuming(bob.welcome.resumeToken, { vars, query: { token: await mintJoinToken(JOIN_SECRET, { room, sub: "bob" }) } }));
    expect(back.welcome.resumed).toBe(false);
    back.peer.close();
    ann.peer.close();
  });

  it("with banSeconds refuses the same sub (4004, an error saying until when) until the ban ends, then lets it in", async () => {
    const { vars, key } = admin();
    const room = freshRoom("ban");
    const ann = await join(room, "ann", vars);
    const bob = await join(room, "bob", vars);
    await ann.peer.next("peer-joined");

    const response = await call("POST", `/v1/rooms/${room}/peers/bob/kick`, vars, `Bearer ${key}`, JSON.stringify({ banSeconds: 2 }));
    expect(response.status).toBe(200);
    const kicked = (await response.json()) as KickResult;
    expect(kicked.kicked).toBe("bob");
    const until = Date.parse(kicked.bannedUntil!);
    expect(until - Date.now()).toBeGreaterThan(1_000);
    expect(until - Date.now()).toBeLessThanOrEqual(2_000);
    expect((await bob.peer.next("error")).message).toContain(kicked.bannedUntil!);
    expect((await bob.peer.waitClosed()).code).toBe(CLOSE_CODES.kicked);
    await ann.peer.next("peer-left");

    const view = (await (await call("GET", `/v1/rooms/${room}`, vars, `Bearer ${key}`)).json()) as RoomView;
    expect(view.bans).toEqual([{ peerId: "bob", until: kicked.bannedUntil }]);

    // During the ban: accepted only to be told, then closed; ann sees nothing.
    const refused = await TestPeer.connect(room, { query: { token: await mintJoinToken(JOIN_SECRET, { room, sub: "bob" }) }, vars });
    const error = await refused.next("error");
    expect(error.code).toBe("banned");
    expect(error.message).toContain(kicked.bannedUntil!);
    expect((await refused.waitClosed()).code).toBe(CLOSE_CODES.kicked);
    await ann.peer.expectSilence(200);
    // Nor does bob's token get relay credentials during the ban; ann's still does.
    const turnVars = { ...vars, TURN_SECRETS: "admin-test-turn-secret", TURN_URLS: "turn:127.0.0.1:3478" };
    const bobToken = await mintJoinToken(JOIN_SECRET, { room, sub: "bob" });
    const bobIce = await call("GET", "/v1/ice-servers", turnVars, `Bearer ${bobToken}`);
    expect(bobIce.status).toBe(403);
    expect(await errorOf(bobIce)).toMatchObject({ code: "banned", message: expect.stringContaining(kicked.bannedUntil!) });
    expect((await call("GET", "/v1/turn-credentials", turnVars, `Bearer ${bobToken}`)).status).toBe(403);
    expect((await call("GET", "/v1/ice-servers", turnVars, `Bearer ${await mintJoinToken(JOIN_SECRET, { room, sub: "ann" })}`)).status).toBe(200);

    // After it: in again, and the sweep has pruned the ban from the room's storage.
    await sleep(Math.max(0, until - Date.now()) + 300);
    expect((await call("GET", "/v1/ice-servers", turnVars, `Bearer ${bobToken}`)).status).toBe(200);
    const back = await join(room, "bob", vars);
    expect(back.welcome.peerId).toBe("bob");
    expect((await ann.peer.next("peer-joined")).peer.id).toBe("bob");
    const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
    let stored = -1;
    for (let i = 0; i < 20; i++) {
      stored = await runInDurableObject(stub, (_instance, state) => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM bans").one().n);
      if (stored === 0) break;
      await sleep(100);
    }
    expect(stored).toBe(0);
    back.peer.close();
    ann.peer.close();
  });

  it("answers 404 peer-not-found for a peer not in the room, and 400 for a bad peer id", async () => {
    const { vars, key } = admin();
    const room = freshRoom("kick-404");
    const missing = await call("POST", `/v1/rooms/${room}/peers/nobody/kick`, vars, `Bearer ${key}`);
    expect(missing.status).toBe(404);
    expect(await errorOf(missing)).toMatchObject({ code: "peer-not-found" });
    const bad = await call("POST", `/v1/rooms/${room}/peers/a:b/kick`, vars, `Bearer ${key}`);
    expect(bad.status).toBe(400);
    expect(await errorOf(bad)).toMatchObject({ code: "bad-peer" });
  });

  it("refuses no key (401) and a join token (403)", async () => {
    const { vars } = admin();
    const room = freshRoom("kick-auth");
    const ann = await join(room, "ann", vars);
    const none = await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars);
    expect(none.status).toBe(401);
    expect(none.headers.get("Cache-Control")).toBe("no-store");
    const token = await mintJoinToken(JOIN_SECRET, { room, sub: "ann" });
    const asMember = await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars, `Bearer ${token}`);
    expect(asMember.status).toBe(403);
    await ann.peer.expectSilence(200);
    ann.peer.close();
  });

  it("refuses bad bodies with 400 and a body over 1 KiB with 413, leaving the peer in", async () => {
    const { vars, key } = admin();
    const room = freshRoom("kick-body");
    const ann = await join(room, "ann", vars);
    for (const body of ["{", "[]", "7", '{"banSeconds":-1}', '{"banSeconds":1.5}', '{"banSeconds":604801}', '{"banSeconds":"10"}', '{"ban":10}']) {
      const response = await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars, `Bearer ${key}`, body);
      expect(response.status, body).toBe(400);
      expect(await errorOf(response), body).toMatchObject({ code: "bad-request", message: expect.stringContaining("banSeconds") });
    }
    const large = await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars, `Bearer ${key}`, `{"banSeconds":1${" ".repeat(1024)}}`);
    expect(large.status).toBe(413);
    expect(await errorOf(large)).toMatchObject({ code: "too-large" });
    // A body with no Content-Length (streamed) is read only up to the limit: an endless one is not drained.
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1;
        controller.enqueue(new TextEncoder().encode(" ".repeat(256)));
      },
    });
    const streamed = await fetchWorker(`http://relaykit.test/v1/rooms/${room}/peers/ann/kick`, { method: "POST", headers: { Authorization: `Bearer ${key}` }, body: endless }, vars);
    expect(streamed.status).toBe(413);
    expect(pulled).toBeLessThan(16);
    await ann.peer.expectSilence(200);
    expect(ann.peer.closedWith).toBeNull();
    // The longest ban is accepted.
    const longest = await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars, `Bearer ${key}`, '{"banSeconds":604800}');
    expect(longest.status).toBe(200);
    expect(Date.parse(((await longest.json()) as KickResult).bannedUntil!) - Date.now()).toBeGreaterThan(604_799_000);
  });
});

describe("POST …/kick: bans and the revocation hook at their limits", () => {
  it("refuses a ban past MAX_BANS_PER_ROOM bans in force (409), leaving the peer in; ended bans do not count", async () => {
    const { vars, key } = admin();
    const room = freshRoom("ban-cap");
    const ann = await join(room, "ann", vars);
    const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
    const now = Date.now();
    await runInDurableObject(stub, (_instance, state) => {
      for (let i = 0; i < MAX_BANS_PER_ROOM; i++) state.storage.sql.exec("INSERT INTO bans (peer_id, until) VALUES (?, ?)", `in-force-${i}`, now + 600_000);
      state.storage.sql.exec("INSERT INTO bans (peer_id, until) VALUES ('ended', ?)", now - 1);
    });
    const refused = await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars, `Bearer ${key}`, '{"banSeconds":60}');
    expect(refused.status).toBe(409);
    expect(await errorOf(refused)).toMatchObject({ code: "too-many-bans", message: expect.stringContaining(`${MAX_BANS_PER_ROOM} bans`) });
    await ann.peer.expectSilence(200);
    expect(ann.peer.closedWith).toBeNull();

    // One ends: the next ban fits.
    await runInDurableObject(stub, (_instance, state) => void state.storage.sql.exec("UPDATE bans SET until = ? WHERE peer_id = 'in-force-0'", now - 1));
    expect((await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars, `Bearer ${key}`, '{"banSeconds":60}')).status).toBe(200);
    expect((await ann.peer.waitClosed()).code).toBe(CLOSE_CODES.kicked);
  });

  it("refuses a ban when the Worker has no JOIN_SECRET (peer ids are random, a ban would hold nobody)", async () => {
    const { vars, key } = admin();
    const room = freshRoom("ban-open");
    const response = await call("POST", `/v1/rooms/${room}/peers/anyone/kick`, { ...vars, JOIN_SECRET: "", AUTH_MODE: "open" }, `Bearer ${key}`, '{"banSeconds":60}');
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatchObject({ code: "bad-request", message: expect.stringContaining("JOIN_SECRET") });
  });

  it("kicks even when the fleet cannot take the revocation", async () => {
    const { vars, key } = admin();
    const room = freshRoom("hook-fails");
    const ann = await join(room, "ann", vars);
    // The room object's fleet binding fails, as an unreachable fleet would.
    await runInDurableObject(env.ROOMS.get(env.ROOMS.idFromName(room)), (instance) => {
      const broken = { idFromName: () => { throw new Error("the fleet is down"); }, get: () => { throw new Error("the fleet is down"); } };
      (instance as unknown as { env: Env }).env = { ...(instance as unknown as { env: Env }).env, FLEET: broken as unknown as Env["FLEET"] };
    });
    const failures: unknown[] = [];
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => void failures.push(args[0]));
    const response = await call("POST", `/v1/rooms/${room}/peers/ann/kick`, vars, `Bearer ${key}`);
    expect(response.status).toBe(200);
    expect((await ann.peer.waitClosed()).code).toBe(CLOSE_CODES.kicked);
    expect(failures).toEqual([expect.stringContaining("the revocation hook failed")]);
  });
});

describe("DELETE /v1/rooms/:room", () => {
  it("closes everyone with an error frame and 4005, empties the roster, and drops every resume token", async () => {
    const { vars, key } = admin();
    const room = freshRoom("close");
    const ann = await join(room, "ann", vars);
    const bob = await join(room, "bob", vars);
    const cid = await join(room, "cid", vars);
    await ann.peer.next("peer-joined");
    await ann.peer.next("peer-joined");
    await bob.peer.next("peer-joined");
    cid.peer.close(1000, "network drop");
    await sleep(200);

    const response = await call("DELETE", `/v1/rooms/${room}`, vars, `Bearer ${key}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    expect((await response.json()) as RoomClosedResult).toEqual({ closed: room, peers: 3 });
    for (const { peer } of [ann, bob]) {
      expect((await peer.next("error")).code).toBe("room-closed");
      expect((await peer.waitClosed()).code).toBe(CLOSE_CODES.roomClosed);
    }
    const view = (await (await call("GET", `/v1/rooms/${room}`, vars, `Bearer ${key}`)).json()) as RoomView;
    expect(view.peers).toEqual([]);

    const back = await TestPeer.join(room, resuming(ann.welcome.resumeToken, { vars, query: { token: await mintJoinToken(JOIN_SECRET, { room, sub: "ann" }) } }));
    expect(back.welcome.resumed).toBe(false);
    expect(back.welcome.peers).toEqual([]);
    back.peer.close();
  });

  it("answers an empty room with peers: 0, and refuses no key (401), a join token (403) and a bad name (400)", async () => {
    const { vars, key } = admin();
    const room = freshRoom("close-empty");
    const empty = await call("DELETE", `/v1/rooms/${room}`, vars, `Bearer ${key}`);
    expect(((await empty.json()) as RoomClosedResult).peers).toBe(0);
    expect((await call("DELETE", `/v1/rooms/${room}`, vars)).status).toBe(401);
    const token = await mintJoinToken(JOIN_SECRET, { room, sub: "ann" });
    expect((await call("DELETE", `/v1/rooms/${room}`, vars, `Bearer ${token}`)).status).toBe(403);
    expect((await call("DELETE", "/v1/rooms/bad%20name", vars, `Bearer ${key}`)).status).toBe(400);
  });
});
