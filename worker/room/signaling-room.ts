/**
 * One signaling room: a Durable Object holding the room's WebSockets through the Hibernation API.
 *
 * Written as if memory could vanish between any two events, because it does: the runtime evicts an
 * idle object while its sockets stay open. Who is in the room lives in SQLite (./roster.ts), what a
 * socket is lives in its attachment (./connection.ts), and each socket is tagged with its peer id.
 * The object keeps no state of its own beyond the parsed config and the storage handle.
 */
import { DurableObject } from "cloudflare:workers";
import {
  CLOSE_CODES,
  PING_FRAME,
  PONG_FRAME,
  type ErrorCode,
  type RoomClosedResult,
  type RoomUsage,
  type RoomView,
  type ServerFrame,
} from "../../shared/signaling/protocol.js";
import { MAX_USER_ID_LENGTH } from "../../shared/ids.js";
import { parseClientFrame, utf8ByteLength, type FrameLimits } from "../../shared/signaling/validate.js";
import { roomMemberUser } from "../../shared/turn/turn-user.js";
import type { IceServersResponse } from "../../shared/turn/ice-servers.js";
import { MAX_CREDENTIAL_TTL_SECONDS } from "../../shared/turn/credentials.js";
import { FLEET_DEFAULTS, REVOCATION_HOOK_TIMEOUT_MS, readFleetConfig, readRoomConfig, readTurnConfig, type RoomConfig } from "../config.js";
import { revokeRoomCredentials, type RoomRevocation } from "../fleet/revocation-hook.js";
import { iceServersFor, withCredential } from "../fleet/relay-choice.js";
import { pickRelays, type FleetRelay } from "../fleet/selection.js";
import type { Env } from "../env.js";
import { lastActivity, newConnection, readConnection, spendPatience, spendRate, writeConnection, type Connection } from "./connection.js";
import { readJoinIntent, type JoinIntent } from "./join-intent.js";
import { Bans } from "./bans.js";
import { bannedMessage, kickedMessage, revocationUntil, roomView, type KickOutcome } from "./moderation.js";
import { Roster, type PeerRecord } from "./roster.js";
import { RoomUsageStore, type MemberUsage } from "./usage.js";
import { readWebhookConfigOrLog } from "../webhooks/open-outbox.js";
import { WebhookOutbox } from "../webhooks/outbox.js";
import { RoomWebhooks } from "../webhooks/room-webhooks.js";

const OPEN = 1; // WebSocket.READY_STATE_OPEN

function send(ws: WebSocket, frame: ServerFrame | string): void {
  try {
    ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  } catch {
    // The socket closed under us; its close event does the bookkeeping.
  }
}

function sendError(ws: WebSocket, code: ErrorCode, message: string): void {
  send(ws, { type: "error", code, message });
}

function closeSocket(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed.
  }
}

/** A resume token: 128 random bits, base64url. */
function newResumeToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function upgradeResponse(client: WebSocket, subprotocol: string | undefined): Response {
  const headers = subprotocol ? { "Sec-WebSocket-Protocol": subprotocol } : undefined;
  return new Response(null, { status: 101, webSocket: client, headers });
}

export class SignalingRoom extends DurableObject<Env> {
  private readonly config: RoomConfig;
  private readonly limits: FrameLimits;
  private readonly roster: Roster;
  private readonly bans: Bans;
  private readonly usage: RoomUsageStore;
  /** Null without WEBHOOK_URL and WEBHOOK_SECRET (or with a bad config, logged): then nothing is recorded. */
  private readonly webhooks: RoomWebhooks | null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = readRoomConfig(env);
    this.limits = { maxMetaBytes: this.config.maxMetaBytes, maxPeerIdLength: MAX_USER_ID_LENGTH };
    this.roster = new Roster(ctx.storage.sql);
    this.bans = new Bans(ctx.storage.sql);
    this.usage = new RoomUsageStore(ctx.storage.sql);
    const webhookConfig = readWebhookConfigOrLog(env, "room");
    this.webhooks =
      webhookConfig === null
        ? null
        : new RoomWebhooks(
            ctx.storage.sql,
            new WebhookOutbox(ctx.storage.sql, webhookConfig, { label: "room", waitUntil: (promise) => ctx.waitUntil(promise), reschedule: (now) => this.scheduleSweep(now) }),
            webhookConfig,
          );
    // Pings are answered by the runtime, so a quiet room can stay evicted while its peers keep alive.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_FRAME, PONG_FRAME));
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle: join, frame, close, sweep

  override async fetch(request: Request): Promise<Response> {
    const intent = readJoinIntent(request);
    if (intent === null) return new Response("rooms are joined through the Worker's /v1/rooms/:room", { status: 400 });

    // The only await of a join, before anything is read for good: nothing may interleave between
    // reading the roster and accepting the socket.
    const expectedPeerId = this.findReturningPeer(intent)?.id ?? intent.peerId ?? intent.newPeerId;
    const expectedIce = expectedPeerId === undefined ? intent.ice : await this.welcomeIce(intent, expectedPeerId);

    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const now = Date.now();
    const returning = this.findReturningPeer(intent);
    const claimedId = returning?.id ?? intent.peerId;
    const bannedUntil = claimedId === undefined ? null : this.bans.bannedUntil(claimedId, now);
    if (bannedUntil !== null) {
      // Refused like a full room: accepted only to say why (and until when), then closed.
      server.accept();
      sendError(server, "banned", bannedMessage(bannedUntil));
      closeSocket(server, CLOSE_CODES.kicked, "banned");
      return upgradeResponse(client, intent.subprotocol);
    }
    if (returning === null && this.roster.count() >= this.config.capacity) {
      // Accepted only to say why, then closed: nobody in the room notices.
      server.accept();
      sendError(server, "room-full", `the room is full (${this.config.capacity} peers); try again later or use another room`);
      closeSocket(server, CLOSE_CODES.roomFull, "room full");
      return upgradeResponse(client, intent.subprotocol);
    }

    const peerId = returning?.id ?? intent.peerId ?? intent.newPeerId ?? crypto.randomUUID();
    const connId = crypto.randomUUID();
    const resumeToken = newResumeToken();
    // A resume that raced this join may have changed who this peer is: then no credential rather than another's.
    const ice = peerId === expectedPeerId ? expectedIce : undefined;
    if (returning !== null) {
      for (const old of this.ctx.getWebSockets(peerId)) {
        closeSocket(old, CLOSE_CODES.replaced, "replaced by a newer connection of this peer");
      }
      this.roster.reconnect(peerId, connId, resumeToken);
    } else {
      const wasEmpty = this.roster.count() === 0;
      this.roster.add({ id: peerId, meta: intent.meta ?? {}, resumeToken, connId, joinedAt: now });
      this.webhooks?.peerJoined(intent.room, peerId, intent.meta ?? {}, wasEmpty, now, () => this.usage.total());
    }

    this.ctx.acceptWebSocket(server, [peerId]);
    writeConnection(server, newConnection(peerId, connId, now, this.config, { room: intent.room, location: intent.location }));
    send(server, {
      type: "welcome",
      peerId,
      peers: this.roster.list().filter((peer) => peer.id !== peerId),
      resumeToken,
      resumed: returning !== null,
      idleTimeoutMs: this.config.idleTimeoutMs,
      resumeGraceMs: this.config.resumeGraceMs,
      ...(ice && { iceServers: ice.iceServers, expiresAt: ice.expiresAt }),
      ...(intent.iceWithheld && { iceServersWithheld: intent.iceWithheld }),
    });
    if (returning === null) {
      this.sendToOthers(peerId, { type: "peer-joined", peer: { id: peerId, meta: intent.meta ?? {} } });
    } else {
      // Signals that arrived while the peer was away, oldest first, before anything new.
      for (const frame of this.roster.takePending(peerId, now - this.config.resumeGraceMs)) send(server, frame);
    }
    await this.scheduleSweep(now);
    return upgradeResponse(client, intent.subprotocol);
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const conn = readConnection(ws);
    // Frames still in flight on a connection that left or was replaced must not speak for the peer.
    if (conn === null || this.roster.get(conn.peerId)?.connId !== conn.connId) return;
    const now = Date.now();
    conn.lastFrameAt = now;

    const size = typeof message === "string" ? utf8ByteLength(message) : message.byteLength;
    if (size > this.config.maxFrameBytes) {
      sendError(ws, "too-large", `a frame of ${size} bytes is over the ${this.config.maxFrameBytes}-byte limit`);
      return this.drop(ws, conn, CLOSE_CODES.tooLarge, "frame too large", now);
    }
    if (!spendRate(conn, now, this.config)) {
      return this.strike(ws, conn, now, "rate-limited", `slow down: at most ${this.config.ratePerSecond} frames per second (bursts of ${this.config.rateBurst})`);
    }
    if (typeof message !== "string") {
      return this.strike(ws, conn, now, "bad-message", "frames must be JSON text, not binary");
    }
    const parsed = parseClientFrame(message, this.limits);
    if (!parsed.ok && parsed.code === "bad-message") return this.strike(ws, conn, now, parsed.code, parsed.message);
    writeConnection(ws, conn);
    if (!parsed.ok) return sendError(ws, parsed.code, parsed.message);

    const frame = parsed.frame;
    switch (frame.type) {
      case "ping":
        return send(ws, PONG_FRAME);
      case "signal":
        return this.relaySignal(ws, conn, frame.to, JSON.stringify({ type: "signal", from: conn.peerId, data: frame.data }), now);
      case "broadcast":
        return this.sendToOthers(conn.peerId, { type: "broadcast", from: conn.peerId, data: frame.data });
      case "meta":
        this.roster.setMeta(conn.peerId, frame.data);
        return this.sendToOthers(conn.peerId, { type: "peer-updated", peer: { id: conn.peerId, meta: frame.data } });
      case "leave":
        this.roster.remove(conn.peerId);
        this.webhooks?.peerLeft(conn.room, conn.peerId, "left", this.roster.count() === 0, now);
        closeSocket(ws, CLOSE_CODES.normal, "left");
        this.sendToOthers(conn.peerId, { type: "peer-left", peerId: conn.peerId });
        return this.scheduleSweep(now);
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Complete the closing handshake; 1005/1006 describe a close without a code and cannot be sent.
    closeSocket(ws, code === 1005 || code === 1006 ? CLOSE_CODES.normal : code, reason);
    await this.connectionEnded(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.connectionEnded(ws);
  }

  /** The sweep: close stale connections, and announce peers whose grace period is over. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    for (const ws of this.ctx.getWebSockets()) {
      const conn = readConnection(ws);
      if (conn === null || ws.readyState !== OPEN) continue;
      if (now - lastActivity(conn, this.ctx.getWebSocketAutoResponseTimestamp(ws)) >= this.config.idleTimeoutMs) {
        this.markAway(conn, now);
        closeSocket(ws, CLOSE_CODES.stale, "idle timeout: no frame or ping");
      }
    }
    for (const peerId of this.roster.awaySinceAtOrBefore(now - this.config.resumeGraceMs)) {
      this.roster.remove(peerId);
      this.webhooks?.peerLeft(undefined, peerId, "timeout", this.roster.count() === 0, now);
      this.sendToOthers(peerId, { type: "peer-left", peerId });
    }
    this.bans.prune(now);
    this.webhooks?.alarm(now, this.roster.count() === 0, () => this.usage.total());
    await this.scheduleSweep(now);
  }

  // ---------------------------------------------------------------------------------------------
  // Moderation, called by the admin API (worker/routes/admin.ts) after it has checked the API key

  /** Who is in the room (connected or away), and the bans in force. */
  async view(room: string): Promise<RoomView> {
    const now = Date.now();
    return roomView(room, this.roster.records(), this.bans.list(now), this.usage.total());
  }

  /**
   * When the ban on `peerId` ends (ms since the epoch), or null when it may join: the credential
   * endpoints ask before minting for a join token's `sub`, so a banned peer gets no fresh relay
   * credential either (its revocation covers only those issued before the kick).
   */
  async bannedUntil(peerId: string): Promise<number | null> {
    return this.bans.bannedUntil(peerId, Date.now());
  }

  /** The room's relay usage, per peer and in total (`GET /v1/rooms/:room/usage`). */
  async usageView(room: string): Promise<RoomUsage> {
    return this.usage.view(room);
  }

  /**
   * Removes a peer, connected or away: its sockets get a `kicked` error and close with 4004, its
   * resume token and queued signals are dropped, and the others see `peer-left` once (the roster row
   * is gone, so the socket's close event finds nothing to mark away). With `banSeconds` > 0 the same
   * peer id may not join again until the ban ends. Then the relays are told to revoke its credentials.
   */
  async kick(room: string, peerId: string, banSeconds: number): Promise<KickOutcome> {
    const now = Date.now();
    if (this.roster.get(peerId) === null) {
      return { ok: false, code: "peer-not-found", message: `no peer ${JSON.stringify(peerId)} in room ${JSON.stringify(room)}; GET /v1/rooms/${room} lists who is here` };
    }
    const bannedUntil = banSeconds > 0 ? now + banSeconds * 1000 : null;
    if (bannedUntil !== null) {
      const banned = this.bans.ban(peerId, bannedUntil, now);
      if (!banned.ok) {
        return { ok: false, code: "too-many-bans", message: `room ${JSON.stringify(room)} already has ${banned.inForce} bans in force, the most it keeps; kick without banSeconds, or wait for bans to end` };
      }
    }
    this.roster.remove(peerId);
    this.webhooks?.peerLeft(room, peerId, "kicked", this.roster.count() === 0, now);
    // The relays first, then the peer: told first, its client would delete its own allocations
    // while the revocation is still on its way, and one that ignores the kick would keep relaying
    // until it arrived. (revoke never throws and waits at most REVOCATION_HOOK_TIMEOUT_MS.)
    await this.revoke({ room, peerId, until: revocationUntil(now, this.memberCredentialTtl(), bannedUntil) });
    const message = kickedMessage(bannedUntil);
    for (const ws of this.ctx.getWebSockets(peerId)) {
      sendError(ws, "kicked", message);
      closeSocket(ws, CLOSE_CODES.kicked, "kicked");
    }
    this.sendToOthers(peerId, { type: "peer-left", peerId });
    await this.scheduleSweep(now);
    return { ok: true, result: { kicked: peerId, bannedUntil: bannedUntil === null ? null : new Date(bannedUntil).toISOString() } };
  }

  /**
   * Everyone out: every socket gets a `room-closed` error and closes with 4005; the roster, the queued
   * signals and so every resume token are cleared. Bans stay. The room may be joined again afterwards.
   */
  async closeRoom(room: string): Promise<RoomClosedResult> {
    const now = Date.now();
    const leaving = this.webhooks === null ? [] : this.roster.list().map((peer) => peer.id);
    const peers = this.roster.clear();
    leaving.forEach((peerId, i) => this.webhooks?.peerLeft(room, peerId, "room-closed", i === leaving.length - 1, now));
    for (const ws of this.ctx.getWebSockets()) {
      sendError(ws, "room-closed", "the room's operator closed the room; do not reconnect");
      closeSocket(ws, CLOSE_CODES.roomClosed, "room closed");
    }
    await this.scheduleSweep(now);
    await this.revoke({ room, until: revocationUntil(now, this.memberCredentialTtl(), null) });
    return { closed: room, peers };
  }

  /** The longest a room member's own credentials live (TURN_TTL): what a revocation must cover. */
  private memberCredentialTtl(): number {
    try {
      return readTurnConfig(this.env)?.ttlSeconds ?? MAX_CREDENTIAL_TTL_SECONDS;
    } catch {
      return MAX_CREDENTIAL_TTL_SECONDS;
    }
  }

  /** Hands a revocation to the fleet, waiting at most REVOCATION_HOOK_TIMEOUT_MS; a failure is logged, never thrown. */
  private async revoke(revocation: RoomRevocation): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        console.warn(`room ${revocation.room}: the revocation hook took over ${REVOCATION_HOOK_TIMEOUT_MS} ms; the moderation stands, the revocation goes on in the background`);
        resolve();
      }, REVOCATION_HOOK_TIMEOUT_MS);
    });
    const hook = Promise.resolve()
      .then(() => revokeRoomCredentials(this.env, revocation))
      .catch((error: unknown) => console.error(`room ${revocation.room}: the revocation hook failed; the moderation stands`, error));
    this.ctx.waitUntil(hook);
    try {
      await Promise.race([hook, timeout]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // From the fleet (worker/fleet/fleet-object.ts): drain notices and usage reports

  /**
   * A relay this room's peers hold allocations on is draining (the fleet object calls this with the
   * fleet's relays as they stand). Every open connection gets an `ice-servers` frame: a fresh
   * room-member credential and the relays nearest that peer, the draining one left out. With no other
   * relay eligible nothing is sent: the peers keep what they have until the relay exits, and the
   * client library recovers on ICE failure. Returns how many peers were sent new servers.
   */
  async relayDraining(relayId: string, relays: FleetRelay[]): Promise<number> {
    const turn = readTurnConfig(this.env);
    if (turn === null) {
      console.warn(`room: relay ${relayId} is draining but this Worker has no TURN_SECRETS to mint new credentials with`);
      return 0;
    }
    const pick = readFleetConfig(this.env)?.pick ?? FLEET_DEFAULTS.pick;
    const now = Date.now();
    let sent = 0;
    for (const ws of this.ctx.getWebSockets()) {
      const conn = readConnection(ws);
      if (conn === null || conn.room === undefined || ws.readyState !== OPEN || this.roster.get(conn.peerId)?.connId !== conn.connId) continue;
      const picked = pickRelays(relays, conn.location ?? null, pick, now, relayId);
      if (picked.length === 0) {
        console.warn(`room ${conn.room}: relay ${relayId} is draining and no other relay is live, ready and below capacity; peers keep their servers`);
        return sent;
      }
      const credential = await turn.keyring.mint(roomMemberUser(conn.room, conn.peerId), turn.ttlSeconds);
      const ice = iceServersFor({ kind: "fleet", relays: picked }, credential);
      send(ws, { type: "ice-servers", iceServers: ice.iceServers, expiresAt: ice.expiresAt, reason: "relay-draining" });
      sent += 1;
    }
    return sent;
  }

  /**
   * A relay's latest figures for some of this room's members (forwarded by the fleet object from a
   * heartbeat's usage report). Idempotent: the fleet may deliver a report again. Returns the rows changed.
   */
  async recordUsage(relayId: string, boot: string, entries: MemberUsage[]): Promise<number> {
    return this.usage.record(relayId, boot, entries, Date.now());
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /**
   * The welcome's servers. The edge minted them for the id it expected (the token's `sub`, or the
   * random id of a new peer in an open room); a peer resuming in an open room keeps its old id, so
   * the credential is minted again for the id the peer really gets.
   */
  private async welcomeIce(intent: JoinIntent, peerId: string): Promise<IceServersResponse | undefined> {
    if (intent.ice === undefined || intent.room === undefined || peerId === (intent.peerId ?? intent.newPeerId)) return intent.ice;
    const turn = readTurnConfig(this.env);
    if (turn === null) {
      console.warn(`room ${intent.room}: cannot re-mint the welcome credential for resuming peer ${peerId} without TURN_SECRETS; the welcome carries none`);
      return undefined;
    }
    return withCredential(intent.ice, await turn.keyring.mint(roomMemberUser(intent.room, peerId), intent.ice.ttl));
  }

  /** The roster entry a join takes over: by resume token, or by the token's subject. */
  private findReturningPeer(intent: JoinIntent): Readonly<PeerRecord> | null {
    if (intent.resumeToken) {
      const byToken = this.roster.byResumeToken(intent.resumeToken);
      if (byToken !== null && (intent.peerId === undefined || byToken.id === intent.peerId)) return byToken;
    }
    return intent.peerId === undefined ? null : this.roster.get(intent.peerId);
  }

  /** Open sockets of other peers; a replaced or closing socket is never a recipient. */
  private sendToOthers(exceptPeerId: string, frame: ServerFrame): void {
    const text = JSON.stringify(frame);
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== OPEN) continue;
      const conn = readConnection(ws);
      if (conn !== null && conn.peerId !== exceptPeerId) send(ws, text);
    }
  }

  /** The peer's current connection, if it is open. */
  private currentSocket(peer: Readonly<PeerRecord>): WebSocket | null {
    if (peer.connId === null) return null;
    for (const ws of this.ctx.getWebSockets(peer.id)) {
      if (ws.readyState === OPEN && readConnection(ws)?.connId === peer.connId) return ws;
    }
    return null;
  }

  private relaySignal(ws: WebSocket, conn: Connection, to: string, frame: string, now: number): void {
    const target = to === conn.peerId ? null : this.roster.get(to);
    if (target === null) {
      return sendError(ws, "peer-not-found", `no peer ${JSON.stringify(to)} in this room; the welcome and peer-joined frames list who is here`);
    }
    const socket = this.currentSocket(target);
    if (socket !== null) return send(socket, frame);
    // Away: keep it for the resume, in order, up to the limit.
    if (this.roster.pendingCount(to) >= this.config.resumeQueueLimit) {
      return sendError(ws, "queue-full", `peer ${JSON.stringify(to)} is reconnecting and already has ${this.config.resumeQueueLimit} signals waiting; this one was dropped`);
    }
    this.roster.enqueue(to, frame, now);
  }

  /** A bad or rate-limited frame: say so, and close the connection once patience runs out. */
  private async strike(ws: WebSocket, conn: Connection, now: number, code: ErrorCode, message: string): Promise<void> {
    sendError(ws, code, message);
    if (spendPatience(conn, now, this.config)) return writeConnection(ws, conn);
    return this.drop(ws, conn, CLOSE_CODES.policyViolation, "too many bad or rate-limited frames", now);
  }

  /** The room closes a connection; the peer may still resume within its grace period. */
  private async drop(ws: WebSocket, conn: Connection, code: number, reason: string, now: number): Promise<void> {
    this.markAway(conn, now);
    closeSocket(ws, code, reason);
    await this.scheduleSweep(now);
  }

  private markAway(conn: Connection, now: number): void {
    this.roster.markAway(conn.peerId, conn.connId, now);
  }

  private async connectionEnded(ws: WebSocket): Promise<void> {
    const conn = readConnection(ws);
    if (conn === null) return;
    const now = Date.now();
    this.markAway(conn, now);
    await this.scheduleSweep(now);
  }

  /** Sets the alarm to the next moment something may be due: a connection going stale or a grace period ending. */
  private async scheduleSweep(now: number): Promise<void> {
    let next = Number.POSITIVE_INFINITY;
    for (const ws of this.ctx.getWebSockets()) {
      const conn = readConnection(ws);
      if (conn === null || ws.readyState !== OPEN) continue;
      next = Math.min(next, lastActivity(conn, this.ctx.getWebSocketAutoResponseTimestamp(ws)) + this.config.idleTimeoutMs);
    }
    const earliestAway = this.roster.earliestAway();
    if (earliestAway !== null) next = Math.min(next, earliestAway + this.config.resumeGraceMs);
    // Ended bans are pruned by the sweep, so the table never holds more than the bans in force.
    const earliestBanEnd = this.bans.earliestEnd();
    if (earliestBanEnd !== null) next = Math.min(next, earliestBanEnd);
    // The webhook outbox's next attempt, and the pending room-finished.
    const webhooksDue = this.webhooks?.nextDue(now) ?? null;
    if (webhooksDue !== null) next = Math.min(next, webhooksDue);
    if (next === Number.POSITIVE_INFINITY) return this.ctx.storage.deleteAlarm();
    return this.ctx.storage.setAlarm(Math.max(next, now + 1));
  }
}
