/**
 * A test relay: a real control WebSocket to the Worker's /v1/fleet in workerd, presenting a fleet
 * token the way a relay does (Authorization + the fleet subprotocol), with bounded waits for messages.
 */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import {
  FLEET_PATH,
  FLEET_SUBPROTOCOL,
  type FleetMessage,
  type GeoLocation,
  type HeartbeatMessage,
  type RegisterMessage,
} from "../../shared/fleet/protocol.js";
import { mintFleetToken, type MintFleetTokenOptions } from "../../shared/fleet/token.js";
import { FLEET_OBJECT_NAME, type FleetObject } from "../../worker/fleet/fleet-object.js";
import { fleetSnapshots } from "../../worker/fleet/snapshot-cache.js";
import { WAIT_MS, type Closed } from "./peer.js";
import { Wakeup } from "../wakeup.js";

export const FLEET_URL = `http://relaykit.test${FLEET_PATH}`;

/** The fleet key the worker-fleet project runs with (vitest.config.ts). */
export function fleetKey(): string {
  return env.FLEET_KEYS!.split(",")[0]!.trim();
}

export function fleetStub(): DurableObjectStub<FleetObject> {
  return env.FLEET.get(env.FLEET.idFromName(FLEET_OBJECT_NAME));
}

/**
 * Forgets every relay, token, room and count, closes every control socket, and empties this
 * isolate's snapshot cache: each test starts with an empty fleet.
 */
export async function resetFleet(): Promise<void> {
  await runInDurableObject(fleetStub(), (instance, state) => {
    for (const ws of state.getWebSockets()) {
      try {
        ws.close(1000, "test reset");
      } catch {
        // already closed
      }
    }
    for (const table of ["relays", "relay_rooms", "used_tokens", "refusals", "revocations"]) state.storage.sql.exec(`DELETE FROM ${table}`);
    instance.snapshotCalls = 0;
  });
  fleetSnapshots.clear();
}

export interface RelayConnectOptions {
  /** The Authorization header; default: a fresh token for `relayId` under the fleet key. */
  authorization?: string | null;
  token?: MintFleetTokenOptions & { key?: string };
  protocols?: string;
}

export class TestRelay {
  readonly messages: FleetMessage[] = [];
  private cursor = 0;
  private readonly wakeup = new Wakeup();
  closedWith: Closed | null = null;

  private constructor(readonly relayId: string, readonly ws: WebSocket, readonly response: Response) {
    ws.addEventListener("message", (event) => {
      this.messages.push(JSON.parse(event.data as string) as FleetMessage);
      this.wakeup.wake();
    });
    ws.addEventListener("close", (event) => {
      this.closedWith = { code: event.code, reason: event.reason };
      this.wakeup.wake();
    });
    ws.accept();
  }

  static async connect(relayId: string, options: RelayConnectOptions = {}): Promise<TestRelay> {
    const headers: Record<string, string> = { Upgrade: "websocket", "Sec-WebSocket-Protocol": options.protocols ?? FLEET_SUBPROTOCOL };
    const authorization =
      options.authorization === undefined ? `Bearer ${await mintFleetToken(options.token?.key ?? fleetKey(), relayId, options.token)}` : options.authorization;
    if (authorization !== null) headers["Authorization"] = authorization;
    const response = await exports.default.fetch(FLEET_URL, { headers });
    if (response.status !== 101 || response.webSocket === null) throw new Error(`expected 101, got ${response.status}: ${await response.text()}`);
    return new TestRelay(relayId, response.webSocket, response);
  }

  /** Connects, registers and reads `registered`. */
  static async register(relayId: string, registration: Partial<RegisterMessage> = {}): Promise<TestRelay> {
    const relay = await TestRelay.connect(relayId);
    relay.send(registerMessage(relayId, registration));
    const answer = await relay.next();
    if (answer.type !== "registered") throw new Error(`expected registered, got ${JSON.stringify(answer)}`);
    return relay;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  heartbeat(fields: Partial<HeartbeatMessage> = {}): void {
    this.send(heartbeatMessage(fields));
  }

  async next(timeoutMs = WAIT_MS): Promise<FleetMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.messages.length) {
      if (this.closedWith !== null) throw new Error(`socket closed (${this.closedWith.code} ${this.closedWith.reason}) while waiting for a message`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${timeoutMs} ms`);
      await this.wakeup.sleep(left);
    }
    return this.messages[this.cursor++]!;
  }

  async waitClosed(timeoutMs = WAIT_MS): Promise<Closed> {
    const deadline = Date.now() + timeoutMs;
    while (this.closedWith === null) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`socket not closed within ${timeoutMs} ms`);
      await this.wakeup.sleep(Math.min(left, 50));
    }
    return this.closedWith;
  }

  close(): void {
    try {
      this.ws.close(1000, "bye");
    } catch {
      // already closed
    }
  }
}

export function registerMessage(relayId: string, fields: Partial<RegisterMessage> = {}): RegisterMessage {
  return {
    type: "register",
    relayId,
    version: "0.1.0-test",
    urls: [`turn:${relayId}.relays.test:3478?transport=udp`, `turn:${relayId}.relays.test:3478?transport=tcp`],
    region: "test",
    location: null,
    capacity: { allocations: 0, bps: 0 },
    ...fields,
  };
}

export function heartbeatMessage(fields: Partial<HeartbeatMessage> = {}): HeartbeatMessage {
  return { type: "heartbeat", state: "ready", allocations: 0, bpsIn: 0, bpsOut: 0, cpuPercent: 1, eventLoopDelayMs: 1, rooms: [], roomsOmitted: 0, ...fields };
}

export const PLACES = {
  frankfurt: { lat: 50.11, lon: 8.68 },
  wiesbaden: { lat: 50.08, lon: 8.24 },
  paris: { lat: 48.86, lon: 2.35 },
  newYork: { lat: 40.71, lon: -74.01 },
} satisfies Record<string, GeoLocation>;

/** Registers a relay and sends one heartbeat, waiting until the fleet has it. */
export async function liveRelay(relayId: string, registration: Partial<RegisterMessage> = {}, heartbeat: Partial<HeartbeatMessage> = {}): Promise<TestRelay> {
  const relay = await TestRelay.register(relayId, registration);
  relay.heartbeat(heartbeat);
  await waitFor(async () => (await fleetStub().snapshot()).relays.some((r) => r.id === relayId && r.lastHeartbeatAt !== null && r.state === (heartbeat.state ?? "ready")));
  return relay;
}

/** Polls `condition` every `intervalMs` for at most `timeoutMs`. */
export async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs = WAIT_MS, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
