/**
 * The relay's process-level handler (relay/ops/process-errors.ts): an error nothing caught is logged
 * and counted and the process lives on, in a real Node process (a thrown exception from a timer and
 * an unhandled rejection, then work that still gets done), and in process with a stand-in emitter
 * for the log limit and a failing log.
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { handleUncaughtErrors, UNCAUGHT_LOG_LINES_PER_MINUTE, type UncaughtErrorLine, type UncaughtKind } from "../../../relay/ops/process-errors.js";
import { cleanEnv, spawnNode, stopProcess, waitUntil } from "./ops-helpers.js";

const RUN_TIMEOUT_MS = 20_000;

describe("a real process with the handler installed", () => {
  it("logs and counts a thrown exception and an unhandled rejection, and goes on to finish its work", async () => {
    const script = [
      'import { handleUncaughtErrors } from "./relay/ops/process-errors.ts";',
      "const counts = { exception: 0, rejection: 0 };",
      "handleUncaughtErrors(process, { log: (line) => console.log(JSON.stringify(line)), count: (kind) => counts[kind]++ });",
      'setTimeout(() => { throw new TypeError("thrown from a timer"); }, 10);',
      'setTimeout(() => { Promise.reject(new RangeError("rejected, nobody listening")); }, 20);',
      'setTimeout(() => console.log(JSON.stringify({ event: "still-here", counts })), 200);',
    ].join("\n");
    const child = spawnNode(["--import", "tsx", "--input-type=module", "-e", script], cleanEnv());
    try {
      const exited = await waitUntil(() => child.exit() !== undefined, RUN_TIMEOUT_MS);
      expect(exited, child.report()).toBe(true);
      expect(child.exit(), child.report()).toEqual({ code: 0, signal: null });
      const events = child.events();
      const errors = events.filter((line) => line.event === "uncaught-error");
      expect(errors.map((line) => [line.kind, line.error]), child.report()).toEqual([
        ["exception", "TypeError: thrown from a timer"],
        ["rejection", "RangeError: rejected, nobody listening"],
      ]);
      for (const line of errors) expect(String(line.stack), child.report()).toMatch(/^\s+at /);
      expect(events.at(-1), child.report()).toEqual({ event: "still-here", counts: { exception: 1, rejection: 1 } });
    } finally {
      await stopProcess(child);
    }
  }, RUN_TIMEOUT_MS + 5_000);
});

describe("handleUncaughtErrors", () => {
  function install(now: () => number, log: (line: UncaughtErrorLine) => void = () => {}) {
    const target = new EventEmitter();
    const lines: UncaughtErrorLine[] = [];
    const counted: UncaughtKind[] = [];
    const remove = handleUncaughtErrors(target, {
      log: (line) => {
        log(line);
        lines.push(line);
      },
      count: (kind) => counted.push(kind),
      now,
    });
    return { target, lines, counted, remove };
  }

  it(`logs at most ${UNCAUGHT_LOG_LINES_PER_MINUTE} lines a minute, counts every error, and says how many went unlogged`, () => {
    let clock = 0;
    const { target, lines, counted } = install(() => clock);
    const flood = UNCAUGHT_LOG_LINES_PER_MINUTE + 25;
    for (let i = 0; i < flood; i++) target.emit("uncaughtException", new Error(`number ${i}`));
    expect(counted).toHaveLength(flood);
    expect(lines).toHaveLength(UNCAUGHT_LOG_LINES_PER_MINUTE);
    clock += 60_000;
    target.emit("unhandledRejection", "a plain reason");
    expect(lines.at(-1)).toEqual({ event: "uncaught-error", kind: "rejection", error: "a plain reason", unlogged: 25 });
    target.emit("unhandledRejection", "another");
    expect(lines.at(-1)).toEqual({ event: "uncaught-error", kind: "rejection", error: "another" });
    expect(counted.filter((kind) => kind === "rejection")).toHaveLength(2);
  });

  it("never throws itself, even when the log does, and can be removed", () => {
    const { target, counted, remove } = install(Date.now, () => {
      throw new Error("the log is broken");
    });
    expect(() => target.emit("uncaughtException", new Error("x"))).not.toThrow();
    expect(counted).toEqual(["exception"]);
    remove();
    expect(target.listenerCount("uncaughtException")).toBe(0);
    expect(target.listenerCount("unhandledRejection")).toBe(0);
  });
});
