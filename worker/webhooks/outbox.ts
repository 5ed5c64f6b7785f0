/**
 * The webhook outbox of one Durable Object (a room, or the fleet), in its SQLite storage.
 *
 * An event is recorded synchronously by the handler that changed the state it reports (no await in
 * between), so the outbox's order is the order of events. Delivery takes the head, one at a time:
 * in order per object, at least once. A failed head blocks the events behind it until it is delivered
 * or given up (WEBHOOK_MAX_ATTEMPTS), with exponential backoff (./retry.ts) through the object's one
 * alarm: the object adds `nextDue()` to its alarm's due times and calls `deliverDue()` from `alarm()`.
 *
 * Bounded: at most WEBHOOK_MAX_PENDING waiting; a new event past it is dropped, logged and counted.
 * One run at a time per instance (an in-memory flag; a second instance after eviction may repeat a
 * delivery, which at-least-once allows).
 */
import type { WebhookEvent } from "../../shared/webhooks/events.js";
import { WEBHOOK_MAX_DELIVERIES_PER_RUN, WEBHOOK_MAX_PENDING, WEBHOOK_TIMEOUT_MS, type WebhookConfig } from "../config.js";
import { postWebhook, type PendingEvent } from "./deliver.js";
import { isLastAttempt, retryDelayMs } from "./retry.js";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS webhook_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS webhook_counters (
    name TEXT PRIMARY KEY,
    n INTEGER NOT NULL
  );
`;

/** What the outbox counted, for operators and tests. */
export interface WebhookCounters {
  delivered: number;
  /** Attempts that failed (each retry counts). */
  failedAttempts: number;
  /** Events given up after WEBHOOK_MAX_ATTEMPTS. */
  givenUp: number;
  /** Events refused because WEBHOOK_MAX_PENDING were waiting. */
  refused: number;
}

type OutboxRow = { seq: number; event_id: string; type: string; body: string; attempts: number; next_attempt_at: number };

export interface OutboxHost {
  /** Whose outbox, for log lines: "room <name>" or "fleet". */
  label: string;
  /** Keeps a delivery running after the current event (ctx.waitUntil). */
  waitUntil(promise: Promise<unknown>): void;
  /** Sets the object's alarm again (it reads `nextDue()` among its other due times). */
  reschedule(now: number): Promise<void>;
}

export class WebhookOutbox {
  private delivering = false;

  constructor(
    private readonly sql: SqlStorage,
    private readonly config: WebhookConfig,
    private readonly host: OutboxHost,
  ) {
    sql.exec(SCHEMA);
  }

  /**
   * Appends an event and starts delivering at once. Synchronous up to the insert, so events keep the
   * order of the handlers that record them. Returns false when the outbox is full (the event is dropped).
   */
  record(event: WebhookEvent, now: number): boolean {
    if (this.pending() >= WEBHOOK_MAX_PENDING) {
      this.count("refused");
      console.error(`webhooks (${this.host.label}): ${WEBHOOK_MAX_PENDING} events are waiting already, so ${event.type} ${event.id} was dropped; is WEBHOOK_URL up and answering 2xx?`);
      return false;
    }
    this.sql.exec("INSERT INTO webhook_outbox (event_id, type, body, next_attempt_at) VALUES (?, ?, ?, ?)", event.id, event.type, JSON.stringify(event), now);
    this.start();
    return true;
  }

  /** Starts a delivery run in the background, unless one is running. */
  start(): void {
    if (!this.delivering) this.host.waitUntil(this.deliverDue());
  }

  /**
   * When the object's alarm must next call `deliverDue()`: the head's next attempt; while a run is in
   * flight, a watchdog after its longest POST (the run reschedules itself when done; the watchdog
   * covers an eviction mid-run). Null with nothing waiting.
   */
  nextDue(now: number): number | null {
    if (this.delivering) return now + WEBHOOK_TIMEOUT_MS + 1_000;
    return this.head()?.next_attempt_at ?? null;
  }

  /** Delivers due events head first until one fails, none is due, or the run's bound is reached. */
  async deliverDue(): Promise<void> {
    if (this.delivering) return;
    this.delivering = true;
    try {
      for (let i = 0; i < WEBHOOK_MAX_DELIVERIES_PER_RUN; i++) {
        const head = this.head();
        if (head === null || head.next_attempt_at > Date.now()) break;
        const event: PendingEvent = { eventId: head.event_id, type: head.type, body: head.body };
        const result = await postWebhook(this.config, event);
        if (result.ok) {
          this.sql.exec("DELETE FROM webhook_outbox WHERE seq = ?", head.seq);
          this.count("delivered");
          continue;
        }
        this.count("failedAttempts");
        const attempts = head.attempts + 1;
        if (isLastAttempt(attempts)) {
          this.sql.exec("DELETE FROM webhook_outbox WHERE seq = ?", head.seq);
          this.count("givenUp");
          console.error(`webhooks (${this.host.label}): gave up on ${head.type} ${head.event_id} after ${attempts} attempts (last: ${result.detail}); check that WEBHOOK_URL answers 2xx`);
          continue;
        }
        const wait = retryDelayMs(attempts, this.config.retryBaseMs);
        console.warn(`webhooks (${this.host.label}): ${head.type} ${head.event_id} attempt ${attempts} failed (${result.detail}); next in ${wait} ms`);
        this.sql.exec("UPDATE webhook_outbox SET attempts = ?, next_attempt_at = ? WHERE seq = ?", attempts, Date.now() + wait, head.seq);
        break;
      }
    } catch (error) {
      console.error(`webhooks (${this.host.label}): delivery run failed; the alarm retries`, error);
    } finally {
      this.delivering = false;
    }
    await this.host.reschedule(Date.now());
  }

  pending(): number {
    return this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM webhook_outbox").one().n;
  }

  counters(): WebhookCounters {
    const counters: WebhookCounters = { delivered: 0, failedAttempts: 0, givenUp: 0, refused: 0 };
    for (const row of this.sql.exec<{ name: string; n: number }>("SELECT name, n FROM webhook_counters").toArray()) {
      if (row.name in counters) counters[row.name as keyof WebhookCounters] = row.n;
    }
    return counters;
  }

  private head(): OutboxRow | null {
    return this.sql.exec<OutboxRow>("SELECT * FROM webhook_outbox ORDER BY seq LIMIT 1").toArray()[0] ?? null;
  }

  private count(name: keyof WebhookCounters): void {
    this.sql.exec("INSERT INTO webhook_counters (name, n) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET n = n + 1", name);
  }
}
