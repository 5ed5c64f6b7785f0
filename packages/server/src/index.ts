/**
 * @relaykit/server: what an app backend needs beside a relaykit Worker, on Node, Workers, Deno and
 * Bun alike (Web Crypto only, no Node built-ins): mint join tokens, mint TURN credentials and ICE
 * servers for API-key style use, verify webhook signatures, and the types of the protocol, the admin
 * API and the credentials. Re-exported from shared/ (no second copy): docs/api.md lists every export,
 * and test/packages/api-docs.test.ts keeps that list in step with this file.
 */

// Join tokens
export { mintJoinToken, verifyJoinToken } from "../../../shared/signaling/join-token.js";
export type { JoinTokenCheck, JoinTokenClaims, MintJoinTokenOptions } from "../../../shared/signaling/join-token.js";

// TURN credentials and ICE servers
export { mintIceServers } from "../../../shared/turn/mint-ice-servers.js";
export type { MintIceServersOptions } from "../../../shared/turn/mint-ice-servers.js";
export {
  DEFAULT_CLOCK_SKEW_SECONDS,
  DEFAULT_TURN_TTL_SECONDS,
  MAX_CREDENTIAL_TTL_SECONDS,
  TurnCredentialError,
  TurnKeyring,
  checkTurnUsername,
} from "../../../shared/turn/credentials.js";
export type { ExpiryPolicy, TurnCredential, UsernameCheck } from "../../../shared/turn/credentials.js";
export { iceServersForRelays, iceServersResponse, stunUrlsFromTurnUrls, turnRestResponse } from "../../../shared/turn/ice-servers.js";
export type { IceServer, IceServersResponse, TurnRestResponse } from "../../../shared/turn/ice-servers.js";
export { parseTurnUser, roomMemberUser } from "../../../shared/turn/turn-user.js";
export type { TurnUser } from "../../../shared/turn/turn-user.js";

// Webhooks
export {
  DEFAULT_TOLERANCE_SECONDS,
  EVENT_ID_HEADER,
  EVENT_TYPE_HEADER,
  SIGNATURE_HEADER,
  signWebhook,
  verifyWebhook,
} from "../../../shared/webhooks/signature.js";
export type { VerifyWebhookOptions, WebhookFailure, WebhookVerification } from "../../../shared/webhooks/signature.js";
export { PEER_LEFT_REASONS, RELAY_LOST_REASONS, WEBHOOK_EVENT_TYPES } from "../../../shared/webhooks/events.js";
export type { PeerLeftReason, RelayLostReason, WebhookEvent, WebhookEventData, WebhookEventOf, WebhookEventType } from "../../../shared/webhooks/events.js";

// Ids, the protocol's shared types, and the admin API's answers
export { ROOM_NAME_PATTERN, USER_ID_PATTERN, isValidRoomName, isValidUserId } from "../../../shared/ids.js";
export type {
  ErrorCode,
  HttpErrorBody,
  JsonValue,
  KickResult,
  PeerInfo,
  PeerMeta,
  PeerUsage,
  RoomClosedResult,
  RoomUsage,
  RoomView,
  RoomViewPeer,
  UsageFigures,
} from "../../../shared/signaling/protocol.js";
