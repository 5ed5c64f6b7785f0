/**
 * The Worker's bindings and variables. Numbers arrive as strings from secrets and `.dev.vars`, and
 * as numbers from wrangler.toml `[vars]`; worker/config.ts reads and checks them.
 */
import type { SignalingRoom } from "./room/signaling-room.js";

type Setting = string | number | undefined;

export interface Env {
  /** One Durable Object per room, addressed by `idFromName(room)`. */
  ROOMS: DurableObjectNamespace<SignalingRoom>;
  /** HS256 secret for join tokens. Unset: rooms are open and peer ids random (development only). */
  JOIN_SECRET?: string;
  ROOM_CAPACITY?: Setting;
  MAX_FRAME_BYTES?: Setting;
  MAX_META_BYTES?: Setting;
  PEER_IDLE_TIMEOUT_SECONDS?: Setting;
  RESUME_GRACE_SECONDS?: Setting;
  RESUME_QUEUE_LIMIT?: Setting;
  RATE_LIMIT_BURST?: Setting;
  RATE_LIMIT_PER_SECOND?: Setting;
  ABUSE_STRIKE_LIMIT?: Setting;
}
