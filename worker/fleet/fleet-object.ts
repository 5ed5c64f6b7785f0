/**
 * The relay fleet: one Durable Object (`idFromName(FLEET_OBJECT_NAME)`) holding every relay's control
 * WebSocket through the Hibernation API, so an idle fleet costs nothing between heartbeats.
 *
 * Written as if memory could vanish between any two events: relays, their rooms, used token ids and
 * refusal counts live in SQLite (./fleet-store.ts), what a socket is lives in its attachment
 * (./fleet-connection.ts), and each socket is tagged with its relay id.
 *
 * A connection is vetted before it is accepted: the fleet token (any of FLEET_KEYS), then its one-time
 * id. A refusal accepts the socket only to close it with a FLEET_CLOSE_CODES code and a reason an
 * operator can act on, and is counted. Then: `register` (naming the token's relay id), answered
 * `registered`, then `heartbeat`s. A heartbeat that turns a relay `draining` tells every room of its
 * last report, so the rooms can hand their peers servers without it.
 *
 * Usage reports in heartbeats go to the rooms they name (./usage-forwarding.ts), and are answered
 * `usage-ack` once every room stored them.
 *
 * Revocations (`revoke()`): kept in SQLite until the credentials they cover expire, pushed at once to
 * every registered relay, and replayed to each relay right after its `register`, before `registered`.
 */
import { DurableObject } from "cloudflare:workers";
import {
  FLEET_CLOSE_CODES,
  FLEET_LIMITS,
  FLEET_SUBPROTOCOL,
  HEARTBEAT_INTERVAL_MS,
  LIVE_WITHIN_MS,
  parseRelayMessage,
  parseRevocation,
  type Revocation,
  type FleetErrorCode,
  type FleetMessage,
  type HeartbeatMessage,
  type RegisterMessage,
} from "../../shared/fleet/protocol.js";
import { FLEET_CLOCK_SKEW_SECONDS, verifyFleetToken } from "../../shared/fleet/token.js";
import { DEFAULT_CLOCK_SKEW_SECONDS, MAX_CREDENTIAL_TTL_SECONDS } from "../../shared/turn/credentials.js";
import { utf8ByteLength } from "../../shared/signaling/validate.js";
import { FLEET_DEFAULTS, readFleetConfig } from "../config.js";
import type { Env } from "../env.js";
import { REGISTER_WITHIN_MS, newFleetConnection, readFleetConnection, spendMessage, spendStrike, writeFleetConnection, type FleetConnection } from "./fleet-connection.js";
import { FORGET_RELAY_AFTER_MS, FleetStore, MAX_REMEMBERED_TOKENS, type RefusalReason } from "./fleet-store.js";
import { operatorRelay } from "./operator-view.js";
import { forwardUsage } from "./usage-forwarding.js";
import type { FleetView } from "../../shared/fleet/view.js";
import type { FleetRelay } from "./selection.js";
import { webhookEvent, type RelayLostReason } from "../../shared/webhooks/events.js";
import { openOutbox } from "../webhooks/open-outbox.js";
import type { WebhookOutbox } from "../webhooks/outbox.js";

/** The one fleet object's name. */
export const FLEET_OBJECT_NAME = "fleet";
/** Rooms told about a draining relay at once. */
export const DRAIN_NOTICE_CONCURRENCY = 16;
/** Control connections held at once (registered or not), as a multiple of FLEET_MAX_RELAYS. */
export const CONNECTIONS_PER_RELAY_SLOT = 2;
/** A WebSocket close reason is at most 123 bytes. */
const MAX_CLOSE_REASON_BYTES = 123;

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * What to revoke (shared/fleet/protocol.ts `Revocation`): a room, a room's peer, or one TURN username,
 * until the credentials it covers expire (unix seconds; at most MAX_CREDENTIAL_TTL_SECONDS plus clock
 * skew from now, the longest any credential lives).
 */
export interface RevokeRequest {
  room?: string | null;
  peerId?: string | null;
  username?: string | null;
  until: number;
}

export type RevokeResult =
  /** `stored` is false when `until` has passed already (nothing left to cover); `relays`: connected relays told now. */
  | { ok: true; revocation: Revocation; stored: boolean; relays: number }
  | { ok: false; code: "bad-revocation" | "revocations-full"; message: string };

/** What the edge's per-isolate cache holds: only what selection needs. */
export interface FleetSnapshot {
  relays: FleetRelay[];
}

function closeReason(text: string): string {
  let reason = text;
  while (utf8ByteLength(reason) > MAX_CLOSE_REASON_BYTES) reason = reason.slice(0, -2) + "…";
  return reason;
}

function send(ws: WebSocket, message: FleetMessage): void {
  try {
    ws.send(JSON.stringify(message));
  } catch {
    // Closed under us; the close event does the bookkeeping.
  }
}

function closeSocket(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, closeReason(reason));
  } catch {
    // Already closed.
  }
}

function toSelectable(relay: FleetRelay): FleetRelay {
  const { id, urls, location, capacity, state, connected, lastHeartbeatAt, allocations, bpsIn, bpsOut } = relay;
  return { id, urls, location, capacity, state, connected, lastHeartbeatAt, allocations, bpsIn, bpsOut };
}

export class FleetObject extends DurableObject<Env> {
  private readonly store: FleetStore;
  /** relay-draining and relay-lost events; null without webhooks configured (nothing recorded). */
  private readonly webhooks: WebhookOutbox | null;
  /** `snapshot()` calls this instance answered: lets a test see that the edge caches. */
  snapshotCalls = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new FleetStore(ctx.storage.sql);
    this.webhooks = openOutbox(ctx.storage.sql, env, { label: "fleet", waitUntil: (promise) => ctx.waitUntil(promise), reschedule: (now) => this.scheduleAlarm(now) });
  }

  // ---------------------------------------------------------------------------------------------
  // RPC for the edge and the operator view

  /** Every relay the fleet knows, with what selection needs; the edge filters and orders. */
  snapshot(): FleetSnapshot {
    this.snapshotCalls += 1;
    return { relays: this.store.relays().map(toSelectable) };
  }

  operatorView(): FleetView {
    const now = Date.now();
    return {
      relays: this.store.relays().map((record) => operatorRelay(record, this.store.roomsOf(record.id), now)),
      refusals: this.store.refusals(),
    };
  }

  /**
   * Revokes credentials across the fleet: stored until `until`, sent at once to every registered
   * relay (which ends the matching allocations and refuses their requests), replayed to relays that
   * register later. Refused, and logged, past FLEET_LIMITS.maxRevocations live revocations.
   */
  async revoke(request: RevokeRequest): Promise<RevokeResult> {
    if (typeof request !== "object" || request === null) return { ok: false, code: "bad-revocation", message: "revoke takes {room, peerId?} or {username}, and until" };
    const parsed = parseRevocation({ room: request.room ?? null, peerId: request.peerId ?? null, username: request.username ?? null, until: request.until });
    if (typeof parsed === "string") return { ok: false, code: "bad-revocation", message: parsed };
    const now = Date.now();
    const nowSeconds = Math.floor(now / 1000);
    const latest = nowSeconds + MAX_CREDENTIAL_TTL_SECONDS + DEFAULT_CLOCK_SKEW_SECONDS;
    if (parsed.until > latest) {
      return { ok: false, code: "bad-revocation", message: `until is ${parsed.until - nowSeconds} s away; no credential lives longer than ${MAX_CREDENTIAL_TTL_SECONDS} s, so give its expiry (at most ${latest})` };
    }
    if (parsed.until < nowSeconds) return { ok: true, revocation: parsed, stored: false, relays: 0 };
    if (!this.store.addRevocation(parsed, FLEET_LIMITS.maxRevocations)) {
      this.store.forgetRevocationsBefore(nowSeconds);
      if (!this.store.addRevocation(parsed, FLEET_LIMITS.maxRevocations)) {
        const message = `the fleet holds ${FLEET_LIMITS.maxRevocations} live revocations already; this one was not stored or sent. Retry once some expire (each lasts until the credentials it covers expire), or issue shorter-lived credentials (TURN_TTL)`;
        console.error(`fleet: revocation refused: ${message}`);
        return { ok: false, code: "revocations-full", message };
      }
    }
    let relays = 0;
    for (const ws of this.ctx.getWebSockets()) {
      if (readFleetConnection(ws)?.registered !== true) continue;
      send(ws, { type: "revoke", revocations: [parsed] });
      relays++;
    }
    await this.scheduleAlarm(now);
    return { ok: true, revocation: parsed, stored: true, relays };
  }

  /** Every live revocation to one relay, FLEET_LIMITS.maxRevocationsPerMessage per message. */
  private replayRevocations(ws: WebSocket, now: number): void {
    const live = this.store.liveRevocations(Math.floor(now / 1000));
    for (let i = 0; i < live.length; i += FLEET_LIMITS.maxRevocationsPerMessage) {
      send(ws, { type: "revoke", revocations: live.slice(i, i + FLEET_LIMITS.maxRevocationsPerMessage) });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Connecting

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("relays connect through the Worker's /v1/fleet with Upgrade: websocket", { status: 426 });
    }
    const config = readFleetConfig(this.env);
    if (config === null) return this.refuse(FLEET_CLOSE_CODES.notConfigured, "this Worker has no FLEET_KEYS: run `wrangler secret put FLEET_KEYS`", null);

    const token = BEARER.exec(request.headers.get("Authorization") ?? "")?.[1];
    if (token === undefined) return this.refuse(FLEET_CLOSE_CODES.badToken, "send Authorization: Bearer <fleet token>; the relay mints one from its fleet key", "missing-token");
    const checked = await verifyFleetToken(token, config.keys);
    if (!checked.ok) {
      const expired = checked.reason === "expired" || checked.reason === "not-yet-valid";
      return this.refuse(expired ? FLEET_CLOSE_CODES.tokenExpired : FLEET_CLOSE_CODES.badToken, checked.message, expired ? "expired-token" : "bad-token");
    }
    const { relayId, nonce, expiresAt } = checked.claims;

    // From here to acceptWebSocket nothing awaits, so two connections with one token cannot both pass.
    const now = Date.now();
    if (this.store.rememberedTokens() >= MAX_REMEMBERED_TOKENS) {
      this.store.forgetTokensDueBy(now);
      if (this.store.rememberedTokens() >= MAX_REMEMBERED_TOKENS) {
        return this.refuse(FLEET_CLOSE_CODES.fleetFull, `more than ${MAX_REMEMBERED_TOKENS} fleet connections in the last few minutes; retry later`, "too-many-tokens");
      }
    }
    if (!this.store.useToken(nonce, (expiresAt + FLEET_CLOCK_SKEW_SECONDS) * 1000)) {
      return this.refuse(FLEET_CLOSE_CODES.tokenReplayed, "this fleet token was used before: every connection needs a fresh one", "replayed-token");
    }
    const existing = this.ctx.getWebSockets(relayId);
    if (existing.length === 0 && this.ctx.getWebSockets().length >= CONNECTIONS_PER_RELAY_SLOT * config.maxRelays) {
      return this.refuse(FLEET_CLOSE_CODES.fleetFull, `the fleet holds ${CONNECTIONS_PER_RELAY_SLOT * config.maxRelays} control connections already (FLEET_MAX_RELAYS ${config.maxRelays})`, "fleet-full");
    }

    for (const old of existing) closeSocket(old, FLEET_CLOSE_CODES.replaced, "replaced by a newer connection of this relay id");
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server, [relayId]);
    writeFleetConnection(server, newFleetConnection(relayId, crypto.randomUUID(), now));
    await this.scheduleAlarm(now);
    return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": FLEET_SUBPROTOCOL } });
  }

  /** Accepts the socket only to close it with `code` and a reason, and counts the refusal. */
  private refuse(code: number, reason: string, counted: RefusalReason | null): Response {
    if (counted !== null) this.store.countRefusal(counted);
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    server.accept();
    closeSocket(server, code, reason);
    return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": FLEET_SUBPROTOCOL } });
  }

  // ---------------------------------------------------------------------------------------------
  // Messages

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const conn = readFleetConnection(ws);
    if (conn === null) return;
    const now = Date.now();
    if (!spendMessage(conn, now)) {
      return this.strike(ws, conn, now, "rate-limited", `slow down: at most ${FLEET_LIMITS.messagesPerSecond} message per second (bursts of ${FLEET_LIMITS.messageBurst})`);
    }
    if (typeof message !== "string") return this.strike(ws, conn, now, "bad-message", "messages are JSON text, not binary");
    const size = utf8ByteLength(message);
    if (size > FLEET_LIMITS.maxMessageBytes) return this.strike(ws, conn, now, "bad-message", `a message of ${size} bytes is over the ${FLEET_LIMITS.maxMessageBytes}-byte limit`);
    const parsed = parseRelayMessage(message);
    if (!parsed.ok) return this.strike(ws, conn, now, parsed.code, parsed.message);

    const relayMessage = parsed.message;
    if (relayMessage.type === "register") return this.register(ws, conn, relayMessage, now);
    return this.heartbeat(ws, conn, relayMessage, now);
  }

  private register(ws: WebSocket, conn: FleetConnection, message: RegisterMessage, now: number): void {
    if (conn.registered) return this.strike(ws, conn, now, "out-of-order", "register comes once per connection; send heartbeats");
    if (message.relayId !== conn.relayId) {
      this.store.countRefusal("wrong-relay-id");
      const text = `register names relay ${message.relayId} but the token names ${conn.relayId}: use one relay id`;
      send(ws, { type: "error", code: "out-of-order", message: text });
      return this.closeConnection(ws, conn, FLEET_CLOSE_CODES.protocolViolation, text);
    }
    const maxRelays = readFleetConfig(this.env)?.maxRelays ?? FLEET_DEFAULTS.maxRelays;
    if (this.store.relay(conn.relayId) === null && this.store.relayCount() >= maxRelays) {
      this.store.countRefusal("fleet-full");
      return this.closeConnection(ws, conn, FLEET_CLOSE_CODES.fleetFull, `the fleet already has FLEET_MAX_RELAYS (${maxRelays}) relays; raise it or retire one`);
    }
    this.store.register(message, conn.connId, now);
    conn.registered = true;
    writeFleetConnection(ws, conn);
    // Before `registered`: a relay that counts as registered already holds every live revocation.
    this.replayRevocations(ws, now);
    send(ws, { type: "registered", relayId: conn.relayId, heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS });
  }

  private async heartbeat(ws: WebSocket, conn: FleetConnection, message: HeartbeatMessage, now: number): Promise<void> {
    if (!conn.registered) return this.strike(ws, conn, now, "out-of-order", "send register before heartbeats");
    writeFleetConnection(ws, conn);
    const before = this.store.heartbeat(conn.relayId, message, now);
    if (message.state === "draining" && before !== "draining") {
      this.webhooks?.record(webhookEvent("relay-draining", { relayId: conn.relayId }, now), now);
      await this.tellRoomsDraining(conn.relayId);
    }
    if (message.usage !== undefined && (await forwardUsage(this.env, conn.relayId, message.usage))) {
      send(ws, { type: "usage-ack", boot: message.usage.boot, seq: message.usage.seq });
    }
    // With webhooks the alarm watches for this relay falling silent.
    if (this.webhooks !== null) await this.scheduleAlarm(now);
  }

  /** A bad or rate-limited message: say so, and close the connection once patience runs out. */
  private strike(ws: WebSocket, conn: FleetConnection, now: number, code: FleetErrorCode, text: string): void {
    send(ws, { type: "error", code, message: text });
    if (spendStrike(conn, now)) return writeFleetConnection(ws, conn);
    this.store.countRefusal("protocol-violation");
    this.closeConnection(ws, conn, FLEET_CLOSE_CODES.protocolViolation, "too many bad or rate-limited messages");
  }

  private closeConnection(ws: WebSocket, conn: FleetConnection, code: number, reason: string): void {
    this.channelLost(conn);
    closeSocket(ws, code, reason);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Complete the closing handshake; 1005/1006 describe a close without a code and cannot be sent.
    closeSocket(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
    this.connectionEnded(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.connectionEnded(ws);
  }

  private connectionEnded(ws: WebSocket): void {
    const conn = readFleetConnection(ws);
    if (conn !== null) this.channelLost(conn);
  }

  /**
   * A connection is gone: the relay keeps its row without it. When it was the relay's current channel,
   * the relay was ready (not draining) and no newer connection of the same relay id replaces it, the
   * relay is lost: `relay-lost`, once per loss (the alarm says it too for a relay that fell silent
   * with its channel still open; whichever comes first marks it).
   */
  private channelLost(conn: FleetConnection): void {
    const cleared = this.store.disconnected(conn.relayId, conn.connId);
    if (this.webhooks === null || !conn.registered || !cleared) return;
    const replaced = this.ctx.getWebSockets(conn.relayId).some((other) => other.readyState === WebSocket.READY_STATE_OPEN && readFleetConnection(other)?.connId !== conn.connId);
    if (replaced) return;
    this.relayLost(conn.relayId, "channel-closed", Date.now());
  }

  /** Records `relay-lost` for a ready relay not marked lost yet; nothing otherwise. */
  private relayLost(relayId: string, reason: RelayLostReason, now: number): void {
    if (this.webhooks === null || !this.store.markLost(relayId, now)) return;
    const lastHeartbeatAt = this.store.relay(relayId)?.lastHeartbeatAt ?? null;
    this.webhooks.record(webhookEvent("relay-lost", { relayId, reason, lastHeartbeatAt: lastHeartbeatAt === null ? null : new Date(lastHeartbeatAt).toISOString() }, now), now);
  }

  // ---------------------------------------------------------------------------------------------
  // Drain notices

  /**
   * Tells each room of the relay's last heartbeat (and only those) that it is draining, with the
   * fleet's relays as they stand, the draining one left out; at most DRAIN_NOTICE_CONCURRENCY at once.
   * A room that cannot be reached is logged and skipped: its peers still have working servers until
   * the relay exits, and the client library recovers on ICE failure.
   */
  private async tellRoomsDraining(relayId: string): Promise<void> {
    const rooms = this.store.roomsOf(relayId).map((entry) => entry.room);
    const relays = this.store.relays().filter((relay) => relay.id !== relayId).map(toSelectable);
    let next = 0;
    const worker = async () => {
      while (next < rooms.length) {
        const room = rooms[next++]!;
        try {
          await this.env.ROOMS.get(this.env.ROOMS.idFromName(room)).relayDraining(relayId, relays);
        } catch (error) {
          console.error(`fleet: could not tell room ${room} that relay ${relayId} is draining`, error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DRAIN_NOTICE_CONCURRENCY, rooms.length) }, worker));
  }

  // ---------------------------------------------------------------------------------------------
  // Housekeeping: forget used token ids after their expiry, and relays silent for an hour

  override async alarm(): Promise<void> {
    const now = Date.now();
    this.store.forgetTokensDueBy(now);
    this.store.forgetRevocationsBefore(Math.floor(now / 1000));
    const forgotten = new Set(this.store.forgetSilentSince(now - FORGET_RELAY_AFTER_MS));
    for (const ws of this.ctx.getWebSockets()) {
      const conn = readFleetConnection(ws);
      if (conn === null) continue;
      if (forgotten.has(conn.relayId)) closeSocket(ws, FLEET_CLOSE_CODES.protocolViolation, "not heard from for an hour; reconnect and register");
      else if (!conn.registered && now - conn.acceptedAt >= REGISTER_WITHIN_MS) {
        this.store.countRefusal("protocol-violation");
        closeSocket(ws, FLEET_CLOSE_CODES.protocolViolation, `no register within ${REGISTER_WITHIN_MS / 1000} s of connecting`);
      }
    }
    // A ready relay whose heartbeats stopped while its channel stays open (a frozen host, a network
    // cut the Worker cannot see) is handed out no more after LIVE_WITHIN_MS: it is lost then.
    if (this.webhooks !== null) for (const { id } of this.store.silentSince(now - LIVE_WITHIN_MS)) this.relayLost(id, "silent", now);
    this.webhooks?.start();
    await this.scheduleAlarm(now);
  }

  /** With webhooks: when the ready relay heard from longest ago turns silent, if it stays so. */
  private silenceDue(): number[] {
    const heartbeat = this.webhooks === null ? null : this.store.earliestUnmarkedHeartbeat();
    return heartbeat === null ? [] : [heartbeat + LIVE_WITHIN_MS];
  }

  /** The next moment something is due: a token id, a silent relay or a revocation to forget, a register deadline. */
  private async scheduleAlarm(now: number): Promise<void> {
    const heard = this.store.earliestHeard();
    const registerDeadlines = this.ctx
      .getWebSockets()
      .map(readFleetConnection)
      .filter((conn): conn is FleetConnection => conn !== null && !conn.registered)
      .map((conn) => conn.acceptedAt + REGISTER_WITHIN_MS);
    const revocationEnd = this.store.earliestRevocationEnd();
    const due = [
      this.store.earliestTokenExpiry(),
      heard === null ? null : heard + FORGET_RELAY_AFTER_MS,
      // A revocation holds through its `until` second, and is forgotten once that second is over.
      revocationEnd === null ? null : (revocationEnd + 1) * 1000,
      ...registerDeadlines,
      this.webhooks?.nextDue(now) ?? null,
      ...this.silenceDue(),
    ].filter((t): t is number => t !== null);
    if (due.length === 0) return this.ctx.storage.deleteAlarm();
    const next = Math.max(Math.min(...due), now + 1);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }
}
