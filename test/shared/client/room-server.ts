/**
 * A stand-in for the Worker's two client-facing endpoints, on loopback, for the client library's
 * tests of what the real Worker cannot yet be made to do on cue (push an `ice-servers` frame, fail
 * or stall /v1/ice-servers): a real HTTP server and a real WebSocket server (`ws`), speaking the
 * signaling protocol's frames as shared/signaling/protocol.ts defines them.
 *
 * - `/v1/rooms/:room` upgrades (subprotocol relaykit.v1), sends the welcome `welcome()` makes,
 *   answers pings, and records what each client sends.
 * - `/v1/ice-servers` records each request (query and Authorization) and answers what `answer`
 *   says: fresh servers, an error status, or nothing at all (a Worker that hangs).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { afterEach, beforeEach } from "vitest";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { PING_FRAME, SIGNALING_SUBPROTOCOL, type IceServersFrame, type PeerInfo, type WelcomeFrame } from "../../../shared/signaling/protocol.js";
import type { IceServer } from "../../../shared/turn/ice-servers.js";

export interface IceServersRequest {
  query: URLSearchParams;
  authorization: string | undefined;
  at: number;
}

/** What /v1/ice-servers does with the next request. */
export type IceServersAnswer =
  | { kind: "servers"; iceServers: IceServer[]; ttlSeconds: number; delayMs?: number }
  | { kind: "error"; status: number; code: string; message: string; delayMs?: number }
  | { kind: "hang" };

export const turnServer = (username: string): IceServer => ({ urls: ["turn:127.0.0.1:3478?transport=udp"], username, credential: `credential-of-${username}` });

export function welcomeFrame(peerId: string, peers: string[], iceServers: IceServer[] | undefined, expiresInMs = 3_600_000): WelcomeFrame {
  const roster: PeerInfo[] = peers.map((id) => ({ id, meta: {} }));
  return {
    type: "welcome",
    peerId,
    peers: roster,
    resumeToken: "AAAAAAAAAAAAAAAAAAAAAA",
    resumed: false,
    idleTimeoutMs: 60_000,
    resumeGraceMs: 30_000,
    ...(iceServers === undefined ? {} : { iceServers, expiresAt: new Date(Date.now() + expiresInMs).toISOString() }),
  };
}

export function iceServersFrame(iceServers: IceServer[], expiresInMs: number, reason = "relay-draining"): IceServersFrame {
  return { type: "ice-servers", iceServers, expiresAt: new Date(Date.now() + expiresInMs).toISOString(), reason: reason as IceServersFrame["reason"] };
}

const WAIT_MS = 10_000;

export class RoomServer {
  readonly iceServersRequests: IceServersRequest[] = [];
  /** Text frames clients sent, oldest first (pings left out). */
  readonly received: string[] = [];
  answer: IceServersAnswer = { kind: "servers", iceServers: [turnServer("fetched")], ttlSeconds: 3600 };
  /** The welcome for the next client that connects. */
  welcome: () => WelcomeFrame = () => welcomeFrame("me", [], undefined);
  url = "";

  private readonly http: Server;
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has(SIGNALING_SUBPROTOCOL) ? SIGNALING_SUBPROTOCOL : false) });
  private readonly sockets = new Set<WebSocket>();
  private readonly hanging = new Set<ServerResponse>();

  constructor() {
    this.http = createServer((request, response) => this.onRequest(request, response));
    this.http.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!/^\/v1\/rooms\/[^/?]+/.test(request.url ?? "")) {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.onSocket(ws));
    });
  }

  async start(): Promise<void> {
    // Port 0: the kernel picks a free loopback port, so parallel test files never collide.
    await new Promise<void>((resolve) => this.http.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.http.address() as { port: number }).port}`;
  }

  /** Sends a frame to every connected client. */
  push(frame: object): void {
    const text = JSON.stringify(frame);
    for (const socket of this.sockets) socket.send(text);
  }

  async stop(): Promise<void> {
    for (const response of this.hanging) response.destroy();
    for (const socket of this.sockets) socket.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private onSocket(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on("close", () => this.sockets.delete(ws));
    ws.on("message", (data, isBinary) => {
      if (isBinary) return;
      const text = data.toString();
      if (text === PING_FRAME) ws.send(JSON.stringify({ type: "pong" }));
      else this.received.push(text);
    });
    ws.send(JSON.stringify(this.welcome()));
  }

  private onRequest(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (request.method !== "GET" || url.pathname !== "/v1/ice-servers") {
      response.writeHead(404).end();
      return;
    }
    this.iceServersRequests.push({ query: url.searchParams, authorization: request.headers.authorization, at: Date.now() });
    const answer = this.answer;
    switch (answer.kind) {
      case "hang":
        this.hanging.add(response);
        response.on("close", () => this.hanging.delete(response));
        return;
      case "error": {
        const body = JSON.stringify({ error: { code: answer.code, message: answer.message } });
        return this.later(answer.delayMs, () => response.writeHead(answer.status, { "Content-Type": "application/json" }).end(body));
      }
      case "servers": {
        const body = JSON.stringify({ iceServers: answer.iceServers, ttl: answer.ttlSeconds, expiresAt: new Date(Date.now() + answer.ttlSeconds * 1000).toISOString() });
        return this.later(answer.delayMs, () => response.writeHead(200, { "Content-Type": "application/json" }).end(body));
      }
    }
  }

  private later(delayMs: number | undefined, send: () => void): void {
    if (delayMs === undefined) send();
    else setTimeout(send, delayMs);
  }
}

/** Waits until `condition()` holds, checking every 20 ms; fails after `ms` with `what`. */
export async function until(condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A fresh RoomServer for each test of the calling file, handed to `started`; after each test, what
 * the test pushed onto the returned list is closed (room clients, meshes), then the server stops.
 */
export function roomServerForEachTest(started: (server: RoomServer) => void): (() => void)[] {
  const closers: (() => void)[] = [];
  let current: RoomServer | undefined;
  beforeEach(async () => {
    current = new RoomServer();
    await current.start();
    started(current);
  });
  afterEach(async () => {
    for (const close of closers.splice(0)) close();
    await current?.stop();
  });
  return closers;
}
