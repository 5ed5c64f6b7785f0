/**
 * An app backend for a Worker that requires join tokens (JOIN_SECRET set): it serves the page and,
 * at `GET /token?room=<room>&name=<name>`, mints a short-lived join token for that room with the
 * secret it shares with the Worker. The page then joins with it; the Worker checks the signature,
 * the room and the expiry before it accepts the socket.
 *
 * Anyone may have a token here. In your app, check who is asking first (your session cookie or login)
 * and take the peer id from your user record, never from the request.
 *
 *   JOIN_SECRET=<the Worker's> PORT=8792 WORKER_URL=http://127.0.0.1:8787 STATIC_DIR=<page files>
 */
import { readFile } from "node:fs/promises";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { isValidRoomName, isValidUserId, mintJoinToken } from "@relaykit/server";

/** A token only has to be valid when joining: a joined peer stays in the room past its expiry. */
const TOKEN_TTL_SECONDS = 60;
const PAGES: Record<string, [file: string, type: string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/page.js": ["page.js", "text/javascript"],
};

const secret = process.env["JOIN_SECRET"] ?? "";
if (secret === "") {
  console.error("token-backend: set JOIN_SECRET to the Worker's own (start the Worker with JOIN_SECRET=<the same> npm start)");
  process.exit(2);
}
const workerUrl = process.env["WORKER_URL"] ?? "http://127.0.0.1:8787";
const staticDir = process.env["STATIC_DIR"] ?? import.meta.dirname;

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname === "/token") {
    const room = url.searchParams.get("room") ?? "";
    const name = url.searchParams.get("name") ?? "";
    if (!isValidRoomName(room)) return json(res, 400, { error: "room: 1 to 64 letters, digits, _, . or -" });
    if (!isValidUserId(name)) return json(res, 400, { error: "name: 1 to 128 letters, digits or _ . @ + = -" });
    const token = await mintJoinToken(secret, { room, sub: name, ttlSeconds: TOKEN_TTL_SECONDS, meta: { name } });
    return json(res, 200, { token, server: workerUrl });
  }
  const page = PAGES[url.pathname];
  if (page === undefined) return json(res, 404, { error: "not found" });
  res.writeHead(200, { "content-type": page[1] }).end(await readFile(join(staticDir, page[0])));
});
server.listen(Number(process.env["PORT"] ?? 8792), "127.0.0.1", () => {
  console.log(`token-backend: http://127.0.0.1:${(server.address() as AddressInfo).port}/  (tokens for the Worker at ${workerUrl})`);
});
