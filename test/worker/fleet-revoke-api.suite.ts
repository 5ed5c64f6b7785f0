/**
 * `POST /v1/turn-credentials/:username/revoke` in real workerd: API keys only, the username checked
 * (an expired one is a no-op), the fleet told (a registered test relay gets the `revoke`), errors in
 * the Worker's JSON shape, the revocation budget of ISSUE_RATE_LIMITER (the real binding), and 503
 * without FLEET_KEYS.
 */
import { describe, expect, it } from "vitest";
import { mintJoinToken } from "../../shared/signaling/join-token.js";
import { DEFAULT_CLOCK_SKEW_SECONDS, MAX_CREDENTIAL_TTL_SECONDS } from "../../shared/turn/credentials.js";
import type { Env } from "../../worker/env.js";
import type { RevokeResponse } from "../../worker/routes/credentials.js";
import { fleetStub, liveRelay } from "./fleet-relay.js";
import { fetchWorker } from "./peer.js";
import { ISSUE_ATTEMPTS_PAST_ANY_WINDOW } from "../issue-limit.js";

let keyCounter = 0;
/** A fresh API key per test: the rate limit of one test never touches another. */
const freshKey = () => `revoke-key-${Date.now()}-${++keyCounter}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);

function revokePath(username: string): string {
  return `http://relaykit.test/v1/turn-credentials/${encodeURIComponent(username)}/revoke`;
}

async function revoke(username: string, vars: Partial<Env>, authorization?: string): Promise<Response> {
  return fetchWorker(revokePath(username), { method: "POST", headers: authorization === undefined ? {} : { Authorization: authorization } }, vars);
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  return ((await response.json()) as { error: { code: string; message: string } }).error;
}

describe("POST /v1/turn-credentials/:username/revoke", () => {
  it("revokes a username across the fleet until it expires (plus clock skew), and answers {revoked, until}", async () => {
    const key = freshKey();
    const relay = await liveRelay("relay-api");
    const expiry = nowSeconds() + 3_600;
    for (const username of [`${expiry}:alice`, `${expiry}:standup/bob`]) {
      const response = await revoke(username, { API_KEYS: key }, `Bearer ${key}`);
      expect(response.status, await response.clone().text()).toBe(200);
      expect(response.headers.get("Cache-Control")).toBe("no-store");
      const until = expiry + DEFAULT_CLOCK_SKEW_SECONDS;
      expect((await response.json()) as RevokeResponse).toEqual({ revoked: username, until });
      expect(await relay.next()).toEqual({ type: "revoke", revocations: [{ room: null, peerId: null, username, until }] });
    }
    relay.close();
  });

  it("answers an expired username 200 without revoking anything", async () => {
    const key = freshKey();
    const relay = await liveRelay("relay-expired");
    const username = `${nowSeconds() - 600}:alice`;
    const response = await revoke(username, { API_KEYS: key }, `Bearer ${key}`);
    expect(response.status).toBe(200);
    expect((await response.json()) as RevokeResponse).toEqual({ revoked: username, until: nowSeconds() - 600 + DEFAULT_CLOCK_SKEW_SECONDS });
    await expect(relay.next(300)).rejects.toThrow(/no message/);
    relay.close();
  });

  it("refuses anything but a TURN REST username, in the JSON error shape", async () => {
    const key = freshKey();
    const tooFar = nowSeconds() + MAX_CREDENTIAL_TTL_SECONDS + 3_600;
    for (const username of ["alice", "12:", "123:has space", `${nowSeconds() + 60}:a/b/c`, `${tooFar}:alice`, "x".repeat(300)]) {
      const response = await revoke(username, { API_KEYS: key }, `Bearer ${key}`);
      expect(response.status, username).toBe(400);
      expect(await errorOf(response), username).toMatchObject({ code: "bad-request", message: expect.stringContaining("URL-encode") });
    }
    const unencoded = await fetchWorker(`http://relaykit.test/v1/turn-credentials/${nowSeconds() + 60}:room/peer/revoke`, { method: "POST", headers: { Authorization: `Bearer ${key}` } }, { API_KEYS: key });
    expect(unencoded.status).toBe(404);
  });

  it("takes API keys only: nothing 401, a wrong key 401, a join token 403", async () => {
    const key = freshKey();
    const username = `${nowSeconds() + 60}:alice`;
    const vars = { API_KEYS: key, JOIN_SECRET: "join-secret-for-the-revoke-test-0123456789" };
    const none = await revoke(username, vars);
    expect(none.status).toBe(401);
    expect((await errorOf(none)).code).toBe("unauthorized");
    expect((await revoke(username, vars, "Bearer not-a-key")).status).toBe(401);
    const token = await mintJoinToken(vars.JOIN_SECRET, { room: "standup", sub: "alice" });
    const member = await revoke(username, vars, `Bearer ${token}`);
    expect(member.status).toBe(403);
    expect(await errorOf(member)).toMatchObject({ code: "forbidden", message: expect.stringContaining("API key") });
    expect((await fleetStub().operatorView()).relays).toEqual([]);
  });

  it("answers 503 fleet-not-configured without FLEET_KEYS", async () => {
    const key = freshKey();
    const response = await revoke(`${nowSeconds() + 60}:alice`, { API_KEYS: key, FLEET_KEYS: "" }, `Bearer ${key}`);
    expect(response.status).toBe(503);
    expect(await errorOf(response)).toMatchObject({ code: "fleet-not-configured", message: expect.stringContaining("FLEET_KEYS") });
  });

  it("is rate-limited per API key, on a budget of its own (issuance is untouched)", async () => {
    const key = freshKey();
    const username = `${nowSeconds() + 60}:alice`;
    let limited: Response | null = null;
    for (let i = 0; i < ISSUE_ATTEMPTS_PAST_ANY_WINDOW && limited === null; i++) {
      const response = await revoke(username, { API_KEYS: key }, `Bearer ${key}`);
      if (response.status === 429) limited = response;
      else expect(response.status).toBe(200);
    }
    expect(limited, `a 429 within ${ISSUE_ATTEMPTS_PAST_ANY_WINDOW} requests`).not.toBeNull();
    expect(limited!.headers.get("Retry-After")).toBe("10");
    expect((await errorOf(limited!)).code).toBe("rate-limited");
    // The same key still gets credentials: revocations spend their own budget.
    const issued = await fetchWorker("http://relaykit.test/v1/turn-credentials", { headers: { Authorization: `Bearer ${key}` } }, { API_KEYS: key, TURN_URLS: "turn:relay.example.com:3478" });
    expect(issued.status).toBe(200);
  });
});
