/**
 * A connection to one signaling room, for browsers and Node alike.
 *
 * - Joins `/v1/rooms/:room` (the join token and the resume token, if any, ride in
 *   `Sec-WebSocket-Protocol`, never in the URL, which logs keep), and keeps the connection alive with
 *   the ping the runtime answers while the room sleeps.
 * - When the connection drops it reconnects with backoff and resumes with the welcome's single-use
 *   resume token, so the peer keeps its id and the others never see it leave.
 * - Frames sent while reconnecting wait in a bounded queue and go out in order once the session is
 *   resumed, so each peer still receives this client's signals in the order they were sent.
 * - It keeps the roster (`peers`) and the ICE servers, refreshing the TURN credentials from
 *   `/v1/ice-servers` before they expire, applying new ones the room pushes (a relay in them is
 *   draining), and fetching fresh ones on demand (`refreshIceServers`, when a call through them failed).
 */
import { CLOSE_CODES, PING_FRAME, SIGNALING_SUBPROTOCOL, isValidRoomName, resumeSubprotocol, tokenSubprotocol } from "../signaling/protocol.js";
import type { ErrorCode, IceServersFrame, IceServersReason, IceServersWithheld, JsonValue, PeerInfo, PeerMeta, ServerFrame, WelcomeFrame } from "../signaling/protocol.js";
import { parseServerFrame } from "../signaling/parse-server-frame.js";
import type { IceServer } from "../turn/ice-servers.js";
import { backoffDelayMs, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { DEFAULT_FETCH_TIMEOUT_MS, fetchIceServers, isIceServer, normalizeServerUrl, refreshDelayMs, type FetchLike } from "./ice-servers.js";

/** The part of the WebSocket API the client uses: the browser's, and the `ws` package's, both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  onopen: ((event: never) => unknown) | null;
  onmessage: ((event: never) => unknown) | null;
  onclose: ((event: never) => unknown) | null;
  onerror: ((event: never) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type RoomState = "connecting" | "open" | "reconnecting" | "closed";

/** Why the client stopped for good, or what went wrong on the way. */
export interface RoomError {
  /** A server error code, or one of the client's own. */
  code: ErrorCode | "connection" | "closed" | "dropped" | "ice-servers";
  message: string;
}

export interface RoomClientEvents {
  [name: string]: unknown[];
  welcome: [welcome: WelcomeFrame];
  "peer-joined": [peer: PeerInfo];
  "peer-left": [peerId: string];
  "peer-updated": [peer: PeerInfo];
  signal: [from: string, data: JsonValue];
  broadcast: [from: string, data: JsonValue];
  state: [state: RoomState];
  error: [error: RoomError];
  "ice-servers": [update: IceServersUpdate];
}

/**
 * Why the ICE servers changed:
 * - `welcome`: the room's welcome carried them (a join, or a resume);
 * - `refresh`: fetched from /v1/ice-servers because the credentials in hand neared expiry (or a
 *   rate-limited welcome withheld them);
 * - `ice-failed`: fetched because a call through the ones in hand failed (`refreshIceServers`);
 * - `relay-draining` (and any reason a newer Worker pushes): the room pushed them in an
 *   `ice-servers` frame; a draining relay is not among them.
 */
export type IceServersUpdateReason = "welcome" | "refresh" | "ice-failed" | IceServersReason | (string & {});

export interface IceServersUpdate {
  iceServers: IceServer[];
  expiresAt: string | null;
  /** Absent only from emitters older than this field; the RoomClient always sets it. */
  reason?: IceServersUpdateReason;
}

export interface RoomClientOptions {
  /** The Worker's origin, e.g. `https://relaykit.example.workers.dev`; `ws(s)://` is derived. */
  server: string;
  room: string;
  /** A join token, or a function that gets a fresh one for each (re)connection. */
  token?: string | (() => string | Promise<string>);
  /** Default: `globalThis.WebSocket`. Node 20 has none: pass the `ws` package's `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  fetch?: FetchLike;
  reconnect?: BackoffOptions & {
    /** Give up after this many failed attempts in a row. Default: never. */
    maxAttempts?: number;
  };
  /** ICE servers of your own instead of the Worker's (no refresh then). */
  iceServers?: IceServer[];
  /** Frames kept while reconnecting; beyond this they are dropped with an `error` event. Default 256. */
  maxQueuedFrames?: number;
}

/** A connection that sends nothing for this long past its ping is taken for dead and replaced. */
const PONG_GRACE_MS = 10_000;
/** Ping at this share of the room's idle timeout, so one lost ping does not make us stale. */
const PING_SHARE_OF_IDLE_TIMEOUT = 1 / 3;
const MAX_PING_INTERVAL_MS = 20_000;
export const DEFAULT_MAX_QUEUED_FRAMES = 256;
/**
 * A fetch for a call that failed (`refreshIceServers`) gives up after this long: the call is down
 * while it waits, and the mesh restarts ICE with the servers in hand when it gives up.
 */
export const RECOVERY_FETCH_TIMEOUT_MS = 5_000;
/**
 * ICE servers the Worker handed out (welcome, push or fetch) this recently count as fresh by default:
 * `refreshIceServers` returns them without a fetch, so links that fail one after another (a relay
 * that vanished takes each of its calls down within a few seconds) cost the Worker one request.
 */
export const FRESH_ICE_SERVERS_MS = 5_000;

/** Close codes after which reconnecting is pointless or wrong. */
const FINAL_CLOSE_CODES = new Set<number>([CLOSE_CODES.normal, CLOSE_CODES.policyViolation, CLOSE_CODES.tooLarge, CLOSE_CODES.replaced, CLOSE_CODES.roomFull, CLOSE_CODES.kicked, CLOSE_CODES.roomClosed, CLOSE_CODES.authNotConfigured]);

const OPEN = 1;

/** What a final close means, for the `error` event. */
function finalCloseMessage(code: number, why: string): string {
  switch (code) {
    case CLOSE_CODES.replaced:
      return "another connection of this peer took over (the same token, or a resume elsewhere)";
    case CLOSE_CODES.roomFull:
      return "the room is full";
    case CLOSE_CODES.kicked:
      return `the room's operator removed this peer (or it is banned): ${why}`;
    case CLOSE_CODES.roomClosed:
      return "the room's operator closed the room";
    case CLOSE_CODES.authNotConfigured:
      return `the Worker refuses open rooms until its operator sets JOIN_SECRET (or AUTH_MODE=open): ${why}`;
    case CLOSE_CODES.normal:
      return "the room closed the connection";
    default:
      return `the room closed the connection for abuse or an oversized frame: ${why}`;
  }
}

/** ws(s)://host/base/v1/rooms/<room> from the Worker's http(s) origin. No credential ever goes in it. */
export function roomSocketUrl(server: string, room: string): string {
  const base = normalizeServerUrl(server).replace(/^http/, "ws");
  return `${base}/v1/rooms/${encodeURIComponent(room)}`;
}

/** The subprotocols to offer: the signaling one, then the join token and the resume token, if any. */
export function roomSubprotocols(token: string | undefined, resumeToken: string | undefined): string[] {
  const protocols = [SIGNALING_SUBPROTOCOL];
  if (token !== undefined) protocols.push(tokenSubprotocol(token));
  if (resumeToken !== undefined) protocols.push(resumeSubprotocol(resumeToken));
  return protocols;
}

export class RoomClient extends Emitter<RoomClientEvents> {
  /** This client's peer id in the room, once welcomed. */
  peerId: string | null = null;
  state: RoomState = "connecting";
  /** ICE servers to use now: the app's own, or the Worker's latest (with fresh TURN credentials). */
  iceServers: IceServer[];
  /** When the TURN credentials in `iceServers` expire (ISO 8601), if they came from the Worker. */
  iceServersExpireAt: string | null = null;

  private readonly options: RoomClientOptions;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly roster = new Map<string, PeerInfo>();
  private socket: WebSocketLike | null = null;
  private welcome: WelcomeFrame | null = null;
  private resumeToken: string | undefined;
  private failedAttempts = 0;
  private readonly queue: string[] = [];
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshFailures = 0;
  /** Counts updates, so a fetch that an update overtook (a push, a welcome) drops its older answer. */
  private iceServersVersion = 0;
  /** When the Worker's servers were last applied (ms since the epoch); 0 before any. */
  private iceServersUpdatedAt = 0;
  /** The one fetch of /v1/ice-servers in flight, which every caller meanwhile shares. */
  private iceServersFetch: Promise<boolean> | null = null;
  private lastHeardAt = 0;
  private started = false;
  private firstWelcome: { resolve(welcome: WelcomeFrame): void; reject(error: Error): void } | null = null;

  constructor(options: RoomClientOptions) {
    super();
    normalizeServerUrl(options.server); // throws a clear TypeError now rather than at connect time
    if (!isValidRoomName(options.room)) throw new TypeError(`room must be 1-64 characters of A-Z a-z 0-9 _ . -; got ${JSON.stringify(options.room)}`);
    const WebSocketImpl = options.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocketImpl === undefined) throw new TypeError("this runtime has no WebSocket: pass one, e.g. new RoomClient({ WebSocket: (await import('ws')).WebSocket, ... })");
    this.options = options;
    this.WebSocketImpl = WebSocketImpl;
    this.iceServers = options.iceServers ?? [];
  }

  /** Everyone else in the room (including peers that dropped and may still resume). */
  get peers(): ReadonlyMap<string, PeerInfo> {
    return this.roster;
  }

  /** Joins the room; resolves with the first welcome, rejects if the client stops before one. */
  connect(): Promise<WelcomeFrame> {
    if (this.started) {
      if (this.welcome !== null) return Promise.resolve(this.welcome);
      return Promise.reject(new Error("connect() was already called; wait for its promise or the welcome event"));
    }
    this.started = true;
    const welcomed = new Promise<WelcomeFrame>((resolve, reject) => (this.firstWelcome = { resolve, reject }));
    void this.open();
    return welcomed;
  }

  /** Sends `data` to one peer. Queued (in order) while reconnecting. */
  signal(to: string, data: JsonValue): void {
    this.send(JSON.stringify({ type: "signal", to, data }));
  }

  /** Sends `data` to every other peer. */
  broadcast(data: JsonValue): void {
    this.send(JSON.stringify({ type: "broadcast", data }));
  }

  /** Replaces this peer's metadata; the others get `peer-updated`. */
  setMeta(meta: PeerMeta): void {
    this.send(JSON.stringify({ type: "meta", data: meta }));
  }

  /** Leaves for good: the others see `peer-left` at once. */
  leave(): void {
    if (this.socket !== null && this.socket.readyState === OPEN) this.socket.send(JSON.stringify({ type: "leave" }));
    this.stop({ code: "closed", message: "left the room" }, CLOSE_CODES.normal, false);
  }

  /** Closes without leaving: the others see this peer as away until the resume grace runs out. */
  close(): void {
    this.stop({ code: "closed", message: "closed by the app" }, CLOSE_CODES.normal, false);
  }

  /**
   * Gets fresh ICE servers from the Worker's /v1/ice-servers now (the mesh calls this when a call
   * fails: the relay it used may be gone) and applies them, with an `ice-servers` event carrying
   * `reason`. Calls while a fetch is in flight share it, and servers handed out in the last
   * `maxAgeMs` (default `FRESH_ICE_SERVERS_MS`; 0 always fetches) are kept without a fetch. Gives
   * up after `RECOVERY_FETCH_TIMEOUT_MS`.
   *
   * Resolves true when the servers in hand are fresh, false when there is nothing fresh to have
   * (the app passed its own `iceServers`, the client is closed, or the fetch failed: an `error`
   * event with code `ice-servers` says why). Never rejects.
   */
  refreshIceServers(reason: IceServersUpdateReason = "ice-failed", maxAgeMs: number = FRESH_ICE_SERVERS_MS): Promise<boolean> {
    if (this.options.iceServers !== undefined || this.isClosed()) return Promise.resolve(false);
    if (this.iceServersFetch !== null) return this.iceServersFetch;
    if (this.iceServersUpdatedAt > 0 && Date.now() - this.iceServersUpdatedAt < maxAgeMs) return Promise.resolve(true);
    return this.fetchIceServersShared(reason, RECOVERY_FETCH_TIMEOUT_MS);
  }

  // ---------------------------------------------------------------------------------------------

  /** A method, not a field test, so TypeScript does not narrow `state` across awaits and callbacks. */
  private isClosed(): boolean {
    return this.state === "closed";
  }

  private setState(state: RoomState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  private send(text: string): void {
    if (this.isClosed()) {
      this.emit("error", { code: "closed", message: "the room client is closed; create a new one to rejoin" });
      return;
    }
    if (this.state === "open" && this.socket !== null && this.socket.readyState === OPEN && this.queue.length === 0) {
      this.socket.send(text);
      return;
    }
    const max = this.options.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES;
    if (this.queue.length >= max) {
      this.emit("error", { code: "dropped", message: `not connected and ${max} frames already wait; this one was dropped` });
      return;
    }
    this.queue.push(text);
  }

  private async open(): Promise<void> {
    if (this.isClosed()) return;
    let token: string | undefined;
    try {
      token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
    } catch (error) {
      this.emit("error", { code: "connection", message: `could not get a join token: ${error instanceof Error ? error.message : String(error)}` });
      this.scheduleReconnect();
      return;
    }
    if (this.isClosed()) return;
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketImpl(roomSocketUrl(this.options.server, this.options.room), roomSubprotocols(token, this.resumeToken));
    } catch (error) {
      this.emit("error", { code: "connection", message: `could not open a WebSocket: ${error instanceof Error ? error.message : String(error)}` });
      this.scheduleReconnect();
      return;
    }
    // A resume token is single use: whatever happens to this attempt, the next one must not reuse it.
    this.resumeToken = undefined;
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.lastHeardAt = Date.now();
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.socket !== socket) return;
      this.lastHeardAt = Date.now();
      if (typeof event.data !== "string") return; // the room only sends text
      const frame = parseServerFrame(event.data);
      if (frame !== null) this.handleFrame(frame);
    };
    socket.onerror = () => {
      // The close event that follows says more; nothing to do here but not crash.
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.stopPinging();
      this.onClosed(event.code, event.reason, opened);
    };
  }

  private onClosed(code: number, reason: string, opened: boolean): void {
    if (this.isClosed()) return;
    if (FINAL_CLOSE_CODES.has(code)) {
      const why = reason || `closed with code ${code}`;
      const message = finalCloseMessage(code, why);
      this.stop({ code: "closed", message }, undefined);
      return;
    }
    if (!opened) {
      this.emit("error", { code: "connection", message: `could not connect to ${roomSocketUrl(this.options.server, this.options.room)} (code ${code}${reason ? `: ${reason}` : ""})` });
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.isClosed()) return;
    const maxAttempts = this.options.reconnect?.maxAttempts ?? Number.POSITIVE_INFINITY;
    if (this.failedAttempts >= maxAttempts) {
      this.stop({ code: "connection", message: `gave up after ${this.failedAttempts} failed connection attempts` }, undefined);
      return;
    }
    // The resume token from the last welcome is still good within the grace period.
    if (this.welcome !== null && this.resumeToken === undefined) this.resumeToken = this.welcome.resumeToken;
    this.setState(this.welcome === null ? "connecting" : "reconnecting");
    const delay = backoffDelayMs(this.failedAttempts, this.options.reconnect);
    this.failedAttempts++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.open();
    }, delay);
  }

  private handleFrame(frame: ServerFrame): void {
    switch (frame.type) {
      case "welcome":
        return this.onWelcome(frame);
      case "peer-joined":
        this.roster.set(frame.peer.id, frame.peer);
        return this.emit("peer-joined", frame.peer);
      case "peer-left":
        if (!this.roster.delete(frame.peerId)) return;
        return this.emit("peer-left", frame.peerId);
      case "peer-updated":
        this.roster.set(frame.peer.id, frame.peer);
        return this.emit("peer-updated", frame.peer);
      case "signal":
        return this.emit("signal", frame.from, frame.data);
      case "broadcast":
        return this.emit("broadcast", frame.from, frame.data);
      case "pong":
        return;
      case "ice-servers":
        return this.onIceServersFrame(frame);
      case "error":
        return this.emit("error", { code: frame.code, message: frame.message });
    }
  }

  private onWelcome(welcome: WelcomeFrame): void {
    const previous = this.welcome;
    this.welcome = welcome;
    this.peerId = welcome.peerId;
    this.failedAttempts = 0;

    // The roster is whatever the room says now; tell listeners what changed while we were away.
    const before = new Map(this.roster);
    this.roster.clear();
    for (const peer of welcome.peers) this.roster.set(peer.id, peer);
    const continued = previous !== null && welcome.resumed;
    if (!continued) {
      // A new session: the others saw us leave, and signals queued for the old one mean nothing now.
      if (this.queue.length > 0) {
        this.emit("error", { code: "dropped", message: `the session could not be resumed; ${this.queue.length} queued frames were dropped` });
        this.queue.length = 0;
      }
    }

    if (welcome.iceServers !== undefined && this.options.iceServers === undefined) {
      this.updateIceServers(welcome.iceServers, welcome.expiresAt ?? null, "welcome");
    } else if (welcome.iceServersWithheld !== undefined && this.options.iceServers === undefined) {
      this.fetchWithheldIceServers(welcome.iceServersWithheld);
    }
    this.startPinging(welcome.idleTimeoutMs);
    this.setState("open");
    this.emit("welcome", welcome);
    if (continued) {
      for (const [id] of before) if (!this.roster.has(id)) this.emit("peer-left", id);
      for (const [id, peer] of this.roster) {
        const old = before.get(id);
        if (old === undefined) this.emit("peer-joined", peer);
        else if (JSON.stringify(old.meta) !== JSON.stringify(peer.meta)) this.emit("peer-updated", peer);
      }
    }
    // Whatever was said while away goes out now, in the order it was said.
    const socket = this.socket;
    while (this.queue.length > 0 && socket !== null && socket.readyState === OPEN) socket.send(this.queue.shift()!);

    if (this.firstWelcome !== null) {
      this.firstWelcome.resolve(welcome);
      this.firstWelcome = null;
    }
  }

  private updateIceServers(iceServers: IceServer[], expiresAt: string | null, reason: IceServersUpdateReason): void {
    this.iceServers = iceServers;
    this.iceServersExpireAt = expiresAt;
    this.iceServersVersion++;
    this.iceServersUpdatedAt = Date.now();
    this.refreshFailures = 0;
    // Rescheduled before the event, so a listener that reads the client sees the new plan.
    this.scheduleIceRefresh();
    this.emit("ice-servers", { iceServers, expiresAt, reason });
  }

  /**
   * The room pushed new servers (a relay in the old ones is draining): apply them as a refresh.
   * An app that passed its own servers gets none of the Worker's, pushed or not.
   */
  private onIceServersFrame(frame: IceServersFrame): void {
    if (this.options.iceServers !== undefined || this.isClosed()) return;
    if (!frame.iceServers.every(isIceServer) || Number.isNaN(Date.parse(frame.expiresAt))) {
      this.emit("error", { code: "ice-servers", message: `the room pushed ICE servers this client cannot read (reason ${JSON.stringify(String(frame.reason).slice(0, 64))}); keeping the ones in hand` });
      return;
    }
    this.updateIceServers(frame.iceServers, frame.expiresAt, frame.reason);
  }

  /**
   * The welcome came without TURN credentials because the Worker's issuance limit refused them:
   * fetch them from /v1/ice-servers once the limit allows, unless the ones in hand (from an earlier
   * welcome) stay good past that and their own refresh is already planned.
   */
  private fetchWithheldIceServers(withheld: IceServersWithheld): void {
    this.emit("error", { code: "ice-servers", message: `the room's welcome carried no TURN credentials (${withheld.message}); fetching them from /v1/ice-servers in ${Math.round(withheld.retryAfterMs / 1000)} s` });
    const now = Date.now();
    if (this.refreshTimer !== undefined && this.iceServersExpireAt !== null && refreshDelayMs(this.iceServersExpireAt, now) <= withheld.retryAfterMs) return;
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.runScheduledRefresh(), Math.max(0, withheld.retryAfterMs));
  }

  private scheduleIceRefresh(): void {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const expiresAt = this.iceServersExpireAt;
    if (this.isClosed()) return;
    // Without credentials in hand, only a failed fetch of withheld ones brings us here: retry it.
    if (expiresAt === null && this.refreshFailures === 0) return;
    const now = Date.now();
    let delay = expiresAt === null ? Number.POSITIVE_INFINITY : refreshDelayMs(expiresAt, now);
    if (this.refreshFailures > 0) {
      // Retry sooner than the next regular refresh, but back off while the Worker keeps failing.
      delay = Math.min(delay, backoffDelayMs(this.refreshFailures - 1, { initialDelayMs: 1_000, maxDelayMs: 30_000 }));
    }
    this.refreshTimer = setTimeout(() => void this.runScheduledRefresh(), delay);
  }

  /** The refresh timer fired: fetch (or join the fetch in flight); on failure retry with backoff. */
  private async runScheduledRefresh(): Promise<void> {
    this.refreshTimer = undefined;
    if (this.isClosed()) return;
    const fresh = await (this.iceServersFetch ?? this.fetchIceServersShared("refresh", DEFAULT_FETCH_TIMEOUT_MS));
    if (fresh || this.isClosed() || this.refreshTimer !== undefined) return;
    this.refreshFailures++;
    this.scheduleIceRefresh();
  }

  /** Starts the one fetch every caller shares until it settles. */
  private fetchIceServersShared(reason: IceServersUpdateReason, timeoutMs: number): Promise<boolean> {
    const fetching = this.fetchAndApplyIceServers(reason, timeoutMs).finally(() => {
      if (this.iceServersFetch === fetching) this.iceServersFetch = null;
    });
    this.iceServersFetch = fetching;
    return fetching;
  }

  /**
   * Fetches /v1/ice-servers with what this client joined with: its join token, or for an open room
   * the room and its peer id (the Worker then mints a room-scoped TURN user). True when fresh servers
   * are in hand afterwards; on failure reports an `error` event and resolves false.
   */
  private async fetchAndApplyIceServers(reason: IceServersUpdateReason, timeoutMs: number): Promise<boolean> {
    const version = this.iceServersVersion;
    try {
      const token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
      const member = token === undefined && this.peerId !== null ? { room: this.options.room, peer: this.peerId } : {};
      const fresh = await fetchIceServers({
        server: this.options.server,
        ...(token === undefined ? member : { token }),
        ...(this.options.fetch === undefined ? {} : { fetch: this.options.fetch }),
        timeoutMs,
      });
      if (this.isClosed()) return false;
      // A push or a welcome came while this fetch was out: theirs are at least as new; keep them.
      if (this.iceServersVersion !== version) return true;
      this.updateIceServers(fresh.iceServers, fresh.expiresAt, reason);
      return true;
    } catch (error) {
      if (this.isClosed()) return false;
      const what = reason === "refresh" ? "could not refresh the TURN credentials" : `could not fetch fresh ICE servers (${reason})`;
      this.emit("error", { code: "ice-servers", message: `${what}: ${error instanceof Error ? error.message : String(error)}` });
      return false;
    }
  }

  private startPinging(idleTimeoutMs: number): void {
    this.stopPinging();
    const interval = Math.max(1_000, Math.min(MAX_PING_INTERVAL_MS, Math.floor(idleTimeoutMs * PING_SHARE_OF_IDLE_TIMEOUT)));
    const socket = this.socket;
    this.pingTimer = setInterval(() => {
      if (socket === null || this.socket !== socket) return;
      // Nothing heard (not even the last pong) for too long: the path is dead even if TCP has not
      // noticed. Drop this socket and resume on a new one.
      if (Date.now() - this.lastHeardAt > interval + PONG_GRACE_MS) {
        this.socket = null;
        this.stopPinging();
        socket.onclose = null;
        try {
          socket.close();
        } catch {
          // already closing
        }
        this.onClosed(4000, "no answer to ping", true);
        return;
      }
      if (socket.readyState === OPEN) socket.send(PING_FRAME);
    }, interval);
  }

  private stopPinging(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  /** Stops for good; `report` is false when the app asked for it (no `error` event then). */
  private stop(error: RoomError, closeCode: number | undefined, report = true): void {
    if (this.isClosed()) return;
    this.setState("closed");
    this.stopPinging();
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.reconnectTimer = this.refreshTimer = undefined;
    this.queue.length = 0;
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      socket.onclose = null;
      try {
        socket.close(closeCode ?? CLOSE_CODES.normal);
      } catch {
        // already closed
      }
    }
    if (report) this.emit("error", error);
    if (this.firstWelcome !== null) {
      this.firstWelcome.reject(new Error(error.message));
      this.firstWelcome = null;
    }
  }
}
