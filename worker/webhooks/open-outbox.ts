/**
 * An object's outbox, if webhooks are configured. No config: null, and nothing is ever recorded (no
 * table, no cost). A bad or half config: null too, with one console error saying what to fix; the
 * room or fleet runs on without webhooks rather than failing.
 */
import { readWebhookConfig, type WebhookConfig } from "../config.js";
import type { Env } from "../env.js";
import { WebhookOutbox, type OutboxHost } from "./outbox.js";

export function readWebhookConfigOrLog(env: Env, label: string): WebhookConfig | null {
  try {
    return readWebhookConfig(env);
  } catch (error) {
    console.error(`webhooks (${label}): off: ${(error as Error).message}`);
    return null;
  }
}

export function openOutbox(sql: SqlStorage, env: Env, host: OutboxHost): WebhookOutbox | null {
  const config = readWebhookConfigOrLog(env, host.label);
  return config === null ? null : new WebhookOutbox(sql, config, host);
}
