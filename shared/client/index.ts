/**
 * relaykit's client library, for browsers and Node: join a room, keep ICE servers fresh, and run a
 * mesh of peer connections with perfect negotiation. See README.md ("The client library").
 */
export { FRESH_ICE_SERVERS_MS, RECOVERY_FETCH_TIMEOUT_MS, RoomClient, roomSocketUrl, roomSubprotocols } from "./room-client.js";
export type { IceServersUpdate, IceServersUpdateReason, RoomClientEvents, RoomClientOptions, RoomError, RoomState, WebSocketConstructor, WebSocketLike } from "./room-client.js";
export { DEFAULT_MAX_ICE_RESTARTS, DISCONNECTED_RECOVERY_MS, HELD_OFFER_SETTLE_MAX_MS, ICE_RECOVERY_BACKOFF, RECOVERY_CHECK_MS, Mesh, POLITE_RESTART_DELAY_MS, isPolite, readMeshSignal } from "./mesh.js";
export type { MeshEvents, MeshOptions, MeshSignal, PeerLink } from "./mesh.js";
export { fetchIceServers, IceServersError, parseIceServersResponse, refreshDelayMs } from "./ice-servers.js";
export type { FetchIceServersOptions, FetchLike } from "./ice-servers.js";
export type { IceTransportPolicy, PeerConnectionConfig, PeerConnectionLike } from "./webrtc.js";
export type { IceServer, IceServersResponse } from "../turn/ice-servers.js";
export type { JsonValue, PeerInfo, PeerMeta, WelcomeFrame } from "../signaling/protocol.js";
