/**
 * A test peer: a real WebSocket to the Worker running in workerd, with bounded waits for frames.
 */
import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { SIGNALING_SUBPROTOCOL, resumeSubprotocol, type ServerFrame, type WelcomeFrame } from "../../shared/signaling/protocol.js";
import worker from "../../worker/index.js";
import type { Env } from "../../worker/env.js";
import { Wakeup } from "../wakeup.js";

export const WAIT_MS = 3_000;

export interface Closed {
  code: number;
  reason: string;
}

export function roomUrl(room: string, query: Record<string, string> = {}): string {
  const search = new URLSearchParams(query).toString();
  return `http://relaykit.test/v1/rooms/${room}${search ? `?${search}` : ""}`;
}

export interface ConnectOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** Variables to set for the Worker's edge only (e.g. JOIN_SECRET); see `fetchWorker`. */
  vars?: Partial<Env>;
}

/**
 * A request to the Worker. With `vars`, it goes to the Worker's Hono app with the real bindings plus
 * these variables; the room objects and the rate limiter are the same real ones.
 */
export async function fetchWorker(url: string, init: RequestInit = {}, vars?: Partial<Env>): Promise<Response> {
  if (vars === undefined) return exports.default.fetch(url, init);
  return worker.fetch(new Request(url, init), { ...(env as Env), ...vars }, createExecutionContext());
}

/** How a client resumes: the token offered as a subprotocol next to the signaling one, out of the URL. */
export function resuming(resumeToken: string, extra: ConnectOptions = {}): ConnectOptions {
  return { ...extra, headers: { ...extra.headers, "Sec-WebSocket-Protocol": `${SIGNALING_SUBPROTOCOL}, ${resumeSubprotocol(resumeToken)}` } };
}

/** Sends the upgrade request; the caller checks the response (101, 401, 426…). */
export async function upgrade(room: string, options: ConnectOptions = {}): Promise<Response> {
  return fetchWorker(roomUrl(room, options.query), { headers: { Upgrade: "websocket", ...options.headers } }, options.vars);
}

/** A peer that has joined, with the welcome it got. */
export interface Joined {
  peer: TestPeer;
  welcome: WelcomeFrame;
}

export class TestPeer {
  /** Every frame received, in order. */
  readonly frames: ServerFrame[] = [];
  private cursor = 0;
  private readonly wakeup = new Wakeup();
  closedWith: Closed | null = null;
  readonly closed: Promise<Closed>;

  private constructor(readonly ws: WebSocket, readonly response: Response) {
    let resolveClosed!: (closed: Closed) => void;
    this.closed = new Promise((resolve) => (resolveClosed = resolve));
    ws.addEventListener("message", (event) => {
      this.frames.push(JSON.parse(event.data as string) as ServerFrame);
      this.wakeup.wake();
    });
    ws.addEventListener("close", (event) => {
      this.closedWith = { code: event.code, reason: event.reason };
      resolveClosed(this.closedWith);
      this.wakeup.wake();
    });
    ws.accept();
  }

  static async connect(room: string, options: ConnectOptions = {}): Promise<TestPeer> {
    const response = await upgrade(room, options);
    if (response.status !== 101 || response.webSocket === null) {
      throw new Error(`expected 101, got ${response.status}: ${await response.text()}`);
    }
    return new TestPeer(response.webSocket, response);
  }

  /** Connects and reads the welcome frame. */
  static async join(room: string, options: ConnectOptions = {}): Promise<Joined> {
    const peer = await TestPeer.connect(room, options);
    const welcome = await peer.next("welcome");
    return { peer, welcome };
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** The next frame not yet read, which must be of `type` if given, waiting at most `timeoutMs`. */
  async next<T extends ServerFrame["type"]>(type?: T, timeoutMs = WAIT_MS): Promise<Extract<ServerFrame, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.frames.length) {
      if (this.closedWith !== null) throw new Error(`socket closed (${this.closedWith.code} ${this.closedWith.reason}) while waiting for ${type ?? "a frame"}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${type ?? "frame"} within ${timeoutMs} ms`);
      await this.wakeup.sleep(left);
    }
    const frame = this.frames[this.cursor++]!;
    // Pongs are keep-alive noise unless a pong is what the test waits for.
    if (frame.type === "pong" && type !== "pong") return this.next(type, Math.max(1, deadline - Date.now()));
    if (type !== undefined && frame.type !== type) {
      throw new Error(`expected a ${type} frame, got ${JSON.stringify(frame)}`);
    }
    return frame as Extract<ServerFrame, { type: T }>;
  }

  /** Asserts that nothing arrives for `ms`. */
  async expectSilence(ms = 300): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    const unread = this.frames.slice(this.cursor).filter((frame) => frame.type !== "pong");
    if (unread.length > 0) {
      throw new Error(`expected no frame, got ${JSON.stringify(unread)}`);
    }
  }

  /** Waits for the server to close the socket, at most `timeoutMs`. */
  async waitClosed(timeoutMs = WAIT_MS): Promise<Closed> {
    let timer: ReturnType<typeof setTimeout> | null = null;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  close(code = 1000, reason = "bye"): void {
    try {
      this.ws.close(code, reason);
    } catch {
      // already closed
    }
  }
}

/** A fresh room name per test, so tests never share a room. */
let roomCounter = 0;
export function freshRoom(prefix = "room"): string {
  roomCounter += 1;
  return `${prefix}-${Date.now().toString(36)}-${roomCounter}`;
}

/**
 * Joins `count` peers to a fresh room and reads the peer-joined frames each one saw, so every peer
 * starts with nothing unread.
 */
export async function roomOf(count: number, prefix = "room"): Promise<{ room: string; peers: Joined[] }> {
  const room = freshRoom(prefix);
  const peers: Joined[] = [];
  for (let i = 0; i < count; i++) peers.push(await TestPeer.join(room));
  for (let i = 0; i < count; i++) {
    for (let j = i + 1; j < count; j++) await peers[i]!.peer.next("peer-joined");
  }
  return { room, peers };
}
