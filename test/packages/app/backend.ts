/**
 * An app backend on @relaykit/server, as the fresh-app test (../packages.test.ts) type-checks it: once
 * with the browser app (DOM types) and once alone with ES2022 and no DOM, no @types/node, as a Worker,
 * Deno or Bun project might be. It uses every export of the package (the test checks that), and
 * touches no runtime global, so it compiles wherever the package's types do.
 */
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_TOLERANCE_SECONDS,
  DEFAULT_TURN_TTL_SECONDS,
  EVENT_ID_HEADER,
  EVENT_TYPE_HEADER,
  MAX_CREDENTIAL_TTL_SECONDS,
  PEER_LEFT_REASONS,
  RELAY_LOST_REASONS,
  ROOM_NAME_PATTERN,
  SIGNATURE_HEADER,
  TurnCredentialError,
  TurnKeyring,
  USER_ID_PATTERN,
  WEBHOOK_EVENT_TYPES,
  checkTurnUsername,
  iceServersForRelays,
  iceServersResponse,
  isValidRoomName,
  isValidUserId,
  mintIceServers,
  mintJoinToken,
  parseTurnUser,
  roomMemberUser,
  signWebhook,
  stunUrlsFromTurnUrls,
  turnRestResponse,
  verifyJoinToken,
  verifyWebhook,
  type ErrorCode,
  type ExpiryPolicy,
  type HttpErrorBody,
  type IceServer,
  type IceServersResponse,
  type JoinTokenCheck,
  type JoinTokenClaims,
  type JsonValue,
  type KickResult,
  type MintIceServersOptions,
  type MintJoinTokenOptions,
  type PeerInfo,
  type PeerLeftReason,
  type PeerMeta,
  type PeerUsage,
  type RelayLostReason,
  type RoomClosedResult,
  type RoomUsage,
  type RoomView,
  type RoomViewPeer,
  type TurnCredential,
  type TurnRestResponse,
  type TurnUser,
  type UsageFigures,
  type UsernameCheck,
  type VerifyWebhookOptions,
  type WebhookEvent,
  type WebhookEventData,
  type WebhookEventOf,
  type WebhookEventType,
  type WebhookFailure,
  type WebhookVerification,
} from "@relaykit/server";

export interface Settings {
  joinSecret: string;
  turnSecrets: string;
  turnUrls: string[];
  webhookSecrets: string[];
}

/** What an HTTP handler answers, in whatever server framework the app uses. */
export interface Reply {
  status: number;
  body: string;
}

// ---- Join tokens

/** The token a signed-in user's browser joins with; the user's display name rides in its meta. */
export async function issueJoinToken(settings: Settings, room: string, userId: string, name: string): Promise<Reply> {
  if (!isValidRoomName(room)) return error(400, "bad-message", `room must match ${ROOM_NAME_PATTERN.source}`);
  if (!isValidUserId(userId)) return error(400, "bad-message", `user id must match ${USER_ID_PATTERN.source}`);
  const profile: JsonValue = { name, issuedBy: "backend" };
  const meta: PeerMeta = { name, profile };
  const options: MintJoinTokenOptions = { room, sub: userId, ttlSeconds: 120, meta };
  return { status: 200, body: await mintJoinToken(settings.joinSecret, options) };
}

/** The claims of a token this backend issued, for a second service that must trust it too. */
export async function readJoinToken(settings: Settings, token: string, room: string): Promise<JoinTokenClaims | string> {
  const check: JoinTokenCheck = await verifyJoinToken(token, settings.joinSecret, room, 2048);
  return check.ok ? check.claims : check.message;
}

// ---- TURN credentials, minted here with the relays' secret (no call to the Worker)

export async function issueIceServers(settings: Settings, userId: string): Promise<Reply> {
  const options: MintIceServersOptions = { secrets: settings.turnSecrets, user: userId, turnUrls: settings.turnUrls, ttlSeconds: Math.min(3_600, DEFAULT_TURN_TTL_SECONDS) };
  try {
    const ice: IceServersResponse = await mintIceServers(options);
    const turn: IceServer[] = ice.iceServers.filter((server) => server.username !== undefined);
    return { status: 200, body: JSON.stringify({ ...ice, turnEntries: turn.length }) };
  } catch (caught) {
    if (caught instanceof TurnCredentialError) return error(400, "bad-message", caught.message);
    throw caught;
  }
}

/** The same credential math by hand: one relay per region, and the TURN REST draft's shape for coturn-style clients. */
export async function issueForRoomMember(settings: Settings, room: string, peerId: string, regions: string[][]): Promise<{ perRegion: IceServersResponse; single: IceServersResponse; rest: TurnRestResponse }> {
  const keyring = TurnKeyring.fromList(settings.turnSecrets);
  const credential: TurnCredential = await keyring.mint(roomMemberUser(room, peerId), Math.min(600, MAX_CREDENTIAL_TTL_SECONDS));
  const stun = stunUrlsFromTurnUrls(regions.flat());
  return {
    perRegion: iceServersForRelays(credential, regions, stun),
    single: iceServersResponse(credential, settings.turnUrls, stun),
    rest: turnRestResponse(credential, settings.turnUrls),
  };
}

/** What a username says without any secret: for support tools that look at a relay's logs. */
export function explainTurnUsername(username: string): string {
  const policy: ExpiryPolicy = { clockSkewSeconds: DEFAULT_CLOCK_SKEW_SECONDS, acceptExpired: true };
  const check: UsernameCheck = checkTurnUsername(username, policy);
  if (!check.ok) return `${check.reason}: ${check.message}`;
  const user: TurnUser | null = parseTurnUser(check.userId);
  if (user === null) return "unreadable user part";
  return user.kind === "room-member" ? `${user.peerId} in ${user.room}` : `user ${user.userId}`;
}

// ---- Webhooks

/** Verifies and reads one webhook request; `headers` lower-cased, as most frameworks give them. */
export async function handleWebhook(settings: Settings, rawBody: string, headers: Record<string, string | undefined>): Promise<Reply> {
  const options: VerifyWebhookOptions = {
    body: rawBody,
    signature: headers[SIGNATURE_HEADER.toLowerCase()],
    secrets: settings.webhookSecrets,
    toleranceSeconds: DEFAULT_TOLERANCE_SECONDS,
  };
  const result: WebhookVerification = await verifyWebhook(options);
  if (!result.ok) {
    const reason: WebhookFailure = result.reason;
    return { status: 400, body: `${reason}: ${result.message}` };
  }
  const event: WebhookEvent = result.event;
  const type: WebhookEventType = event.type;
  if (headers[EVENT_TYPE_HEADER.toLowerCase()] !== type || headers[EVENT_ID_HEADER.toLowerCase()] !== event.id) {
    return { status: 400, body: "the event headers disagree with the signed body" };
  }
  if (!(WEBHOOK_EVENT_TYPES as readonly string[]).includes(type)) return { status: 204, body: "" };
  return { status: 204, body: describeEvent(event) };
}

function describeEvent(event: WebhookEvent): string {
  switch (event.type) {
    case "peer-left":
      return describePeerLeft(event);
    case "room-finished":
      return describeUsage(event.data);
    case "relay-lost": {
      const reason: RelayLostReason = event.data.reason;
      return `relay ${event.data.relayId} lost (${reason}; one of ${RELAY_LOST_REASONS.join(", ")})`;
    }
    default:
      return `${event.type} at ${event.createdAt}`;
  }
}

function describePeerLeft(event: WebhookEventOf<"peer-left">): string {
  const reason: PeerLeftReason = event.data.reason;
  return `${event.data.peerId} left ${event.room ?? "?"} (${reason}, of ${PEER_LEFT_REASONS.length} reasons)`;
}

function describeUsage(data: WebhookEventData["room-finished"]): string {
  const usage: UsageFigures = data.usage;
  return `relayed ${usage.bytesToPeers + usage.bytesToClient} bytes over ${usage.allocationSeconds} allocation-seconds`;
}

/** Signs a body as the Worker does: for a test of this backend's webhook endpoint. */
export async function signedTestRequest(settings: Settings, event: WebhookEvent, now: number): Promise<{ body: string; headers: Record<string, string> }> {
  const body = JSON.stringify(event);
  const headers = { [SIGNATURE_HEADER.toLowerCase()]: await signWebhook(settings.webhookSecrets, body, now), [EVENT_ID_HEADER.toLowerCase()]: event.id, [EVENT_TYPE_HEADER.toLowerCase()]: event.type };
  return { body, headers };
}

// ---- The Worker's admin API, through whatever fetch the runtime has

export type AdminFetch = (url: string, init: { method: string; headers: Record<string, string> }) => Promise<{ ok: boolean; json(): Promise<unknown> }>;

export async function moderate(fetch: AdminFetch, worker: string, apiKey: string, room: string): Promise<string[]> {
  const headers = { Authorization: `Bearer ${apiKey}` };
  const call = async <T>(method: string, path: string): Promise<T> => {
    const response = await fetch(`${worker}${path}`, { method, headers });
    if (!response.ok) {
      const failure = (await response.json()) as HttpErrorBody;
      const code = failure.error.code as ErrorCode | string;
      throw new Error(`${method} ${path}: ${code}: ${failure.error.message}`);
    }
    return (await response.json()) as T;
  };
  const view = await call<RoomView>("GET", `/v1/rooms/${room}`);
  const away: RoomViewPeer[] = view.peers.filter((peer) => !peer.connected);
  const usage = await call<RoomUsage>("GET", `/v1/rooms/${room}/usage`);
  const heaviest: PeerUsage | undefined = usage.peers[0];
  const lines = [`${view.peers.length} peers (${away.length} away), ${view.bans.length} bans, heaviest ${heaviest?.peerId ?? "none"}`];
  if (heaviest !== undefined && heaviest.bytesToPeers > 1e9) {
    const kicked = await call<KickResult>("POST", `/v1/rooms/${room}/peers/${heaviest.peerId}/kick`);
    lines.push(`kicked ${kicked.kicked} until ${kicked.bannedUntil ?? "now"}`);
  }
  if (view.peers.length === 0) {
    const closed = await call<RoomClosedResult>("DELETE", `/v1/rooms/${room}`);
    lines.push(`closed ${closed.closed} (${closed.peers} peers)`);
  }
  return lines;
}

/** The peers as the signaling protocol describes them, for an app's own roster API. */
export function roster(view: RoomView): PeerInfo[] {
  return view.peers.map((peer) => ({ id: peer.id, meta: peer.meta }));
}

function error(status: number, code: ErrorCode, message: string): Reply {
  const body: HttpErrorBody = { error: { code, message } };
  return { status, body: JSON.stringify(body) };
}
