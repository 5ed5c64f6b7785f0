/**
 * The relay's last line of defence: an error nothing caught (a thrown exception that reached the
 * event loop, a promise rejection without a handler) is logged and counted, and the relay keeps
 * serving. Node's default ends the process, so one packet that trips a bug would drop every call
 * through this relay; the relay's own handlers catch what they expect, so what arrives here is a
 * bug to report (the log line carries the stack), not a state to stop for.
 *
 * relay/main.ts installs this once the listeners are bound. Before that, an error still ends the
 * start (exit 1): nothing is being served yet and the operator must see it. Lines are limited to
 * UNCAUGHT_LOG_LINES_PER_MINUTE, so an error repeated per packet cannot flood the log; the
 * count (relay_uncaught_errors_total) stays exact, and the next line says how many went unlogged.
 */

/** At most this many "uncaught-error" lines per minute; the rest are counted, and reported as `unlogged`. */
export const UNCAUGHT_LOG_LINES_PER_MINUTE = 60;
const MINUTE_MS = 60_000;
/** Stack lines kept in a log line: enough to find the bug, not a page per error. */
const STACK_LINES = 12;

export type UncaughtKind = "exception" | "rejection";

export interface UncaughtErrorLine {
  event: "uncaught-error";
  kind: UncaughtKind;
  error: string;
  stack?: string;
  /** Errors since the last line that were counted but not logged (the per-minute limit). */
  unlogged?: number;
}

export interface ProcessErrorOptions {
  /** Writes one log line (the relay's pino logger at level error). */
  log(line: UncaughtErrorLine): void;
  /** Counts one error (the metric). */
  count(kind: UncaughtKind): void;
  /** Milliseconds now; a parameter for tests. */
  now?: () => number;
}

/** What a process offers: `process` itself, or a stand-in in tests. */
export interface ProcessEvents {
  on(event: "uncaughtException", listener: (error: unknown) => void): unknown;
  on(event: "unhandledRejection", listener: (reason: unknown) => void): unknown;
  off(event: "uncaughtException", listener: (error: unknown) => void): unknown;
  off(event: "unhandledRejection", listener: (reason: unknown) => void): unknown;
}

function describeError(error: unknown): { error: string; stack?: string } {
  if (error instanceof Error) {
    const stack = error.stack?.split("\n").slice(1, STACK_LINES + 1).join("\n");
    return { error: `${error.name}: ${error.message}`, ...(stack !== undefined && stack !== "" && { stack }) };
  }
  return { error: String(error) };
}

/** Installs the handlers on `target`; returns a function that removes them. */
export function handleUncaughtErrors(target: ProcessEvents, options: ProcessErrorOptions): () => void {
  const now = options.now ?? Date.now;
  let windowStart = -Infinity;
  let linesInWindow = 0;
  let unlogged = 0;

  const report = (kind: UncaughtKind, error: unknown) => {
    // Nothing in here may throw: a throw from an uncaughtException handler ends the process.
    try {
      options.count(kind);
      const at = now();
      if (at - windowStart >= MINUTE_MS) {
        windowStart = at;
        linesInWindow = 0;
      }
      if (linesInWindow >= UNCAUGHT_LOG_LINES_PER_MINUTE) {
        unlogged++;
        return;
      }
      linesInWindow++;
      options.log({ event: "uncaught-error", kind, ...describeError(error), ...(unlogged > 0 && { unlogged }) });
      unlogged = 0;
    } catch {
      // The log or the metric failed: the error is lost, the relay is not.
    }
  };
  const onException = (error: unknown) => report("exception", error);
  const onRejection = (reason: unknown) => report("rejection", reason);
  target.on("uncaughtException", onException);
  target.on("unhandledRejection", onRejection);
  return () => {
    target.off("uncaughtException", onException);
    target.off("unhandledRejection", onRejection);
  };
}
