/**
 * The demo pages, built from web/ into dist/web/ (wrangler.toml `[assets]`): `/` (the lobby),
 * `/ice-test`, `/fleet` (the fleet's operator view, which asks for an API key), and room pages, which run the Worker first so the room name is checked before the
 * page loads:
 *
 * - `/r/:room` with a valid name: the room app's HTML (the same file as `/`; it reads the room from
 *   the URL).
 * - `/r/:room` with an invalid name (or more path segments): **400**, an HTML page that says what a
 *   room name may be and links to the lobby. A page, not JSON, because a person typed or followed
 *   that link; the API's own 400 for the same name stays JSON (`/v1/rooms/:room`).
 * - `/r` and `/r/`: a redirect to the lobby.
 *
 * `/`, `/ice-test` and `/fleet` run the Worker first too (wrangler.toml `run_worker_first`): their routes hand
 * the request to the assets and add the pages' security headers (./page-headers.ts), as for every
 * page here. `/assets/*` is served by the asset router alone in production; its route here makes the
 * Worker serve the bundles whenever it is called directly (a service binding, or the workerd test
 * suites, which call the Worker without the asset router in front).
 * A path that is neither an asset nor a route gets the Worker's JSON 404 (`not_found_handling`
 * stays "none").
 */
import { Hono, type Context } from "hono";
import { isValidRoomName } from "../../shared/signaling/protocol.js";
import type { Env } from "../env.js";
import { httpError } from "../http-error.js";
import { pageSecurityHeaders } from "./page-headers.js";

export const pages = new Hono<{ Bindings: Env }>();

// Every page gets its security headers (./page-headers.ts), from the assets or from the Worker.
for (const path of ["/", "/ice-test", "/fleet", "/r", "/r/*"]) pages.use(path, pageSecurityHeaders);

/** Where the room app's HTML lives among the assets (dist/web/index.html is served at `/`). */
const ROOM_APP_ASSET = "/";

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** A path as the person wrote it, or as sent when it is not valid percent-encoding. */
function decodeOrRaw(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function badRoomPage(c: Context<{ Bindings: Env }>, name: string): Response {
  const shown = name.length > 80 ? `${name.slice(0, 80)}…` : name;
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not a room name · relaykit</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/style.css">
</head>
<body>
<main class="page narrow">
<h1>“${escapeHtml(shown)}” is not a room name</h1>
<p>Room names are 1 to 64 characters of letters, digits, <code>_</code>, <code>.</code> and <code>-</code> (no spaces or slashes), like <code>/r/team-standup</code>.</p>
<p><a href="/">Create a new room</a> or fix the link.</p>
</main>
</body>
</html>
`;
  return c.html(html, 400);
}

const fromAssets = (c: Context<{ Bindings: Env }>) => c.env.ASSETS.fetch(c.req.raw);
pages.get("/", fromAssets);
pages.get("/ice-test", fromAssets);
pages.get("/fleet", fromAssets);
pages.get("/assets/*", fromAssets);

pages.get("/r", (c) => c.redirect("/", 302));
pages.get("/r/", (c) => c.redirect("/", 302));

pages.get("/r/:room", async (c) => {
  const room = c.req.param("room");
  if (!isValidRoomName(room)) return badRoomPage(c, room);
  // Forward the browser's request (method, conditional headers) so caching works as for any asset.
  const page = await c.env.ASSETS.fetch(new Request(new URL(ROOM_APP_ASSET, c.req.url), c.req.raw));
  if (page.status >= 400) {
    return httpError(c, 500, "pages-missing", `the room page is not among the static assets (${page.status}); build it with \`node scripts/build-web.mjs\` (wrangler dev and deploy run it through [build] in wrangler.toml)`);
  }
  return page;
});

// Anything deeper under /r/ is a name with a slash in it.
pages.get("/r/*", (c) => badRoomPage(c, decodeOrRaw(new URL(c.req.url).pathname.slice("/r/".length))));
