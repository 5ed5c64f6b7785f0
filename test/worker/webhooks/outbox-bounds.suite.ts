/**
 * The outbox's bound and a bad config, in real workerd: at most WEBHOOK_MAX_PENDING events wait per
 * object, the next is refused (logged, counted); a bad or half config turns webhooks off with one
 * error naming what to fix, rather than failing the object.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, expect, it, vi } from "vitest";
import { webhookEvent } from "../../../shared/webhooks/events.js";
import { WEBHOOK_MAX_PENDING, readWebhookConfig } from "../../../worker/config.js";
import type { Env } from "../../../worker/env.js";
import { readWebhookConfigOrLog } from "../../../worker/webhooks/open-outbox.js";
import { WebhookOutbox } from "../../../worker/webhooks/outbox.js";
import { freshRoom } from "../peer.js";

/** In the webhook suites' band, with nothing listening: every attempt fails at once. */
const NOBODY_LISTENS = "http://127.0.0.1:27501/hook";

afterEach(() => {
  vi.restoreAllMocks();
});

it(`keeps at most ${WEBHOOK_MAX_PENDING} events waiting; the next is refused and counted`, async () => {
  const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
  vi.spyOn(console, "warn").mockImplementation(() => undefined);
  const config = readWebhookConfig({ ...(env as Env), WEBHOOK_URL: NOBODY_LISTENS })!;
  // A room object nobody joins: only this outbox writes to its storage.
  const stub = env.ROOMS.get(env.ROOMS.idFromName(freshRoom("bounds")));
  const result = await runInDurableObject(stub, (_instance, state) => {
    const runs: Promise<unknown>[] = [];
    const outbox = new WebhookOutbox(state.storage.sql, config, { label: "bounds test", waitUntil: (p) => runs.push(p), reschedule: async () => undefined });
    const now = Date.now();
    const accepted = Array.from({ length: WEBHOOK_MAX_PENDING }, (_, i) => outbox.record(webhookEvent("peer-joined", { peerId: `p${i}`, meta: {} }, now, "bounds"), now));
    const refused = outbox.record(webhookEvent("peer-joined", { peerId: "one-too-many", meta: {} }, now, "bounds"), now);
    return Promise.all(runs).then(() => ({ accepted: accepted.every(Boolean), refused, pending: outbox.pending(), counters: outbox.counters() }));
  });
  expect(result.accepted).toBe(true);
  expect(result.refused).toBe(false);
  expect(result.pending).toBe(WEBHOOK_MAX_PENDING);
  expect(result.counters.refused).toBe(1);
  // The head's one attempt failed (nobody listens), so it waits for a retry: nothing was lost.
  expect(result.counters.failedAttempts).toBe(1);
  expect(errors.mock.calls.some((call) => String(call[0]).includes(`${WEBHOOK_MAX_PENDING} events are waiting already`))).toBe(true);
});

it("a bad or half config: webhooks off, one error saying what to fix", () => {
  const errors = vi.spyOn(console, "error").mockImplementation(() => undefined);
  expect(readWebhookConfigOrLog({ ...(env as Env), WEBHOOK_URL: "http://app.example/hook" }, "room")).toBeNull();
  expect(readWebhookConfigOrLog({ ...(env as Env), WEBHOOK_SECRET: "" }, "fleet")).toBeNull();
  expect(errors).toHaveBeenCalledTimes(2);
  expect(String(errors.mock.calls[0]![0])).toMatch(/webhooks \(room\): off: WEBHOOK_URL .* must be https:\/\//);
  expect(String(errors.mock.calls[1]![0])).toMatch(/webhooks \(fleet\): off: WEBHOOK_URL is set but WEBHOOK_SECRET is not/);
  expect(readWebhookConfigOrLog(env as Env, "room")).not.toBeNull();
});
