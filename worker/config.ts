/**
 * Worker settings: read from the environment (wrangler.toml `[vars]`, `.dev.vars`, `wrangler secret put`),
 * checked once, with every default named here. A bad value fails the request with a message that
 * names the variable, rather than running with a limit nobody chose.
 */
import type { Env } from "./env.js";

export interface RoomConfig {
  /** ROOM_CAPACITY: peers per room, including dropped peers still inside their resume grace period. */
  capacity: number;
  /** MAX_FRAME_BYTES: a larger frame closes the connection with 1009. */
  maxFrameBytes: number;
  /** MAX_META_BYTES: the largest `meta` object, as JSON text. */
  maxMetaBytes: number;
  /** PEER_IDLE_TIMEOUT_SECONDS: a connection with no frame and no ping for this long is closed as stale. */
  idleTimeoutMs: number;
  /** RESUME_GRACE_SECONDS: how long a dropped peer keeps its id and queue before the others see it leave. */
  resumeGraceMs: number;
  /** RESUME_QUEUE_LIMIT: signals kept for a dropped peer; more are refused with queue-full. */
  resumeQueueLimit: number;
  /** RATE_LIMIT_BURST: frames a connection may send at once (ICE candidates come in bursts). */
  rateBurst: number;
  /** RATE_LIMIT_PER_SECOND: frames per second a connection may sustain. */
  ratePerSecond: number;
  /** ABUSE_STRIKE_LIMIT: bad or rate-limited frames tolerated (one forgiven per second) before closing with 1008. */
  strikeLimit: number;
}

export const ROOM_DEFAULTS: RoomConfig = {
  capacity: 16,
  maxFrameBytes: 64 * 1024,
  maxMetaBytes: 2 * 1024,
  idleTimeoutMs: 60_000,
  resumeGraceMs: 30_000,
  resumeQueueLimit: 64,
  rateBurst: 100,
  ratePerSecond: 25,
  strikeLimit: 20,
};

/** Strikes forgiven per second: a client that errs now and then is never closed. */
export const STRIKES_FORGIVEN_PER_SECOND = 1;

export class ConfigError extends Error {
  override name = "ConfigError";
}

interface NumberRule {
  variable: keyof Env;
  min: number;
  max: number;
  integer: boolean;
}

function readNumber(env: Env, rule: NumberRule, fallback: number): number {
  const raw = env[rule.variable];
  if (raw === undefined || raw === "") return fallback;
  const value = typeof raw === "number" ? raw : Number(String(raw).trim());
  const kind = rule.integer ? "a whole number" : "a number";
  if (!Number.isFinite(value) || (rule.integer && !Number.isInteger(value)) || value < rule.min || value > rule.max) {
    throw new ConfigError(
      `${rule.variable} is ${JSON.stringify(raw)}; it must be ${kind} from ${rule.min} to ${rule.max}. Fix it in wrangler.toml [vars] or .dev.vars.`,
    );
  }
  return value;
}

export function readRoomConfig(env: Env): RoomConfig {
  const d = ROOM_DEFAULTS;
  return {
    capacity: readNumber(env, { variable: "ROOM_CAPACITY", min: 1, max: 256, integer: true }, d.capacity),
    maxFrameBytes: readNumber(env, { variable: "MAX_FRAME_BYTES", min: 1024, max: 1024 * 1024, integer: true }, d.maxFrameBytes),
    maxMetaBytes: readNumber(env, { variable: "MAX_META_BYTES", min: 2, max: 8 * 1024, integer: true }, d.maxMetaBytes),
    idleTimeoutMs:
      1000 * readNumber(env, { variable: "PEER_IDLE_TIMEOUT_SECONDS", min: 1, max: 3600, integer: false }, d.idleTimeoutMs / 1000),
    resumeGraceMs:
      1000 * readNumber(env, { variable: "RESUME_GRACE_SECONDS", min: 0, max: 3600, integer: false }, d.resumeGraceMs / 1000),
    resumeQueueLimit: readNumber(env, { variable: "RESUME_QUEUE_LIMIT", min: 0, max: 1000, integer: true }, d.resumeQueueLimit),
    rateBurst: readNumber(env, { variable: "RATE_LIMIT_BURST", min: 1, max: 10_000, integer: true }, d.rateBurst),
    ratePerSecond: readNumber(env, { variable: "RATE_LIMIT_PER_SECOND", min: 0.1, max: 10_000, integer: false }, d.ratePerSecond),
    strikeLimit: readNumber(env, { variable: "ABUSE_STRIKE_LIMIT", min: 1, max: 10_000, integer: true }, d.strikeLimit),
  };
}
