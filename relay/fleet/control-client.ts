/**
 * The relay's end of the fleet control channel (shared/fleet/protocol.ts): one outbound WebSocket
 * to the Worker's fleet object, kept up for as long as the relay runs.
 *
 *   connect    a fresh fleet token per connection (shared/fleet/token.ts), offered as
 *              `Authorization: Bearer`, with the subprotocol FLEET_SUBPROTOCOL; the handshake is
 *              bounded (handshakeTimeoutMs)
 *   open       `register`, then a `heartbeat` at once and every interval (HEARTBEAT_INTERVAL_MS, or
 *              the fleet's `heartbeatIntervalMs`, kept within 1-5 s), and at once on a state change
 *   revoke     every `revoke` from the fleet goes to `onRevoke` at once (the relay ends the matching
 *              allocations); the fleet replays the live ones after each `register`
 *   usage      heartbeats carry the usage report the relay builds; every `usage-ack` goes to
 *              `onUsageAck` (the ledger marks what that report carried as stored)
 *   liveness   a WebSocket ping every pingIntervalMs; no pong by the next one ends the connection,
 *              so a dead TCP path is noticed within two intervals (20 s)
 *   close      reconnect after a full-jitter exponential backoff (0.5 s doubling to 30 s; the count
 *              resets once the fleet answers `registered`); after a close only an operator can
 *              fix (bad token, fleet full, fleet not configured) at least 60 s, and at least 30 s
 *              after another connection took this relay id over
 *
 * The fleet only steers: nothing here throws into the relay, waits on the network in the relay's
 * path, or touches serving. A Worker that is down, slow or answering garbage costs the relay a
 * reconnect now and then, and a log line for each change of state (never the key or a token).
 */
import WebSocket from "ws";
import {
  FLEET_CLOSE_CODES,
  FLEET_LIMITS,
  FLEET_SUBPROTOCOL,
  HEARTBEAT_INTERVAL_MS,
  parseFleetMessage,
  type HeartbeatMessage,
  type RegisterMessage,
  type RelayState,
  type Revocation,
  type UsageAckMessage,
} from "../../shared/fleet/protocol.js";
import { FLEET_TOKEN_TTL_SECONDS, mintFleetToken } from "../../shared/fleet/token.js";

export const FLEET_CLIENT_TIMING = {
  /** The WebSocket handshake (TCP, TLS, HTTP upgrade) must finish within this. */
  handshakeTimeoutMs: 10_000,
  /** Reconnect backoff: a random delay up to base × 2^attempt, at most max (full jitter). */
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
  /** The least wait after a close only an operator can fix: badToken, fleetFull, notConfigured. */
  operatorFixBackoffMs: 60_000,
  /** The least wait after `replaced`: another relay is probably using the same --fleet-relay-id. */
  replacedBackoffMs: 30_000,
  /** A ping this often; a connection with no pong since the previous ping is ended. */
  pingIntervalMs: 10_000,
  /** A clean close (1000) waits this long for the fleet's answer before dropping the connection. */
  closeTimeoutMs: 2_000,
  /** The shortest heartbeat interval the relay follows, whatever the fleet asks (its rate limit is 1 message/s). */
  minHeartbeatIntervalMs: 1_000,
  /** Messages the relay does not understand on one connection before it gives up on it. */
  maxIgnoredMessages: 20,
  /** `error` messages from the fleet logged per connection; more are counted, not logged. */
  maxLoggedErrors: 5,
} as const;

export type FleetClientTiming = { -readonly [K in keyof typeof FLEET_CLIENT_TIMING]: number };

/** WebSocket close codes this relay may send or see, as metric labels; any other is "other" (the label set stays small). */
const KNOWN_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 1015, ...Object.values(FLEET_CLOSE_CODES)]);

export function closeCodeLabel(code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : "other";
}

/** Heartbeats are skipped, not queued, while this much is still unsent: a slow fleet never piles up memory. */
const MAX_BUFFERED_BYTES = 2 * FLEET_LIMITS.maxMessageBytes;

const OPERATOR_FIX_CODES: ReadonlySet<number> = new Set([FLEET_CLOSE_CODES.badToken, FLEET_CLOSE_CODES.fleetFull, FLEET_CLOSE_CODES.notConfigured]);

/** What to do about each close code the fleet uses, for the log line. */
const CLOSE_ADVICE: Readonly<Record<number, string>> = {
  [FLEET_CLOSE_CODES.badToken]: "the fleet key is not one of the Worker's FLEET_KEYS: check --fleet-key-file or RELAY_FLEET_KEY",
  [FLEET_CLOSE_CODES.tokenExpired]: "the token was judged expired: check this host's clock",
  [FLEET_CLOSE_CODES.tokenReplayed]: "the token was seen before: every connection mints a new one, so another party replayed it",
  [FLEET_CLOSE_CODES.fleetFull]: "the fleet holds FLEET_MAX_RELAYS relays already: raise it at the Worker or retire a relay",
  [FLEET_CLOSE_CODES.protocolViolation]: "the fleet refused this relay's messages: see the fleet-error lines before",
  [FLEET_CLOSE_CODES.notConfigured]: "the Worker has no FLEET_KEYS: wrangler secret put FLEET_KEYS",
  [FLEET_CLOSE_CODES.replaced]: "another connection with this relay id took over: give each relay its own --fleet-relay-id",
};

/**
 * The wait before reconnect attempt `attempt` (0 for the first after a working connection): full
 * jitter over base × 2^attempt, capped; at least `floorMs`. Pure.
 */
export function backoffDelay(attempt: number, random: number, timing: Pick<FleetClientTiming, "backoffBaseMs" | "backoffMaxMs">, floorMs = 0): number {
  const ceiling = Math.min(timing.backoffMaxMs, timing.backoffBaseMs * 2 ** Math.min(attempt, 30));
  return Math.max(floorMs, Math.round(random * ceiling));
}

/** The least wait after a close with this code. */
export function backoffFloor(code: number, timing: Pick<FleetClientTiming, "operatorFixBackoffMs" | "replacedBackoffMs">): number {
  if (OPERATOR_FIX_CODES.has(code)) return timing.operatorFixBackoffMs;
  if (code === FLEET_CLOSE_CODES.replaced) return timing.replacedBackoffMs;
  return 0;
}

/** The fleet's heartbeat interval, kept where the relay stays live and within the fleet's rate limit. */
export function heartbeatInterval(askedMs: number | undefined, timing: Pick<FleetClientTiming, "minHeartbeatIntervalMs">): number {
  if (askedMs === undefined || !Number.isFinite(askedMs)) return HEARTBEAT_INTERVAL_MS;
  return Math.min(HEARTBEAT_INTERVAL_MS, Math.max(timing.minHeartbeatIntervalMs, askedMs));
}

/** Plain counters the metrics read when scraped. */
export interface FleetCounters {
  readonly connected: boolean;
  readonly connects: number;
  /** Closes by code label (closeCodeLabel). */
  readonly closes: ReadonlyMap<string, number>;
  readonly heartbeatsSent: number;
  /** `usage-ack` messages received. */
  readonly usageAcks: number;
}

export type FleetLogLine = { event: string; [field: string]: unknown };

export interface FleetClientOptions {
  url: string;
  relayId: string;
  /** The key that signs the next connection's token; read per connection, so a SIGHUP's new key is used from then on. */
  signingKey: () => string;
  register: () => RegisterMessage;
  heartbeat: (state: RelayState) => HeartbeatMessage;
  /** Revocations the fleet sent (checked by parseFleetMessage): the relay ends and refuses what they cover. */
  onRevoke?: (revocations: readonly Revocation[]) => void;
  /** The fleet stored the usage report `seq` of boot `boot` (another boot's ack is the callee's to ignore). */
  onUsageAck?: (ack: UsageAckMessage) => void;
  log: { info(line: FleetLogLine): void; warn(line: FleetLogLine): void };
  timing?: Partial<FleetClientTiming>;
  /** A number in [0, 1) for the backoff's jitter. */
  random?: () => number;
}

/** Text from the fleet, made safe for one log field: control characters out, bounded. */
function printable(text: string, max = 200): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, max);
}

export class FleetControlClient implements FleetCounters {
  private readonly timing: FleetClientTiming;
  private readonly random: () => number;
  private ws: WebSocket | null = null;
  private state: RelayState = "ready";
  private stopped = false;
  private started = false;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private intervalMs: number = HEARTBEAT_INTERVAL_MS;

  connected = false;
  connects = 0;
  heartbeatsSent = 0;
  usageAcks = 0;
  readonly closes = new Map<string, number>();

  constructor(private readonly options: FleetClientOptions) {
    this.timing = { ...FLEET_CLIENT_TIMING, ...options.timing };
    this.random = options.random ?? Math.random;
  }

  /** Starts connecting; returns at once. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.connect();
  }

  get relayState(): RelayState {
    return this.state;
  }

  /**
   * The relay's state changed (it started draining): a heartbeat saying so goes out at once when
   * connected, and every later register and heartbeat carries it. Returns whether one was sent now.
   */
  setState(state: RelayState): boolean {
    if (state === this.state) return false;
    this.state = state;
    const sent = this.sendHeartbeat();
    this.options.log.info({ event: "fleet-state", state, sent });
    return sent;
  }

  /**
   * Closes the channel cleanly (1000) and stops reconnecting. Resolves once the fleet answered the
   * close or closeTimeoutMs passed (the connection is then dropped); never rejects.
   */
  async stop(reason = "relay stopping"): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimer("reconnectTimer");
    const ws = this.ws;
    if (ws === null || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        ws.terminate();
        resolve();
      }, this.timing.closeTimeoutMs);
      ws.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        // A connection still in its handshake has nothing to close cleanly: ws ends it.
        if (ws.readyState === WebSocket.OPEN) ws.close(1000, reason);
        else ws.terminate();
      } catch {
        ws.terminate();
      }
    });
  }

  private clearTimer(name: "reconnectTimer" | "heartbeatTimer" | "pingTimer"): void {
    const timer = this[name];
    if (timer !== null) clearTimeout(timer);
    this[name] = null;
  }

  /** Runs a handler's body; anything it throws is logged, never passed on to the relay. */
  private guard(where: string, body: () => void): void {
    try {
      body();
    } catch (error) {
      this.options.log.warn({ event: "fleet-client-error", where, error: error instanceof Error ? error.message : String(error) });
    }
  }

  private connect(): void {
    if (this.stopped) return;
    let token: Promise<string>;
    try {
      token = mintFleetToken(this.options.signingKey(), this.options.relayId, { ttlSeconds: FLEET_TOKEN_TTL_SECONDS });
    } catch (error) {
      token = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    token
      .then((bearer) => this.open(bearer))
      .catch((error: unknown) => {
        // No token, or no socket: try again later like any failed connect.
        this.options.log.warn({ event: "fleet-connect-failed", error: printable(error instanceof Error ? error.message : String(error)) });
        this.scheduleReconnect(0);
      });
  }

  private open(bearer: string): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.options.url, [FLEET_SUBPROTOCOL], {
      headers: { Authorization: `Bearer ${bearer}` },
      handshakeTimeout: this.timing.handshakeTimeoutMs,
      maxPayload: FLEET_LIMITS.maxMessageBytes,
      perMessageDeflate: false,
      followRedirects: false,
    });
    this.ws = ws;
    let failure: string | undefined;
    let ignored = 0;
    let errors = 0;
    let alive = true;

    ws.on("open", () =>
      this.guard("open", () => {
        if (this.ws !== ws) return;
        this.connected = true;
        this.connects++;
        this.options.log.info({ event: "fleet-connected", url: this.options.url });
        this.send(ws, this.options.register());
        this.sendHeartbeat();
        this.scheduleHeartbeats(HEARTBEAT_INTERVAL_MS);
        this.pingTimer = setInterval(
          () =>
            this.guard("ping", () => {
              if (!alive) {
                failure = `no pong within ${this.timing.pingIntervalMs} ms`;
                ws.terminate();
                return;
              }
              alive = false;
              ws.ping();
            }),
          this.timing.pingIntervalMs,
        );
        this.pingTimer.unref();
      }),
    );
    ws.on("pong", () => (alive = true));
    ws.on("message", (data, isBinary) =>
      this.guard("message", () => {
        if (this.ws !== ws) return;
        alive = true;
        const message = isBinary ? null : parseFleetMessage(data.toString());
        if (message === null) {
          ignored++;
          if (ignored === 1) this.options.log.warn({ event: "fleet-message-ignored", reason: isBinary ? "a binary message" : "not a fleet message this relay knows" });
          if (ignored > this.timing.maxIgnoredMessages) {
            failure = `${ignored} messages this relay does not understand`;
            ws.close(1008, "unexpected messages");
          }
          return;
        }
        if (message.type === "registered") {
          this.attempt = 0;
          this.scheduleHeartbeats(heartbeatInterval(message.heartbeatIntervalMs, this.timing));
          this.options.log.info({ event: "fleet-registered", relayId: printable(message.relayId, 64), heartbeatIntervalMs: this.intervalMs });
        } else if (message.type === "revoke") {
          this.options.onRevoke?.(message.revocations);
        } else if (message.type === "usage-ack") {
          this.usageAcks++;
          this.options.onUsageAck?.(message);
        } else if (++errors <= this.timing.maxLoggedErrors) {
          this.options.log.warn({ event: "fleet-error", code: message.code, message: printable(message.message) });
        }
      }),
    );
    ws.on("error", (error) => (failure = printable(error.message)));
    ws.on("close", (code, reasonBytes) =>
      this.guard("close", () => {
        if (this.ws !== ws) return;
        this.ws = null;
        const wasConnected = this.connected;
        this.connected = false;
        this.clearTimer("heartbeatTimer");
        this.clearTimer("pingTimer");
        const label = closeCodeLabel(code);
        this.closes.set(label, (this.closes.get(label) ?? 0) + 1);
        const reason = printable(reasonBytes.toString());
        this.options.log[code === 1000 && this.stopped ? "info" : "warn"]({
          event: "fleet-closed",
          code,
          ...(reason !== "" && { reason }),
          ...(failure !== undefined && { error: failure }),
          ...(CLOSE_ADVICE[code] !== undefined && { advice: CLOSE_ADVICE[code] }),
          connected: wasConnected,
        });
        this.scheduleReconnect(backoffFloor(code, this.timing));
      }),
    );
  }

  private scheduleReconnect(floorMs: number): void {
    if (this.stopped || this.reconnectTimer !== null) return;
    const delayMs = backoffDelay(this.attempt, this.random(), this.timing, floorMs);
    this.attempt++;
    this.options.log.info({ event: "fleet-backoff", delayMs, attempt: this.attempt });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.guard("reconnect", () => this.connect());
    }, delayMs);
    this.reconnectTimer.unref();
  }

  private scheduleHeartbeats(intervalMs: number): void {
    this.clearTimer("heartbeatTimer");
    this.intervalMs = intervalMs;
    this.heartbeatTimer = setInterval(() => this.guard("heartbeat", () => this.sendHeartbeat()), intervalMs);
    this.heartbeatTimer.unref();
  }

  /** Sends a heartbeat now (the relay's last usage before it stops) when the channel is open; whether it went out. */
  heartbeatNow(): boolean {
    return this.sendHeartbeat();
  }

  /** Sends a heartbeat of the current state when the channel is open; whether it went out. */
  private sendHeartbeat(): boolean {
    const ws = this.ws;
    if (ws === null || !this.connected) return false;
    const sent = this.send(ws, this.options.heartbeat(this.state));
    if (sent) this.heartbeatsSent++;
    return sent;
  }

  private send(ws: WebSocket, message: RegisterMessage | HeartbeatMessage): boolean {
    if (ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BUFFERED_BYTES) return false;
    const text = JSON.stringify(message);
    if (text.length > FLEET_LIMITS.maxMessageBytes) {
      this.options.log.warn({ event: "fleet-message-too-large", type: message.type, bytes: text.length });
      return false;
    }
    // An error sending surfaces as the connection's close; nothing to do here.
    ws.send(text, () => {});
    return true;
  }
}
