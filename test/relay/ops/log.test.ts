import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { BufferedLineDestination, censorSecrets, createRelayLogger, LOG_BUFFER_CHARS, LOG_FLUSH_DELAY_MS } from "../../../relay/ops/log.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Writes `fields` through a real logger into a file and returns the parsed line. */
function logged(fields: Record<string, unknown>): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-log-"));
  dirs.push(dir);
  const file = join(dir, "log");
  const fd = openSync(file, "w");
  const log = createRelayLogger("info", fd);
  log.info(fields);
  log.flush();
  closeSync(fd);
  const lines = readFileSync(file, "utf8").trim().split("\n");
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, unknown>;
}

describe("the relay's log lines", () => {
  it("carry the event's fields as given, with level and time", () => {
    const line = logged({ event: "allocation-start", client: "udp:127.0.0.1:5000@127.0.0.1:3478", user: "alice", keyCount: 2 });
    expect(line).toMatchObject({ level: "info", event: "allocation-start", client: "udp:127.0.0.1:5000@127.0.0.1:3478", user: "alice", keyCount: 2 });
    expect(typeof line["time"]).toBe("string");
  });

  it("censor secret-named fields at the top level and one level down, arrays of objects included", () => {
    const line = logged({
      event: "oops",
      password: "hunter2",
      auth: { token: "t0k3n", user: "bob" },
      listeners: [{ port: 1, secret: "s3cr3t" }, { port: 2 }],
      key: "k",
    });
    expect(JSON.stringify(line)).not.toMatch(/hunter2|t0k3n|s3cr3t|"k"/);
    expect(line).toMatchObject({ password: "<redacted>", key: "<redacted>", auth: { token: "<redacted>", user: "bob" }, listeners: [{ port: 1, secret: "<redacted>" }, { port: 2 }] });
  });

  it("never change the caller's object, and hand back the same object when nothing is secret", () => {
    const plain = { event: "allocation-end", user: "alice", traffic: { packets: 3 } };
    expect(censorSecrets(plain)).toBe(plain);
    const secretive = { event: "x", nested: { credential: "c" } };
    const censored = censorSecrets(secretive);
    expect(censored).not.toBe(secretive);
    expect(secretive.nested.credential).toBe("c");
    expect(censored).toEqual({ event: "x", nested: { credential: "<redacted>" } });
  });
});

/** A sink that records each write it is given. */
function recordingSink(): { writes: string[]; write(text: string): void } {
  const writes: string[] = [];
  return { writes, write: (text) => void writes.push(text) };
}

describe("the relay's log destination", () => {
  it("writes a line logged after a quiet spell at once", async () => {
    const sink = recordingSink();
    const destination = new BufferedLineDestination(sink);
    destination.write("a\n");
    expect(sink.writes).toEqual(["a\n"]);
    // The window it opened ends with nothing held, so the next line after a quiet spell goes at once too.
    await sleep(LOG_FLUSH_DELAY_MS + 50);
    destination.write("b\n");
    expect(sink.writes).toEqual(["a\n", "b\n"]);
  });

  it("writes the lines logged within LOG_FLUSH_DELAY_MS of a write in one write, in order, at the window's end", async () => {
    const sink = recordingSink();
    const destination = new BufferedLineDestination(sink);
    destination.write("a\n");
    await nextTurn();
    destination.write("b\n");
    destination.write("c\n");
    expect(sink.writes).toEqual(["a\n"]);
    await sleep(LOG_FLUSH_DELAY_MS + 50);
    expect(sink.writes).toEqual(["a\n", "b\nc\n"]);
  });

  it("opens a new window with the write at a window's end, so a line soon after it waits as well", async () => {
    // A long window here, so the test's own timing has room: 400 ms, the line 100 ms into the second.
    const windowMs = 400;
    const sink = recordingSink();
    const destination = new BufferedLineDestination(sink, windowMs);
    destination.write("a\n");
    destination.write("b\n");
    await sleep(windowMs + 100);
    expect(sink.writes).toEqual(["a\n", "b\n"]);
    destination.write("c\n");
    expect(sink.writes).toEqual(["a\n", "b\n"]);
    await sleep(windowMs);
    expect(sink.writes).toEqual(["a\n", "b\n", "c\n"]);
  });

  it("writes at once when LOG_BUFFER_CHARS are held, so a relay that logs in a loop holds no more", async () => {
    const sink = recordingSink();
    const destination = new BufferedLineDestination(sink);
    const line = `${"x".repeat(99)}\n`;
    const lines = Math.ceil(LOG_BUFFER_CHARS / line.length) + 5;
    for (let i = 0; i < lines; i++) destination.write(line);
    // The first line at once, then the held ones when they reached the bound.
    expect(sink.writes).toHaveLength(2);
    expect(sink.writes[1]!.length).toBeGreaterThanOrEqual(LOG_BUFFER_CHARS);
    await sleep(LOG_FLUSH_DELAY_MS + 50);
    expect(sink.writes.join("")).toBe(line.repeat(lines));
  });

  it("writes on flush(), and calls pino's flush callback", () => {
    const sink = recordingSink();
    const destination = new BufferedLineDestination(sink);
    destination.write("a\n");
    destination.write("b\n");
    expect(sink.writes).toEqual(["a\n"]);
    let flushed = false;
    destination.flush(() => (flushed = true));
    expect(sink.writes).toEqual(["a\n", "b\n"]);
    expect(flushed).toBe(true);
  });

  it("drops text that cannot be written instead of throwing, and writes what comes after", async () => {
    let failing = true;
    const written: string[] = [];
    const destination = new BufferedLineDestination({
      write(text) {
        if (failing) throw Object.assign(new Error("write EPIPE"), { code: "EPIPE" });
        written.push(text);
      },
    });
    destination.write("lost\n");
    expect(() => destination.flush()).not.toThrow();
    failing = false;
    destination.write("kept\n");
    await sleep(LOG_FLUSH_DELAY_MS + 50);
    expect(written).toEqual(["kept\n"]);
  });

  it("writes lines logged right before process.exit(), and never keeps a process alive for them", () => {
    const logModule = JSON.stringify(new URL("../../../relay/ops/log.ts", import.meta.url).pathname);
    const run = (ending: string) => {
      const script = [
        `import { createRelayLogger } from ${logModule};`,
        `const log = createRelayLogger("info");`,
        `log.info({ event: "first" });`,
        `log.info({ event: "last" });`,
        ending,
      ].join("\n");
      return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
    };
    const events = (stdout: string) => stdout.trim().split("\n").map((line) => (JSON.parse(line) as { event: string }).event);
    const exited = run("process.exit(3);");
    expect(exited.status).toBe(3);
    expect(events(exited.stdout)).toEqual(["first", "last"]);
    // Nothing else to do: the process ends at once (the held lines' timer is unref'd) and still writes them.
    const ended = run("");
    expect(ended.status).toBe(0);
    expect(events(ended.stdout)).toEqual(["first", "last"]);
  });
});
