/**
 * A signaling peer over a real TCP WebSocket (the `ws` package), for tests against `npm start`.
 */
import WebSocket from "ws";
import type { ServerFrame, WelcomeFrame } from "../../shared/signaling/protocol.js";

const WAIT_MS = 5_000;

export class WsPeer {
  readonly frames: ServerFrame[] = [];
  welcome!: WelcomeFrame;

  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => this.frames.push(JSON.parse(String(data)) as ServerFrame));
  }

  static async join(baseUrl: string, room: string, query: Record<string, string> = {}): Promise<WsPeer> {
    const search = new URLSearchParams(query).toString();
    const ws = new WebSocket(`${baseUrl}/v1/rooms/${room}${search ? `?${search}` : ""}`);
    const peer = new WsPeer(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection to ${baseUrl} within ${WAIT_MS} ms`)), WAIT_MS);
      ws.once("open", () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    await peer.waitFor(() => peer.frames.some((f) => f.type === "welcome"), "a welcome");
    peer.welcome = peer.frames.find((f): f is WelcomeFrame => f.type === "welcome")!;
    return peer;
  }

  send(frame: unknown): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Polls `condition` until it holds, at most `timeoutMs`. */
  async waitFor(condition: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; frames: ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The `data` of every signal received from `from`, in arrival order. */
  signalsFrom(from: string): unknown[] {
    return this.frames.flatMap((f) => (f.type === "signal" && f.from === from ? [f.data] : []));
  }

  async close(code = 1000): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => this.ws.once("close", resolve));
    this.ws.close(code);
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, WAIT_MS))]);
  }
}
