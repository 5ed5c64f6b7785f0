/**
 * One delivery attempt: a signed POST of an event's body to WEBHOOK_URL. A 2xx answer delivers it;
 * any other status, a network error or WEBHOOK_TIMEOUT_MS without an answer is a failed attempt.
 * Signed afresh on every attempt, so a retry minutes later still passes the receiver's timestamp tolerance.
 */
import { EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, signWebhook } from "../../shared/webhooks/signature.js";
import { WEBHOOK_TIMEOUT_MS, type WebhookConfig } from "../config.js";

export interface PendingEvent {
  eventId: string;
  type: string;
  /** The event's JSON exactly as signed and sent. */
  body: string;
}

export type DeliveryResult = { ok: true } | { ok: false; detail: string };

export async function postWebhook(config: WebhookConfig, event: PendingEvent): Promise<DeliveryResult> {
  const signature = await signWebhook(config.secrets, event.body, Math.floor(Date.now() / 1000));
  try {
    const response = await fetch(config.url, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        [SIGNATURE_HEADER]: signature,
        [EVENT_ID_HEADER]: event.eventId,
        [EVENT_TYPE_HEADER]: event.type,
        "User-Agent": "relaykit-webhooks/1",
      },
      body: event.body,
      // A redirect is not followed: the signed body would go somewhere nobody configured.
      redirect: "manual",
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    // The answer's body is not read, only released.
    await response.body?.cancel().catch(() => undefined);
    if (response.status >= 200 && response.status < 300) return { ok: true };
    return { ok: false, detail: `HTTP ${response.status}` };
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    if (name === "TimeoutError" || name === "AbortError") return { ok: false, detail: `no answer within ${WEBHOOK_TIMEOUT_MS} ms` };
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
}
