/**
 * The relay's log: one JSON object per line on stdout (pino), `{"level":"info","time":"<ISO 8601>",
 * "event":"…", …}`. Every line has an `event`; tools and tests parse the "listening" line to learn
 * the ports. Written synchronously: a line logged right before exit is never lost, and the relay
 * logs per allocation and per signal, never per packet.
 *
 * No line carries a secret, a password or a full credential: the events are built from user ids,
 * addresses and counters, and any field named like a secret is censored all the same.
 */
import { pino, type Logger } from "pino";
import type { LogLevel } from "../config.js";

export type RelayLogger = Logger;

/** Field names censored wherever they appear (one level deep): a guard, not the plan. */
const SECRET_FIELDS = ["password", "secret", "secrets", "token", "key", "credential"];

export function createRelayLogger(level: LogLevel, fd = 1): RelayLogger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...SECRET_FIELDS, ...SECRET_FIELDS.map((field) => `*.${field}`)], censor: "<redacted>" },
    },
    pino.destination({ fd, sync: true }),
  );
}
