/**
 * The Worker: a Hono app for the HTTP edge, and the Durable Object class that runs each room.
 */
import { Hono } from "hono";
import { ConfigError } from "./config.js";
import type { Env } from "./env.js";
import { httpError } from "./http-error.js";
import { admin } from "./routes/admin.js";
import { credentials } from "./routes/credentials.js";
import { fleet } from "./routes/fleet.js";
import { pages } from "./routes/pages.js";
import { rooms } from "./routes/rooms.js";

export { SignalingRoom } from "./room/signaling-room.js";
export { FleetObject } from "./fleet/fleet-object.js";

const app = new Hono<{ Bindings: Env }>();

// Before rooms: a GET on /v1/rooms/:room with an API key and no Upgrade is the admin view.
app.route("/", admin);
app.route("/", rooms);
app.route("/", credentials);
app.route("/", fleet);
app.route("/", pages);

app.notFound((c) => httpError(c, 404, "not-found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}; the API is /v1/rooms/:room (join; with an API key also GET, GET …/usage, DELETE and POST …/peers/:peer/kick), /v1/ice-servers, /v1/turn-credentials and /v1/fleet; the pages are /, /r/:room and /ice-test`));

app.onError((error, c) => {
  if (error instanceof ConfigError) return httpError(c, 500, "bad-config", error.message);
  console.error(error);
  return httpError(c, 500, "internal", "the Worker failed to handle this request; see its logs");
});

export default app;
