/**
 * A small fleet server for the relay's tests, standing in for the Worker's fleet object while that
 * is built: a `ws` WebSocketServer on 127.0.0.1 that does what the contract in shared/fleet/ says
 * the fleet does. It accepts the upgrade only with the subprotocol, checks the bearer token with
 * `verifyFleetToken` against its keys, refuses a jti it has seen (4403), an expired token (4402) or
 * a bad one (4401) by closing with FLEET_CLOSE_CODES, parses every message with
 * `parseRelayMessage`, answers `register` with `registered` (after replaying its revocations, as
 * the fleet does), sends `revoke` when the test revokes, acknowledges usage reports (`usage-ack`)
 * when told to, and records all of it for the test.
 * Every connection can be closed or dropped by the test; `stop()` ends them all and frees the port.
 */
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket } from "ws";
import {
  FLEET_CLOSE_CODES,
  FLEET_LIMITS,
  FLEET_PATH,
  FLEET_SUBPROTOCOL,
  parseRelayMessage,
  type HeartbeatMessage,
  type RegisterMessage,
  type RelayMessage,
  type Revocation,
  type RevokeMessage,
  type UsageAckMessage,
  type UsageReport,
} from "../../../shared/fleet/protocol.js";
import { verifyFleetToken, type FleetTokenClaims } from "../../../shared/fleet/token.js";
import { spawnTestRelay, type RelayProcess } from "../ops/ops-helpers.js";

export interface FleetConnection {
  readonly ws: WebSocket;
  /** When the upgrade came, ms since the epoch. */
  readonly at: number;
  /** The verified claims; undefined when the token was refused. */
  claims?: FleetTokenClaims;
  /** The subprotocol the client offered. */
  readonly offered: string;
  /** Every message, parsed (the parse failures in `bad`). */
  readonly messages: { at: number; message: RelayMessage }[];
  readonly bad: string[];
  /** True once it registered (and was answered). */
  registered?: boolean;
  /** How the connection ended, once it did. */
  closed?: { code: number; reason: string; at: number };
}

export interface TestFleetOptions {
  /** The heartbeat interval `registered` asks for; the relay keeps it within 1-5 s. */
  heartbeatIntervalMs?: number;
  /** Called once a connection's token is verified (before any message): a test may close it or send garbage. */
  onVerified?: (connection: FleetConnection) => void;
  /** Do not answer `registered` (a fleet that never acknowledges). */
  silent?: boolean;
  /** Answer every heartbeat's usage report with `usage-ack` (the test may switch `ackUsage` later). */
  ackUsage?: boolean;
}

export class TestFleetServer {
  readonly connections: FleetConnection[] = [];
  /** Every jti seen, across restarts of this server object. */
  readonly seenNonces = new Set<string>();
  /** Revocations replayed to every relay after its register (before registered); `revoke` adds to them. */
  readonly revocations: Revocation[] = [];
  keys: string[];
  /** Whether heartbeats' usage reports are acknowledged at once (as the fleet does once the rooms stored them). */
  ackUsage: boolean;
  private server: WebSocketServer | null = null;

  private constructor(
    /** 0 until the first listen when started on port 0 (any free port); kept for restarts. */
    public port: number,
    keys: string[],
    private readonly options: TestFleetOptions,
  ) {
    this.keys = keys;
    this.ackUsage = options.ackUsage === true;
  }

  /** `port` 0: any free port (the system's choice, so no fixed port can be taken by another test's socket). */
  static async start(port: number, keys: string[], options: TestFleetOptions = {}): Promise<TestFleetServer> {
    const fleet = new TestFleetServer(port, keys, options);
    await fleet.listen();
    return fleet;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}${FLEET_PATH}`;
  }

  /** Listens (again, after `stop()`) on the same port: the one it was given, or got the first time. */
  async listen(): Promise<void> {
    const server = new WebSocketServer({
      host: "127.0.0.1",
      port: this.port,
      path: FLEET_PATH,
      maxPayload: FLEET_LIMITS.maxMessageBytes,
      handleProtocols: (offered) => (offered.has(FLEET_SUBPROTOCOL) ? FLEET_SUBPROTOCOL : false),
    });
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
    server.on("connection", (ws, request) => this.accept(ws, request));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  private accept(ws: WebSocket, request: IncomingMessage): void {
    const connection: FleetConnection = { ws, at: Date.now(), offered: String(request.headers["sec-websocket-protocol"] ?? ""), messages: [], bad: [] };
    this.connections.push(connection);
    const pending: string[] = [];
    let verified = false;
    ws.on("close", (code, reason) => (connection.closed = { code, reason: reason.toString(), at: Date.now() }));
    ws.on("error", () => {});
    const handle = (text: string) => {
      const parsed = parseRelayMessage(text);
      if (!parsed.ok) {
        connection.bad.push(parsed.message);
        ws.send(JSON.stringify({ type: "error", code: parsed.code, message: parsed.message }));
        return;
      }
      connection.messages.push({ at: Date.now(), message: parsed.message });
      if (parsed.message.type === "register" && this.options.silent !== true) {
        connection.registered = true;
        for (let i = 0; i < this.revocations.length; i += FLEET_LIMITS.maxRevocationsPerMessage) {
          ws.send(JSON.stringify({ type: "revoke", revocations: this.revocations.slice(i, i + FLEET_LIMITS.maxRevocationsPerMessage) } satisfies RevokeMessage));
        }
        ws.send(JSON.stringify({ type: "registered", relayId: parsed.message.relayId, heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 5_000 }));
      }
      if (parsed.message.type === "heartbeat" && parsed.message.usage !== undefined && this.ackUsage) {
        ws.send(JSON.stringify({ type: "usage-ack", boot: parsed.message.usage.boot, seq: parsed.message.usage.seq } satisfies UsageAckMessage));
      }
    };
    ws.on("message", (data, isBinary) => {
      const text = isBinary ? "" : data.toString();
      if (verified) handle(text);
      else pending.push(text);
    });
    const header = request.headers.authorization ?? "";
    const token = header.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
    void verifyFleetToken(token, this.keys).then((check) => {
      if (!check.ok) {
        ws.close(check.reason === "expired" ? FLEET_CLOSE_CODES.tokenExpired : FLEET_CLOSE_CODES.badToken, check.message.slice(0, 120));
        return;
      }
      if (this.seenNonces.has(check.claims.nonce)) {
        ws.close(FLEET_CLOSE_CODES.tokenReplayed, "the fleet token was used before");
        return;
      }
      this.seenNonces.add(check.claims.nonce);
      connection.claims = check.claims;
      verified = true;
      this.options.onVerified?.(connection);
      for (const text of pending.splice(0)) handle(text);
    });
  }

  /** Stops listening and drops every connection (as a Worker that went away). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server === null) return;
    for (const client of server.clients) client.terminate();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Revokes: kept for later registrations, and sent at once to every registered, open connection; returns how many got it. */
  revoke(revocations: Revocation[]): number {
    this.revocations.push(...revocations);
    let sent = 0;
    for (const connection of this.connections) {
      if (connection.registered !== true || connection.closed !== undefined || connection.ws.readyState !== connection.ws.OPEN) continue;
      connection.ws.send(JSON.stringify({ type: "revoke", revocations } satisfies RevokeMessage));
      sent++;
    }
    return sent;
  }

  /** The verified connections, in order. */
  verified(): FleetConnection[] {
    return this.connections.filter((connection) => connection.claims !== undefined);
  }

  registers(): RegisterMessage[] {
    return this.connections.flatMap((connection) => connection.messages.map((entry) => entry.message)).filter((message): message is RegisterMessage => message.type === "register");
  }

  heartbeats(connection?: FleetConnection): { at: number; message: HeartbeatMessage }[] {
    return (connection === undefined ? this.connections : [connection]).flatMap((c) =>
      c.messages.filter((entry): entry is { at: number; message: HeartbeatMessage } => entry.message.type === "heartbeat"),
    );
  }

  lastHeartbeat(): HeartbeatMessage | undefined {
    return this.heartbeats().at(-1)?.message;
  }

  /** The usage reports of every heartbeat (of one connection, or all), in order. */
  usageReports(connection?: FleetConnection): UsageReport[] {
    return this.heartbeats(connection).flatMap((entry) => (entry.message.usage === undefined ? [] : [entry.message.usage]));
  }

  /** Sends `usage-ack` on every open connection (or one); returns how many got it. */
  sendUsageAck(boot: string, seq: number, connection?: FleetConnection): number {
    let sent = 0;
    for (const c of connection === undefined ? this.connections : [connection]) {
      if (c.closed !== undefined || c.ws.readyState !== c.ws.OPEN) continue;
      c.ws.send(JSON.stringify({ type: "usage-ack", boot, seq } satisfies UsageAckMessage));
      sent++;
    }
    return sent;
  }

  /** Every parse failure, over every connection: a correct relay sends none. */
  badMessages(): string[] {
    return this.connections.flatMap((connection) => connection.bad);
  }
}

/**
 * The real relay process (`relay/main.ts`) on 127.0.0.1, loopback peers allowed, with the test TURN
 * secret, joined to the fleet at `fleetUrl` with `env`'s fleet key (RELAY_FLEET_KEY).
 */
export function startFleetRelay(listeningPort: number, relayPorts: [number, number], fleetUrl: string, env: Record<string, string>, extra: string[] = []): RelayProcess {
  return spawnTestRelay({ listeningPort, relayPorts, args: [`--fleet-url=${fleetUrl}`, ...extra], env });
}
