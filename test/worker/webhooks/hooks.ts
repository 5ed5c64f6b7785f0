/**
 * Reading the webhook receiver (test/node/webhook-receiver.ts) from workerd: what it recorded, and
 * telling it to fail requests. Every wait is bounded.
 */
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { WebhookEvent } from "../../../shared/webhooks/events.js";
import { EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, verifyWebhook } from "../../../shared/webhooks/signature.js";

import type { RecordedRequest } from "../../recorded-webhook.js";

export type { RecordedRequest };

const receiver = () => new URL(env.WEBHOOK_URL!).origin;
/** The project's secrets (vitest.config.ts): the current one first, then the older one. */
export const webhookSecrets = (): string[] => env.WEBHOOK_SECRET!.split(",").map((s) => s.trim());

function query(match: string[]): string {
  return match.map((text) => `match=${encodeURIComponent(text)}`).join("&");
}

/** Requests whose body contains every `match` text, in arrival order. */
export async function received(...match: string[]): Promise<RecordedRequest[]> {
  const response = await fetch(`${receiver()}/control/requests?${query(match)}`);
  return (await response.json()) as RecordedRequest[];
}

/** The next `count` hook requests whose body contains every `match` text are answered 500. */
export async function failNext(count: number, ...match: string[]): Promise<void> {
  const response = await fetch(`${receiver()}/control/fail?${query(match)}&count=${count}`, { method: "POST" });
  await response.body?.cancel();
}

/** Waits (bounded) until the accepted (2xx) requests matching `match` satisfy `done`; returns them all. */
export async function waitForRequests(done: (accepted: RecordedRequest[]) => boolean, match: string[], timeoutMs = 8_000): Promise<RecordedRequest[]> {
  const deadline = Date.now() + timeoutMs;
  let all: RecordedRequest[] = [];
  while (Date.now() < deadline) {
    all = await received(...match);
    if (done(all.filter((r) => r.status === 200))) return all;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the receiver did not get what was expected within ${timeoutMs} ms; it has: ${JSON.stringify(all.map((r) => [r.status, r.body]))}`);
}

/** The events a room's receiver accepted, in order, once `count` of them have arrived. */
export async function roomEvents(room: string, count: number, timeoutMs?: number): Promise<WebhookEvent[]> {
  const all = await waitForRequests((accepted) => accepted.length >= count, [`"room":"${room}"`], timeoutMs);
  return accepted(all);
}

export function accepted(requests: RecordedRequest[]): WebhookEvent[] {
  return requests.filter((r) => r.status === 200).map((r) => JSON.parse(r.body) as WebhookEvent);
}

/** What a compact comparison needs: type, peer and reason. */
export function summary(event: WebhookEvent): string {
  const data = event.data as { peerId?: string; reason?: string };
  return [event.type, data.peerId, data.reason].filter((part) => part !== undefined).join(" ");
}

/**
 * Checks each request as an app backend would: POST to the hook path, JSON, id and type headers that
 * match the body, and a signature that verifies under each of the two secrets on its own.
 */
export async function expectSigned(requests: RecordedRequest[]): Promise<void> {
  const [current, old] = webhookSecrets();
  for (const request of requests) {
    expect(request.method).toBe("POST");
    expect(request.path).toBe("/hook");
    expect(request.headers["content-type"]).toBe("application/json");
    const event = JSON.parse(request.body) as WebhookEvent;
    expect(request.headers[EVENT_ID_HEADER.toLowerCase()]).toBe(event.id);
    expect(request.headers[EVENT_TYPE_HEADER.toLowerCase()]).toBe(event.type);
    const signature = request.headers[SIGNATURE_HEADER.toLowerCase()];
    expect(signature).toMatch(/^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    for (const secret of [current!, old!]) {
      const verified = await verifyWebhook({ body: request.body, signature, secrets: secret });
      expect(verified.ok, JSON.stringify(verified)).toBe(true);
    }
    const forged = await verifyWebhook({ body: request.body, signature, secrets: "not-the-secret-0123456789abcdef-0123456" });
    expect(forged.ok).toBe(false);
  }
}
