/**
 * The relay's log: one JSON object per line on stdout (pino), `{"level":"info","time":"<ISO 8601>",
 * "event":"…", …}`. Every line has an `event`; tools and tests parse the "listening" line to learn
 * the ports. The relay logs per allocation and per signal, never per packet.
 *
 * A busy relay's lines are gathered and written together, synchronously (`BufferedLineDestination`):
 * a system call per line cost about 7 us of CPU (pino's file stream and the pipe's write), against
 * about 2 us to format the line, and a busy relay logs two lines per allocation. A line logged after
 * a quiet spell is written at once; the lines that follow it within LOG_FLUSH_DELAY_MS wait for the
 * end of that window and go out in one write. So a line appears at most LOG_FLUSH_DELAY_MS after it
 * was logged, one on its own appears at once, and one logged right before exit is written on the way
 * out (process 'exit').
 *
 * No line carries a secret, a password or a full credential: the events are built from user ids,
 * addresses and counters, and any field named like a secret is censored all the same.
 */
import { pino, type DestinationStream, type Logger } from "pino";
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

/** What `BufferedLineDestination` writes to: pino's synchronous file destination, or a stand-in in tests. */
export interface LineSink {
  write(text: string): unknown;
}

/** How long a line may wait to be written with the lines before it. */
export const LOG_FLUSH_DELAY_MS = 25;
/** Text held before it is written at once: a relay that logs in a loop holds no more than this. */
export const LOG_BUFFER_CHARS = 64 * 1024;

/** Destinations holding text, written out when the process exits (one 'exit' listener for them all). */
const holdingText = new Set<BufferedLineDestination>();
let exitHookInstalled = false;

/**
 * A pino destination that writes to `sink` at most once per LOG_FLUSH_DELAY_MS window: a line that
 * opens a window goes out at once, the lines logged during the window go out together at its end
 * (which opens the next window). Also at once at LOG_BUFFER_CHARS, on `flush()`, and at exit.
 */
export class BufferedLineDestination implements DestinationStream {
  private pending = "";
  /** Runs while a window is open: set when a write opens one, cleared when a window ends with nothing held. */
  private window: NodeJS.Timeout | null = null;

  constructor(
    private readonly sink: LineSink,
    private readonly delayMs = LOG_FLUSH_DELAY_MS,
  ) {}

  write(line: string): void {
    if (this.window === null) {
      this.writeOut(line);
      this.openWindow();
      return;
    }
    if (this.pending === "") {
      holdingText.add(this);
      installExitHook();
    }
    this.pending += line;
    if (this.pending.length >= LOG_BUFFER_CHARS) this.writeHeld();
  }

  /** Writes what is held now; `done` (pino's `logger.flush(cb)`) is called once it is written. */
  flush(done?: (error?: Error) => void): void {
    this.writeHeld();
    done?.();
  }

  private writeHeld(): void {
    const text = this.pending;
    if (text === "") return;
    this.pending = "";
    holdingText.delete(this);
    this.writeOut(text);
  }

  private writeOut(text: string): void {
    try {
      this.sink.write(text);
    } catch {
      // The log cannot be written (stdout closed): there is nowhere to say so, and the relay serves on.
    }
  }

  /** Unref'd: an open window never keeps a process alive; the exit hook writes what it holds. */
  private openWindow(): void {
    this.window = setTimeout(this.endWindow, this.delayMs).unref();
  }

  private readonly endWindow = (): void => {
    this.window = null;
    if (this.pending === "") return;
    this.writeHeld();
    this.openWindow();
  };
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const destination of [...holdingText]) destination.flush();
  });
}

/** `fields`: put on every line (a worker process's `worker: <slot>`). */
export function createRelayLogger(level: LogLevel, fd = 1, fields?: Record<string, unknown>): RelayLogger {
  const file = pino.destination({ fd, sync: true });
  // A failed write is dropped in flush(); without a listener, the stream's 'error' event would throw.
  file.on("error", () => {});
  return pino(
    {
      level,
      base: fields,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: censorSecrets },
    },
    new BufferedLineDestination(file),
  );
}
