/**
 * The floor room (see wrangler.toml beside it): the same wire as our Worker's `/v1/rooms/:room` for the
 * frames the benchmark uses (`welcome`, `signal`, `leave`), with nothing else: no roster, no
 * attachments beyond the peer id, no validation, no limits.
 */
import { DurableObject } from "cloudflare:workers";

interface FloorEnv {
  ROOMS: DurableObjectNamespace<FloorRoom>;
}

export class FloorRoom extends DurableObject<FloorEnv> {
  override async fetch(): Promise<Response> {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const peerId = crypto.randomUUID();
    this.ctx.acceptWebSocket(server, [peerId]);
    server.serializeAttachment(peerId);
    server.send(JSON.stringify({ type: "welcome", peerId }));
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string") return;
    const frame = JSON.parse(message) as { type?: string; to?: string; data?: unknown };
    if (frame.type === "leave") return ws.close(1000, "left");
    if (frame.type !== "signal" || typeof frame.to !== "string") return;
    const from = ws.deserializeAttachment() as string;
    this.ctx.getWebSockets(frame.to)[0]?.send(JSON.stringify({ type: "signal", from, data: frame.data }));
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
  }
}

export default {
  fetch(request: Request, env: FloorEnv): Response | Promise<Response> {
    const room = /^\/v1\/rooms\/([^/]+)$/.exec(new URL(request.url).pathname)?.[1];
    if (room === undefined) return new Response("not found", { status: 404 });
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") return new Response("upgrade required", { status: 426 });
    return env.ROOMS.get(env.ROOMS.idFromName(room)).fetch(request);
  },
};
