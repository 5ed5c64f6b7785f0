/**
 * Webhook events: what the Worker POSTs to WEBHOOK_URL, defined once for the Worker (which emits
 * them) and for app backends (which verify and read them, ./signature.ts). Web-standard only: runs
 * on Workers, Node >= 20 and in browsers.
 *
 * Every event is one JSON object: `{id, type, createdAt, room?, data}`. `id` is unique per event and
 * stays the same across retries (deliveries are at least once: deduplicate on it). Room events carry
 * `room` and arrive in order per room; fleet events (`relay-*`) carry no room and arrive in order
 * among themselves.
 */
import type { PeerMeta, UsageFigures } from "../signaling/protocol.js";

export const WEBHOOK_EVENT_TYPES = ["room-started", "peer-joined", "peer-left", "room-finished", "relay-draining", "relay-lost"] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/**
 * Why a peer left, said once per peer that leaves:
 * - `left`: it sent a `leave` frame;
 * - `timeout`: it dropped (or was closed as idle) and did not resume within RESUME_GRACE_SECONDS;
 * - `kicked`: the admin API kicked it (`POST /v1/rooms/:room/peers/:peer/kick`);
 * - `room-closed`: the admin API closed the room (`DELETE /v1/rooms/:room`).
 */
export const PEER_LEFT_REASONS = ["left", "timeout", "kicked", "room-closed"] as const;
export type PeerLeftReason = (typeof PEER_LEFT_REASONS)[number];

export const RELAY_LOST_REASONS = ["channel-closed", "silent"] as const;
export type RelayLostReason = (typeof RELAY_LOST_REASONS)[number];

export interface WebhookEventData {
  /** The first peer joined an empty room (not after a room-finished was cancelled by a quick rejoin). */
  "room-started": { startedAt: string };
  /** A new peer joined (a resume of a dropped peer is not a join). */
  "peer-joined": { peerId: string; meta: PeerMeta };
  "peer-left": { peerId: string; reason: PeerLeftReason };
  /**
   * The room stayed empty for the finish delay after its last peer left. `usage`: the relay usage
   * reported for the room during this session, from room-started on (`GET /v1/rooms/:room/usage`
   * has the room's figures over all its sessions).
   */
  "room-finished": { startedAt: string | null; finishedAt: string; usage: UsageFigures };
  /** A relay said it is draining (its peers are handed other relays). */
  "relay-draining": { relayId: string };
  /**
   * A ready relay was lost, once per loss: its control channel ended without a drain and without a
   * newer connection replacing it (`channel-closed`), or its heartbeats stopped for LIVE_WITHIN_MS
   * (15 s) while the channel stayed open (`silent`). Its next register or heartbeat ends the loss.
   */
  "relay-lost": { relayId: string; reason: RelayLostReason; lastHeartbeatAt: string | null };
}

/** A room event's or a fleet event's fields besides the data. */
interface EventEnvelope<T extends WebhookEventType> {
  /** `evt_` and a random UUID; the same on every retry of this event. */
  id: string;
  type: T;
  /** ISO 8601 time the event happened (not when it was delivered). */
  createdAt: string;
  /** The room, for room events; absent on relay events. */
  room?: string;
  data: WebhookEventData[T];
}

export type WebhookEvent = { [T in WebhookEventType]: EventEnvelope<T> }[WebhookEventType];
export type WebhookEventOf<T extends WebhookEventType> = Extract<WebhookEvent, { type: T }>;

/** Room events need a room; relay events have none. */
export const ROOM_EVENT_TYPES: readonly WebhookEventType[] = ["room-started", "peer-joined", "peer-left", "room-finished"];

/** A new event id: `evt_` and a random UUID. */
export function newWebhookEventId(): string {
  return `evt_${crypto.randomUUID()}`;
}

/** Builds an event with a fresh id. */
export function webhookEvent<T extends WebhookEventType>(type: T, data: WebhookEventData[T], at: number, room?: string): WebhookEventOf<T> {
  const event = { id: newWebhookEventId(), type, createdAt: new Date(at).toISOString(), ...(room !== undefined && { room }), data };
  return event as unknown as WebhookEventOf<T>;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * Reads an event from a (verified) body's JSON: checks the envelope, not every field of `data`.
 * Returns the event, or a message saying what is wrong.
 */
export function parseWebhookEvent(value: unknown): WebhookEvent | string {
  if (!isObject(value)) return "the body is not a JSON object";
  if (typeof value.id !== "string" || value.id.length === 0) return "the event has no id";
  if (typeof value.type !== "string" || !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(value.type)) {
    return `unknown event type ${JSON.stringify(value.type)}; known: ${WEBHOOK_EVENT_TYPES.join(", ")}`;
  }
  if (typeof value.createdAt !== "string" || Number.isNaN(Date.parse(value.createdAt))) return "the event has no valid createdAt";
  if (ROOM_EVENT_TYPES.includes(value.type as WebhookEventType) && typeof value.room !== "string") return `a ${value.type} event names its room`;
  if (!isObject(value.data)) return "the event has no data object";
  return value as unknown as WebhookEvent;
}
