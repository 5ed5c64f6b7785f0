/**
 * @relaykit/client: join a relaykit room from a browser or Node, keep its ICE servers fresh, and run
 * a mesh of peer connections with perfect negotiation. The public surface of shared/client/ plus the
 * signaling protocol's types, re-exported from where they live (no second copy): docs/api.md lists
 * every export, and test/packages/api-docs.test.ts keeps that list in step with this file.
 */
export * from "../../../shared/client/index.js";
export type { BackoffOptions } from "../../../shared/client/backoff.js";
export { CLOSE_CODES, ERROR_CODES, SIGNALING_SUBPROTOCOL, isValidRoomName } from "../../../shared/signaling/protocol.js";
export type {
  BroadcastFrame,
  BroadcastRequest,
  ClientFrame,
  ErrorCode,
  ErrorFrame,
  HttpErrorBody,
  IceServersFrame,
  IceServersReason,
  IceServersWithheld,
  IceServersWithheldCode,
  LeaveRequest,
  MetaRequest,
  PeerJoinedFrame,
  PeerLeftFrame,
  PeerUpdatedFrame,
  PingRequest,
  PongFrame,
  ServerFrame,
  SignalFrame,
  SignalRequest,
} from "../../../shared/signaling/protocol.js";
