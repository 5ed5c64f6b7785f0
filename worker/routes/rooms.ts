/**
 * `GET /v1/rooms/:room` with `Upgrade: websocket`: checks the room name, the upgrade and the join
 * token here at the edge, then hands the upgrade to the room's Durable Object. Nothing reaches a
 * room that the Worker has not vetted: refusals happen before any socket is accepted.
 */
import { Hono } from "hono";
import { verifyJoinToken } from "../../shared/signaling/join-token.js";
import {
  CLOSE_CODES,
  RESUME_SUBPROTOCOL_PREFIX,
  RESUME_TOKEN_PATTERN,
  SIGNALING_SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  isValidRoomName,
  type ErrorCode,
  type ErrorFrame,
} from "../../shared/signaling/protocol.js";
import { roomMemberUser } from "../../shared/turn/turn-user.js";
import { clientAddressRateKey, joinTokenRateKey } from "../auth/caller.js";
import { ISSUE_RATE_LIMIT_PERIOD_SECONDS, allowIssuance } from "../auth/issuance-limit.js";
import { openRoomsRefusal, readAccessConfig, readFleetConfig, readRoomConfig, readTurnConfig } from "../config.js";
import { NO_RELAY_RETRY_AFTER_SECONDS, callerLocation, chooseRelays, iceServersFor } from "../fleet/relay-choice.js";
import type { Env } from "../env.js";
import { httpError } from "../http-error.js";
import { joinRequest, type JoinIntent } from "../room/join-intent.js";

export const rooms = new Hono<{ Bindings: Env }>();

/**
 * Splits `Sec-WebSocket-Protocol` into the subprotocols offered and the credentials riding in it: the
 * join token (`token.<jwt>`) and every resume token offered (`resume.<token>`).
 */
function readSubprotocols(header: string | undefined): { offered: string[]; token?: string; resumeTokens: string[] } {
  const offered = (header ?? "").split(",").map((p) => p.trim()).filter((p) => p.length > 0);
  const carrier = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
  const resumeTokens = offered.filter((p) => p.startsWith(RESUME_SUBPROTOCOL_PREFIX)).map((p) => p.slice(RESUME_SUBPROTOCOL_PREFIX.length));
  return carrier === undefined ? { offered, resumeTokens } : { offered, token: carrier.slice(TOKEN_SUBPROTOCOL_PREFIX.length), resumeTokens };
}

/**
 * Refuses a join the way the room refuses one when full: accept the socket only to send an error
 * frame and close it with a code of its own. A browser cannot read the HTTP status of a refused
 * upgrade (it sees 1006 and nothing else), so the reason must travel inside the WebSocket. Nothing
 * reaches a room.
 */
function refuseJoin(subprotocol: string | undefined, code: ErrorCode, message: string, closeCode: number, reason: string): Response {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  server.send(JSON.stringify({ type: "error", code, message } satisfies ErrorFrame));
  server.close(closeCode, reason);
  return new Response(null, { status: 101, webSocket: client, headers: subprotocol ? { "Sec-WebSocket-Protocol": subprotocol } : undefined });
}

rooms.get("/v1/rooms/:room", async (c) => {
  const room = c.req.param("room");
  if (!isValidRoomName(room)) {
    return httpError(c, 400, "bad-room", "room names are 1-64 characters of A-Z a-z 0-9 _ . -");
  }
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    return httpError(c, 426, "upgrade-required", "this endpoint is a WebSocket: connect with Upgrade: websocket (an app backend reads the room with Authorization: Bearer <API key>)");
  }
  const config = readRoomConfig(c.env);

  const protocols = readSubprotocols(c.req.header("Sec-WebSocket-Protocol"));
  const intent: JoinIntent = {};
  if (protocols.offered.length > 0) {
    // A browser fails the connection unless the server picks one of the subprotocols it offered.
    if (!protocols.offered.includes(SIGNALING_SUBPROTOCOL)) {
      return httpError(c, 400, "bad-subprotocol", `offer the subprotocol ${SIGNALING_SUBPROTOCOL} (with the token, if any, as ${TOKEN_SUBPROTOCOL_PREFIX}<jwt>)`);
    }
    intent.subprotocol = SIGNALING_SUBPROTOCOL;
  }

  const openRefusal = openRoomsRefusal(c.env);
  if (openRefusal !== null) {
    return refuseJoin(intent.subprotocol, "auth-not-configured", openRefusal, CLOSE_CODES.authNotConfigured, "open rooms refused: set JOIN_SECRET, or AUTH_MODE=open on purpose");
  }

  const secret = c.env.JOIN_SECRET;
  if (secret) {
    const token = c.req.query("token") ?? protocols.token;
    if (!token) {
      return httpError(c, 401, "unauthorized", `this room needs a join token: pass ?token=<jwt> or offer the subprotocol ${TOKEN_SUBPROTOCOL_PREFIX}<jwt>`);
    }
    const checked = await verifyJoinToken(token, secret, room, config.maxMetaBytes);
    if (!checked.ok) return httpError(c, 401, "unauthorized", checked.message);
    intent.peerId = checked.claims.sub;
    if (checked.claims.meta !== undefined) intent.meta = checked.claims.meta;
  }

  // The resume token comes as the subprotocol `resume.<token>`, out of the URL (access logs keep URLs,
  // and a live resume token takes over the peer). `?resume=` is still read, deprecated, for clients
  // written before; offering it both ways, or twice, is refused rather than guessed at.
  const queryResume = c.req.query("resume");
  const resumeTokens = queryResume ? [...protocols.resumeTokens, queryResume] : protocols.resumeTokens;
  if (resumeTokens.length > 1) {
    return httpError(c, 400, "bad-resume-token", `offer one resume token, as the subprotocol ${RESUME_SUBPROTOCOL_PREFIX}<token>: use the resumeToken of your last welcome`);
  }
  const resume = resumeTokens[0];
  if (resume !== undefined) {
    if (!RESUME_TOKEN_PATTERN.test(resume)) {
      return httpError(c, 400, "bad-resume-token", "that is not a resume token this Worker issues: use the resumeToken of your last welcome, or join without one");
    }
    intent.resumeToken = resume;
  }

  // The welcome carries TURN credentials, so a browser needs one round trip to start a call; but
  // only to whom /v1/ice-servers would give them: a token holder, or anyone under AUTH_MODE=open.
  // An open room is no back door to the relay. They live TURN_TTL, as the API gives such callers, and
  // spend the same issuance budget under the same key: a rejoin loop mints no more than the API would.
  // Over budget, or with no relay available, the join still goes ahead (signaling must not break)
  // with a welcome that says so. The credential names the room member, `<room>/<peer-id>`, so relays
  // can count allocations per room; the room re-mints it if a resuming peer keeps another id.
  const turn = readTurnConfig(c.env);
  const fleet = readFleetConfig(c.env);
  intent.room = room;
  intent.location = callerLocation(c.req.raw, fleet);
  if (intent.peerId === undefined) intent.newPeerId = crypto.randomUUID();
  if (turn !== null && (intent.peerId !== undefined || readAccessConfig(c.env).open)) {
    const choice = await chooseRelays(c.env, turn, fleet, intent.location);
    const rateKey = intent.peerId !== undefined ? joinTokenRateKey(room, intent.peerId) : clientAddressRateKey(c.req.raw);
    if (choice.kind === "none") {
      intent.iceWithheld = { code: "no-relay-available", message: `${choice.message}; fetch /v1/ice-servers then`, retryAfterMs: NO_RELAY_RETRY_AFTER_SECONDS * 1000 };
    } else if (await allowIssuance(c.env.ISSUE_RATE_LIMITER, rateKey)) {
      const credential = await turn.keyring.mint(roomMemberUser(room, intent.peerId ?? intent.newPeerId!), turn.ttlSeconds);
      intent.ice = iceServersFor(choice, credential);
    } else {
      intent.iceWithheld = {
        code: "rate-limited",
        message: `too many TURN credentials for this caller lately, so this welcome carries none; fetch /v1/ice-servers after ${ISSUE_RATE_LIMIT_PERIOD_SECONDS} s`,
        retryAfterMs: ISSUE_RATE_LIMIT_PERIOD_SECONDS * 1000,
      };
    }
  }

  const stub = c.env.ROOMS.get(c.env.ROOMS.idFromName(room));
  return stub.fetch(joinRequest(intent));
});
