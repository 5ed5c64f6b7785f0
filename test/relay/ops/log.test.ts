import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { censorSecrets, createRelayLogger } from "../../../relay/ops/log.js";

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
  createRelayLogger("info", fd).info(fields);
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
