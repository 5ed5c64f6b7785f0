/**
 * The credentials API: who may ask, what they get, and how it fits RTCPeerConnection and the TURN
 * REST draft. Each test sets the Worker's variables it needs; the rate limiter is the real binding.
 */
import { describe, expect, it } from "vitest";
import { mintJoinToken } from "../../shared/signaling/join-token.js";
import { TurnKeyring, checkTurnUsername, turnPassword } from "../../shared/turn/credentials.js";
import type { IceServersResponse, TurnRestResponse } from "../../shared/turn/ice-servers.js";
import type { Env } from "../../worker/env.js";
import { TestPeer, fetchWorker, freshRoom } from "./peer.js";
import { ISSUE_ATTEMPTS_PAST_ANY_WINDOW } from "../issue-limit.js";

const SECRET = "relay-shared-secret";
const TURN_URLS = "turn:relay.example.com:3478?transport=udp,turn:relay.example.com:3478?transport=tcp,turns:relay.example.com:443?transport=tcp";
const turnVars: Partial<Env> = { TURN_SECRETS: SECRET, TURN_URLS };
const open: Partial<Env> = { ...turnVars, AUTH_MODE: "open" };
let keyCounter = 0;
/** A fresh API key per test, so the per-caller rate limit of one test never touches another. */
const freshKey = () => `key-${Date.now()}-${++keyCounter}`;

async function get(path: string, vars: Partial<Env>, headers: Record<string, string> = {}) {
  return fetchWorker(`http://relaykit.test${path}`, { headers }, vars);
}

async function errorOf(response: Response) {
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}


describe("GET /v1/ice-servers", () => {
  it("returns an RTCIceServer list with a STUN entry and every TURN URL carrying a working credential", async () => {
    const response = await get("/v1/ice-servers", open);
    expect(response.status).toBe(200);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const body = (await response.json()) as IceServersResponse;
    expect(body.iceServers[0]).toEqual({ urls: ["stun:relay.example.com:3478"] });
    const turn = body.iceServers[1]!;
    expect(turn.urls).toEqual(TURN_URLS.split(","));
    expect(body.ttl).toBe(86_400);

    const [expiry, userId] = turn.username!.split(":");
    expect(Number(expiry)).toBe(Math.floor(Date.parse(body.expiresAt) / 1000));
    expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(86_400 - 5);
    expect(userId).toMatch(/^[0-9a-f-]{36}$/);
    expect(turn.credential).toBe(await turnPassword(SECRET, turn.username!));
  });

  it("takes explicit STUN_URLS instead of deriving them", async () => {
    const body = (await (await get("/v1/ice-servers", { ...open, STUN_URLS: "stun:stun.example.net:3478" })).json()) as IceServersResponse;
    expect(body.iceServers[0]).toEqual({ urls: ["stun:stun.example.net:3478"] });
  });

  it("signs with the first of several secrets, for rotation", async () => {
    const body = (await (await get("/v1/ice-servers", { ...open, TURN_SECRETS: "new-secret, old-secret" })).json()) as IceServersResponse;
    const { username, credential } = body.iceServers[1]!;
    expect((await new TurnKeyring(["new-secret"]).verify(username!, credential!)).ok).toBe(true);
    expect((await new TurnKeyring(["old-secret"]).verify(username!, credential!)).ok).toBe(false);
  });
});

describe("GET /v1/turn-credentials", () => {
  it("answers the TURN REST draft's shape", async () => {
    const response = await get("/v1/turn-credentials?ttl=600", open);
    expect(response.status).toBe(200);
    const body = (await response.json()) as TurnRestResponse;
    expect(Object.keys(body).sort()).toEqual(["password", "ttl", "uris", "username"]);
    expect(body.ttl).toBe(600);
    expect(body.uris).toEqual(TURN_URLS.split(","));
    expect(checkTurnUsername(body.username)).toMatchObject({ ok: true });
    expect((await new TurnKeyring([SECRET]).verify(body.username, body.password)).ok).toBe(true);
  });
});

describe("lifetime", () => {
  it.each([
    ["?ttl=600", {}, 600],
    ["?ttl=999999", {}, 172_800],
    ["?ttl=7200", { TURN_MAX_TTL: "3600", TURN_TTL: "600" }, 3600],
    ["", { TURN_TTL: "3600" }, 3600],
    ["", { TURN_TTL: "10" }, 10],
  ])("gives an API-key caller asking %s with %j %i s (up to TURN_MAX_TTL)", async (query, extra, ttl) => {
    const key = freshKey();
    const response = await get(`/v1/turn-credentials${query}`, { ...turnVars, API_KEYS: key, ...extra }, { Authorization: `Bearer ${key}` });
    const body = (await response.json()) as TurnRestResponse;
    expect(body.ttl).toBe(ttl);
    expect(Number(body.username.split(":")[0]) - Math.floor(Date.now() / 1000)).toBeGreaterThanOrEqual(ttl - 2);
  });

  it.each([
    ["?ttl=172800", { TURN_TTL: "600" }, 600],
    ["?ttl=999999", {}, 86_400],
    ["?ttl=300", { TURN_TTL: "600" }, 300],
    ["", { TURN_TTL: "600" }, 600],
  ])("gives a join-token caller asking %s with %j at most TURN_TTL: %i s", async (query, extra, ttl) => {
    const vars = { ...turnVars, JOIN_SECRET: "join-secret", ...extra };
    const token = await mintJoinToken("join-secret", { room: "standup", sub: `ttl-${freshKey()}` });
    const body = (await (await get(`/v1/turn-credentials${query}`, vars, { Authorization: `Bearer ${token}` })).json()) as TurnRestResponse;
    expect(body.ttl).toBe(ttl);
    expect(Number(body.username.split(":")[0]) - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(ttl + 2);
  });

  it("gives an anonymous caller (AUTH_MODE=open) at most TURN_TTL", async () => {
    const body = (await (await get("/v1/turn-credentials?ttl=172800", { ...open, TURN_TTL: "600" })).json()) as TurnRestResponse;
    expect(body.ttl).toBe(600);
  });

  it.each(["abc", "0", "-5", "1.5", ""])("refuses ttl=%j with 400", async (ttl) => {
    const response = await get(`/v1/turn-credentials?ttl=${ttl}`, open);
    expect(response.status).toBe(400);
    expect((await errorOf(response)).message).toContain("ttl");
  });

  it("refuses a TURN_MAX_TTL longer than any relay accepts, saying what to do", async () => {
    for (const maxTtl of [String(172_801), String(30 * 86_400)]) {
      const response = await get("/v1/ice-servers", { ...open, TURN_MAX_TTL: maxTtl });
      expect(response.status).toBe(500);
      const error = await errorOf(response);
      expect(error.code).toBe("bad-config");
      expect(error.message).toMatch(new RegExp(`^TURN_MAX_TTL is "?${maxTtl}"?.*172800 s.*--max-credential-ttl.*[Ll]ower TURN_MAX_TTL`));
    }
    // The shared maximum itself is fine.
    expect((await get("/v1/ice-servers", { ...open, TURN_MAX_TTL: "172800" })).status).toBe(200);
  });
});

describe("who may ask", () => {
  it("refuses everyone, saying why, when neither API keys nor a join secret is configured", async () => {
    const response = await get("/v1/ice-servers", turnVars);
    expect(response.status).toBe(503);
    const error = await errorOf(response);
    expect(error.code).toBe("auth-not-configured");
    expect(error.message).toMatch(/API_KEYS.*JOIN_SECRET.*AUTH_MODE=open/);
  });

  it("answers 503 when no relay is configured", async () => {
    const response = await get("/v1/ice-servers", { AUTH_MODE: "open" });
    expect(response.status).toBe(503);
    expect((await errorOf(response)).code).toBe("turn-not-configured");
  });

  it("admits any of several API keys and lets an API-key caller choose the user", async () => {
    const [first, second] = [freshKey(), freshKey()];
    const vars = { ...turnVars, API_KEYS: `${first},${second}` };
    for (const key of [first, second]) {
      const response = await get("/v1/turn-credentials?user=alice", vars, { Authorization: `Bearer ${key}` });
      expect(response.status).toBe(200);
      expect(((await response.json()) as TurnRestResponse).username).toMatch(/^\d+:alice$/);
    }
  });

  it.each([
    ["no header", {}],
    ["an unknown key", { Authorization: "Bearer not-a-key" }],
    ["a key of another scheme", { Authorization: "Basic dXNlcjpwYXNz" }],
    ["an empty bearer", { Authorization: "Bearer " }],
  ])("refuses %s with 401", async (_, headers) => {
    const response = await get("/v1/ice-servers", { ...turnVars, API_KEYS: freshKey() }, headers);
    expect(response.status).toBe(401);
    expect((await errorOf(response)).code).toBe("unauthorized");
  });

  it("lets an API-key caller ask for a room member's credential with room and peer (both, checked)", async () => {
    const key = freshKey();
    const vars = { ...turnVars, API_KEYS: key };
    const auth = { Authorization: `Bearer ${key}` };
    const response = await get("/v1/turn-credentials?room=standup&peer=alice", vars, auth);
    expect(response.status).toBe(200);
    const body = (await response.json()) as TurnRestResponse;
    expect(body.username).toMatch(/^\d+:standup\/alice$/);
    expect(checkTurnUsername(body.username)).toMatchObject({ ok: true, user: { kind: "room-member", room: "standup", peerId: "alice" } });
    for (const query of ["room=standup", "peer=alice", "room=standup&peer=alice&user=bob", "room=a/b&peer=alice", "room=standup&peer=a:b"]) {
      const refused = await get(`/v1/turn-credentials?${query}`, vars, auth);
      expect(refused.status, query).toBe(400);
      expect((await errorOf(refused)).code).toBe("bad-request");
    }
  });

  it("lets an anonymous caller (AUTH_MODE=open) pass room and peer, and gives a random plain user otherwise", async () => {
    const member = (await (await get("/v1/turn-credentials?room=standup&peer=dave", open)).json()) as TurnRestResponse;
    expect(member.username).toMatch(/^\d+:standup\/dave$/);
    const anonymous = (await (await get("/v1/turn-credentials", open)).json()) as TurnRestResponse;
    expect(anonymous.username).toMatch(/^\d+:[0-9a-f-]{36}$/);
  });

  it("refuses a user id that is not allowed, instead of rewriting it", async () => {
    const key = freshKey();
    const response = await get("/v1/turn-credentials?user=a:b", { ...turnVars, API_KEYS: key }, { Authorization: `Bearer ${key}` });
    expect(response.status).toBe(400);
    expect((await errorOf(response)).message).toContain("no ':'");
  });

  it("admits a room's join token; the TURN user is its room and sub, <room>/<sub>, and cannot be overridden", async () => {
    const vars = { ...turnVars, JOIN_SECRET: "join-secret" };
    const token = await mintJoinToken("join-secret", { room: "standup", sub: "bob" });
    const response = await get("/v1/turn-credentials", vars, { Authorization: `Bearer ${token}` });
    expect(response.status).toBe(200);
    expect(((await response.json()) as TurnRestResponse).username).toMatch(/^\d+:standup\/bob$/);
    expect((await get("/v1/turn-credentials?user=mallory", vars, { Authorization: `Bearer ${token}` })).status).toBe(400);
    expect((await get("/v1/turn-credentials?room=other&peer=mallory", vars, { Authorization: `Bearer ${token}` })).status).toBe(400);
  });

  it("refuses an expired or forged join token with 401", async () => {
    const vars = { ...turnVars, JOIN_SECRET: "join-secret" };
    const expired = await mintJoinToken("join-secret", { room: "r", sub: "bob", now: Math.floor(Date.now() / 1000) - 900, ttlSeconds: 60 });
    const forged = await mintJoinToken("other-secret", { room: "r", sub: "bob" });
    for (const token of [expired, forged]) {
      const response = await get("/v1/turn-credentials", vars, { Authorization: `Bearer ${token}` });
      expect(response.status).toBe(401);
    }
  });

  it("names the variable when the TURN configuration is incomplete or wrong", async () => {
    const cases: [Partial<Env>, RegExp][] = [
      [{ TURN_URLS, AUTH_MODE: "open" }, /TURN_SECRETS/],
      // Without a fleet; with FLEET_KEYS, TURN_URLS is optional (test/worker/fleet-*.test.ts).
      [{ TURN_SECRETS: SECRET, AUTH_MODE: "open", FLEET_KEYS: "" }, /TURN_URLS/],
      [{ ...open, TURN_URLS: "http://relay.example.com" }, /TURN_URLS/],
      [{ ...open, TURN_TTL: "999999" }, /TURN_TTL/],
      [{ ...open, TURN_TTL: "9" }, /TURN_TTL/],
      [{ ...turnVars, AUTH_MODE: "opne" }, /AUTH_MODE/],
    ];
    for (const [vars, variable] of cases) {
      const response = await get("/v1/ice-servers", vars);
      expect(response.status).toBe(500);
      expect((await errorOf(response)).message).toMatch(variable);
    }
  });
});

describe("CORS", () => {
  const vars = { ...open, ALLOWED_ORIGINS: "https://app.example, https://other.example" };

  it("answers a preflight from an allowed origin", async () => {
    const response = await fetchWorker(
      "http://relaykit.test/v1/ice-servers",
      { method: "OPTIONS", headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" } },
      vars,
    );
    expect(response.status).toBe(204);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example");
    expect(response.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("authorization");
  });

  it("allows a GET from an allowed origin and not from others", async () => {
    const allowed = await get("/v1/ice-servers", vars, { Origin: "https://other.example" });
    expect(allowed.headers.get("Access-Control-Allow-Origin")).toBe("https://other.example");
    const refused = await get("/v1/ice-servers", vars, { Origin: "https://evil.example" });
    expect(refused.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("allows no origin by default", async () => {
    const response = await get("/v1/ice-servers", open, { Origin: "https://app.example" });
    expect(response.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});

describe("rate limit", () => {
  it("lets a backend burst 20 requests, then answers 429 with Retry-After, per caller", async () => {
    const [busy, other] = [freshKey(), freshKey()];
    const vars = { ...turnVars, API_KEYS: `${busy},${other}` };
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < ISSUE_ATTEMPTS_PAST_ANY_WINDOW; i++) {
      const response = await get("/v1/turn-credentials", vars, { Authorization: `Bearer ${busy}` });
      statuses.push(response.status);
      if (response.status === 429) {
        retryAfter = response.headers.get("Retry-After");
        expect((await errorOf(response)).code).toBe("rate-limited");
      }
    }
    expect(statuses.slice(0, 20).every((s) => s === 200)).toBe(true);
    expect(statuses).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    // Another caller is not affected.
    expect((await get("/v1/turn-credentials", vars, { Authorization: `Bearer ${other}` })).status).toBe(200);
  });
});

describe("the welcome frame", () => {
  it("carries iceServers and expiresAt for the joining peer when a relay is configured", async () => {
    const vars = { ...turnVars, JOIN_SECRET: "join-secret" };
    const room = freshRoom("ice");
    const token = await mintJoinToken("join-secret", { room, sub: "carol" });
    const { welcome } = await TestPeer.join(room, { vars, query: { token } });
    expect(welcome.iceServers?.[1]?.username).toMatch(new RegExp(`^\\d+:${room}/carol$`));
    expect(welcome.iceServers?.[1]?.credential).toBe(await turnPassword(SECRET, welcome.iceServers![1]!.username!));
    expect(Date.parse(welcome.expiresAt!)).toBeGreaterThan(Date.now() + 86_000_000);
  });

  it("names the room and the peer in the TURN username in an open room under AUTH_MODE=open", async () => {
    const room = freshRoom("ice-open");
    const { welcome } = await TestPeer.join(room, { vars: open });
    expect(welcome.iceServers?.[1]?.username).toBe(`${Math.floor(Date.parse(welcome.expiresAt!) / 1000)}:${room}/${welcome.peerId}`);
  });

  it("gives no credentials to anyone through an open room when credentials need a key or token: the join is refused", async () => {
    const peer = await TestPeer.connect(freshRoom("ice-closed"), { vars: { ...turnVars, API_KEYS: freshKey() } });
    await peer.waitClosed();
    expect(peer.frames.map((frame) => frame.type)).toEqual(["error"]);
    expect(JSON.stringify(peer.frames)).not.toContain("turn:");
  });

  it("mints from the caller's issuance budget: once the API has refused a token holder, the welcome comes without credentials and says when to fetch them", async () => {
    const vars = { ...turnVars, JOIN_SECRET: "join-secret" };
    const room = freshRoom("ice-limited");
    const token = await mintJoinToken("join-secret", { room, sub: `limited-${freshKey()}` });
    let refused = false;
    for (let i = 0; i < ISSUE_ATTEMPTS_PAST_ANY_WINDOW && !refused; i++) {
      refused = (await get("/v1/turn-credentials", vars, { Authorization: `Bearer ${token}` })).status === 429;
    }
    expect(refused).toBe(true);
    const { peer, welcome } = await TestPeer.join(room, { vars, query: { token } });
    expect(welcome.iceServers).toBeUndefined();
    expect(welcome.expiresAt).toBeUndefined();
    expect(welcome.iceServersWithheld).toMatchObject({ code: "rate-limited", retryAfterMs: 10_000 });
    expect(welcome.iceServersWithheld?.message).toContain("/v1/ice-servers");
    // Signaling is not held back by the credential budget.
    peer.send({ type: "meta", data: { name: "still here" } });
    await peer.expectSilence(200);
    expect(peer.closedWith).toBeNull();
    peer.close();
  });

  it("spends the same budget on every welcome: rejoining again and again stops minting, and the API then refuses too", async () => {
    const vars = { ...turnVars, JOIN_SECRET: "join-secret" };
    const room = freshRoom("ice-rejoin");
    const token = await mintJoinToken("join-secret", { room, sub: `rejoin-${freshKey()}` });
    let withheldAt = -1;
    for (let i = 0; i < ISSUE_ATTEMPTS_PAST_ANY_WINDOW && withheldAt < 0; i++) {
      const { peer, welcome } = await TestPeer.join(room, { vars, query: { token } });
      if (welcome.iceServers === undefined) {
        expect(welcome.iceServersWithheld?.code).toBe("rate-limited");
        withheldAt = i;
      }
      peer.close();
    }
    expect(withheldAt).toBeGreaterThanOrEqual(20);
    expect((await get("/v1/turn-credentials", vars, { Authorization: `Bearer ${token}` })).status).toBe(429);
  });

  it("keys an anonymous joiner's budget by client address under AUTH_MODE=open, as the API does", async () => {
    // The header's value is only a rate key here: a unique one per run keeps runs apart.
    const headers = { "CF-Connecting-IP": `198.51.100.1-${freshKey()}` };
    let refused = false;
    for (let i = 0; i < ISSUE_ATTEMPTS_PAST_ANY_WINDOW && !refused; i++) refused = (await get("/v1/ice-servers", open, headers)).status === 429;
    expect(refused).toBe(true);
    const limited = await TestPeer.join(freshRoom("ice-open-limited"), { vars: open, headers });
    expect(limited.welcome.iceServersWithheld?.code).toBe("rate-limited");
    const other = await TestPeer.join(freshRoom("ice-open-other"), { vars: open, headers: { "CF-Connecting-IP": `203.0.113.1-${freshKey()}` } });
    expect(other.welcome.iceServers).toBeDefined();
    limited.peer.close();
    other.peer.close();
  });

  it("has no iceServers without a relay", async () => {
    const { welcome } = await TestPeer.join(freshRoom("no-ice"));
    expect(welcome.iceServers).toBeUndefined();
    expect(welcome.expiresAt).toBeUndefined();
  });
});
