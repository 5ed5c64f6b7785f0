/**
 * A room's webhook events: room-started, peer-joined, peer-left and room-finished, into the room
 * object's outbox (./outbox.ts). The room's session (its name, when it started, when it may finish)
 * lives in SQLite: the object may be evicted while it waits to finish.
 *
 * A session starts when a new peer joins an empty room with no session running, and finishes once
 * the room has been empty for the finish delay (ROOM_FINISH_DELAY_MS): a peer joining meanwhile
 * simply continues it. Its usage is what the relays reported for the room during the session: the
 * room's totals when it finishes less its totals when it started (GET /v1/rooms/:room/usage has the
 * room's figures over all its sessions). Every call is synchronous, so an event is recorded in the same handler, with
 * no await between the state change and the insert.
 */
import type { PeerMeta, UsageFigures } from "../../shared/signaling/protocol.js";
import { webhookEvent, type PeerLeftReason } from "../../shared/webhooks/events.js";
import type { WebhookConfig } from "../config.js";
import type { WebhookOutbox } from "./outbox.js";

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS webhook_room (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    room TEXT,
    started_at INTEGER,
    finish_at INTEGER,
    usage_at_start TEXT
  );
  INSERT OR IGNORE INTO webhook_room (id) VALUES (1);
`;

type SessionRow = { room: string | null; started_at: number | null; finish_at: number | null; usage_at_start: string | null };

const NO_USAGE: UsageFigures = { bytesToPeers: 0, bytesToClient: 0, allocationSeconds: 0 };

/** The usage of a session: the totals at its end less those at its start (never below zero). */
export function sessionUsage(atEnd: UsageFigures, atStart: UsageFigures): UsageFigures {
  return {
    bytesToPeers: Math.max(0, atEnd.bytesToPeers - atStart.bytesToPeers),
    bytesToClient: Math.max(0, atEnd.bytesToClient - atStart.bytesToClient),
    // Seconds to the millisecond, as stored: the difference must not grow float noise.
    allocationSeconds: Math.max(0, Math.round((atEnd.allocationSeconds - atStart.allocationSeconds) * 1000) / 1000),
  };
}

function parseUsage(text: string | null): UsageFigures {
  if (text === null) return NO_USAGE;
  try {
    const value = JSON.parse(text) as Partial<UsageFigures>;
    return { bytesToPeers: Number(value.bytesToPeers) || 0, bytesToClient: Number(value.bytesToClient) || 0, allocationSeconds: Number(value.allocationSeconds) || 0 };
  } catch {
    return NO_USAGE;
  }
}

export class RoomWebhooks {
  constructor(
    private readonly sql: SqlStorage,
    readonly outbox: WebhookOutbox,
    private readonly config: WebhookConfig,
  ) {
    sql.exec(SCHEMA);
  }

  /** A new peer (not a resume) joined; `wasEmpty`: nobody was in the room before it. */
  peerJoined(room: string | undefined, peerId: string, meta: PeerMeta, wasEmpty: boolean, now: number, usage: () => UsageFigures): void {
    const session = this.session();
    const name = room ?? session.room;
    if (name === null) return;
    if (session.started_at === null && wasEmpty) {
      this.sql.exec("UPDATE webhook_room SET room = ?, started_at = ?, finish_at = NULL, usage_at_start = ?", name, now, JSON.stringify(usage()));
      this.outbox.record(webhookEvent("room-started", { startedAt: new Date(now).toISOString() }, now, name), now);
    } else {
      // A join within the finish delay continues the session.
      this.sql.exec("UPDATE webhook_room SET room = ?, finish_at = NULL", name);
    }
    this.outbox.record(webhookEvent("peer-joined", { peerId, meta }, now, name), now);
  }

  /** A peer left for good; `nowEmpty`: it was the last one, so the room finishes after the delay. */
  peerLeft(room: string | undefined, peerId: string, reason: PeerLeftReason, nowEmpty: boolean, now: number): void {
    const session = this.session();
    const name = room ?? session.room;
    if (name === null) {
      console.error(`webhooks (room): peer-left for ${peerId} not sent: the room's name is unknown (no join was seen since webhooks were configured)`);
      return;
    }
    this.outbox.record(webhookEvent("peer-left", { peerId, reason }, now, name), now);
    if (nowEmpty) this.sql.exec("UPDATE webhook_room SET room = ?, finish_at = ?", name, now + this.config.roomFinishDelayMs);
  }

  /** The earliest of the outbox's next attempt and the pending finish. */
  nextDue(now: number): number | null {
    const due = [this.outbox.nextDue(now), this.session().finish_at].filter((t): t is number => t !== null);
    return due.length === 0 ? null : Math.min(...due);
  }

  /** From the room's alarm: records room-finished if the delay is over and the room still empty; then delivers. */
  alarm(now: number, isEmpty: boolean, usage: () => UsageFigures): void {
    const session = this.session();
    if (session.finish_at !== null && session.finish_at <= now) {
      if (isEmpty && session.room !== null) {
        const startedAt = session.started_at === null ? null : new Date(session.started_at).toISOString();
        this.outbox.record(webhookEvent("room-finished", { startedAt, finishedAt: new Date(now).toISOString(), usage: sessionUsage(usage(), parseUsage(session.usage_at_start)) }, now, session.room), now);
        this.sql.exec("UPDATE webhook_room SET started_at = NULL, finish_at = NULL");
      } else {
        // Someone is in the room again: the session goes on.
        this.sql.exec("UPDATE webhook_room SET finish_at = NULL");
      }
    }
    this.outbox.start();
  }

  private session(): SessionRow {
    return this.sql.exec<SessionRow>("SELECT room, started_at, finish_at, usage_at_start FROM webhook_room WHERE id = 1").one();
  }
}
