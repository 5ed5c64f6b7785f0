/**
 * `GET /v1/fleet`: with `Upgrade: websocket`, a relay's control channel (vetted by the fleet object,
 * which holds the socket); without, the operator view (API key only).
 */
import { Hono } from "hono";
import { FLEET_CLOSE_CODES, FLEET_PATH, FLEET_SUBPROTOCOL } from "../../shared/fleet/protocol.js";
import { identifyCaller } from "../auth/caller.js";
import { readAccessConfig, readFleetConfig, readRoomConfig } from "../config.js";
import type { Env } from "../env.js";
import { FLEET_OBJECT_NAME } from "../fleet/fleet-object.js";
import { httpError } from "../http-error.js";

export const fleet = new Hono<{ Bindings: Env }>();

fleet.get(FLEET_PATH, async (c) => {
  if (c.req.header("Upgrade")?.toLowerCase() === "websocket") {
    const offered = (c.req.header("Sec-WebSocket-Protocol") ?? "").split(",").map((p) => p.trim());
    if (!offered.includes(FLEET_SUBPROTOCOL)) {
      return httpError(c, 400, "bad-subprotocol", `relays offer the subprotocol ${FLEET_SUBPROTOCOL}`);
    }
    if (readFleetConfig(c.env) === null) {
      // Accepted only to say why: only the operator can fix this, and the relay retries slowly.
      const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
      server.accept();
      server.close(FLEET_CLOSE_CODES.notConfigured, "this Worker has no FLEET_KEYS: run `wrangler secret put FLEET_KEYS`");
      return new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": FLEET_SUBPROTOCOL } });
    }
    return c.env.FLEET.get(c.env.FLEET.idFromName(FLEET_OBJECT_NAME)).fetch(c.req.raw);
  }

  // The operator view: API keys only. A join token is a room member's, and open mode is anyone's.
  const identified = await identifyCaller(c.req.raw, { ...readAccessConfig(c.env), open: false }, readRoomConfig(c.env).maxMetaBytes);
  if (!identified.ok) return httpError(c, identified.status, identified.code, identified.message);
  if (identified.caller.kind !== "api-key") return httpError(c, 403, "forbidden", "the fleet view needs an API key (Authorization: Bearer <API key>), not a join token");
  if (readFleetConfig(c.env) === null) {
    return httpError(c, 503, "fleet-not-configured", "this Worker has no FLEET_KEYS, so no relay can register: run `wrangler secret put FLEET_KEYS`");
  }
  c.header("Cache-Control", "no-store");
  return c.json(await c.env.FLEET.get(c.env.FLEET.idFromName(FLEET_OBJECT_NAME)).operatorView());
});
