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
const SECRET_FIELDS: ReadonlySet<string> = new Set(["password", "secret", "secrets", "token", "key", "credential"]);
const CENSORED = "<redacted>";

/**
 * The line's fields with every secret-named field censored, at the top level and one level down
 * (also in arrays of objects). The same object when nothing needs censoring, which is every line
 * the relay writes: a walk over the keys, where pino's own `redact` option costs more per line
 * than an allocation's whole log line (measured in the lifecycle benchmark).
 */
export function censorSecrets(fields: Record<string, unknown>): Record<string, unknown> {
  let censored: Record<string, unknown> | undefined;
  for (const name in fields) {
    const value = fields[name];
    const replacement = SECRET_FIELDS.has(name) ? CENSORED : censorNested(value);
    if (replacement !== value) (censored ??= { ...fields })[name] = replacement;
  }
  return censored ?? fields;
}

function censorNested(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item: unknown, index) => {
      const replacement = censorShallow(item);
      if (replacement !== item) (copy ??= [...value])[index] = replacement;
    });
    return copy ?? value;
  }
  return censorShallow(value);
}

function censorShallow(value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const name in record) if (SECRET_FIELDS.has(name)) (copy ??= { ...record })[name] = CENSORED;
  return copy ?? value;
}

/** `fields`: put on every line (a worker process's `worker: <slot>`). */
export function createRelayLogger(level: LogLevel, fd = 1, fields?: Record<string, unknown>): RelayLogger {
  return pino(
    {
      level,
      base: fields,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: censorSecrets },
    },
    pino.destination({ fd, sync: true }),
  );
}
