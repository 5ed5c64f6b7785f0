/**
 * The room client after moderation: a connection closed with 4004 (kicked or banned) or 4005 (room
 * closed) stays closed, where an ordinary drop reconnects. Against a real WebSocket server (`ws`) on
 * loopback that speaks the room's frames and closes on cue, and counts every connection it gets.
 */
import { createServer, type Server } from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer, type WebSocket as ServerSocket } from "ws";
import { RoomClient } from "../../../shared/client/index.js";
import { CLOSE_CODES, SIGNALING_SUBPROTOCOL, type ErrorCode } from "../../../shared/signaling/protocol.js";
import { sleep, until, welcomeFrame } from "./room-server.js";

/** Longer than several reconnect delays of the client below (50-200 ms): a reconnect would show. */
const WATCH_MS = 800;

let http: Server;
let wss: WebSocketServer;
let url: string;
let connections: ServerSocket[];
const clients: RoomClient[] = [];

beforeEach(async () => {
  connections = [];
  http = createServer();
  wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (offered.has(SIGNALING_SUBPROTOCOL) ? SIGNALING_SUBPROTOCOL : false) });
  http.on("upgrade", (request, socket, head) => {
    wss.handleUpgrade(request, socket, head, (ws) => {
      connections.push(ws);
      ws.send(JSON.stringify(welcomeFrame(`peer-${connections.length}`, [], undefined)));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  http.closeAllConnections();
  await new Promise<void>((resolve) => http.close(() => resolve()));
});

async function joined(): Promise<{ client: RoomClient; errors: string[] }> {
  const client = new RoomClient({ server: url, room: "moderated", WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
  clients.push(client);
  const errors: string[] = [];
  client.on("error", (error) => errors.push(`${error.code}: ${error.message}`));
  await client.connect();
  return { client, errors };
}

/** The server does what the room does: an error frame, then the close. */
function closeFromServer(code: number, errorCode: ErrorCode | null, reason: string): void {
  const ws = connections.at(-1)!;
  if (errorCode !== null) ws.send(JSON.stringify({ type: "error", code: errorCode, message: `test: ${reason}` }));
  ws.close(code, reason);
}

describe("RoomClient after a moderation close", () => {
  it.each([
    ["kicked (4004)", CLOSE_CODES.kicked, "kicked" as const, /removed this peer/],
    ["banned (4004)", CLOSE_CODES.kicked, "banned" as const, /removed this peer/],
    ["room closed (4005)", CLOSE_CODES.roomClosed, "room-closed" as const, /closed the room/],
  ])("does not reconnect when %s", async (_what, code, errorCode, final) => {
    const { client, errors } = await joined();
    closeFromServer(code, errorCode, errorCode);
    await until(() => client.state === "closed", "the client to close");
    await sleep(WATCH_MS);
    expect(connections).toHaveLength(1);
    expect(client.state).toBe("closed");
    expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${errorCode}: test: `)), expect.stringMatching(final)]));
  });

  it("does reconnect after an ordinary drop (the control: the server above would see it)", async () => {
    const { client } = await joined();
    closeFromServer(CLOSE_CODES.stale, null, "idle");
    await until(() => connections.length === 2, "a reconnect");
    await until(() => client.state === "open", "the client to be open again");
  });
});
