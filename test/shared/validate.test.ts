/**
 * Client frame validation (shared/signaling/validate.ts): the same judgement in the room, the tests
 * and the client.
 */
import { describe, expect, it } from "vitest";
import { checkMeta, parseClientFrame, utf8ByteLength } from "../../shared/signaling/validate.js";

const limits = { maxMetaBytes: 64, maxPeerIdLength: 8 };

describe("parseClientFrame", () => {
  it("accepts each client frame type and keeps only the fields it knows", () => {
    expect(parseClientFrame('{"type":"signal","to":"p1","data":{"x":1},"from":"forged"}', limits)).toEqual({
      ok: true,
      frame: { type: "signal", to: "p1", data: { x: 1 } },
    });
    expect(parseClientFrame('{"type":"broadcast","data":null}', limits)).toEqual({ ok: true, frame: { type: "broadcast", data: null } });
    expect(parseClientFrame('{"type":"meta","data":{"n":"A"}}', limits)).toEqual({ ok: true, frame: { type: "meta", data: { n: "A" } } });
    expect(parseClientFrame('{"type":"leave"}', limits)).toEqual({ ok: true, frame: { type: "leave" } });
    expect(parseClientFrame(' { "type" : "ping" } ', limits)).toEqual({ ok: true, frame: { type: "ping" } });
  });

  it.each([
    ["", "JSON"],
    ["{", "JSON"],
    ["null", "object"],
    ['"signal"', "object"],
    ["[]", "object"],
    ['{"type":7}', '"type"'],
    ['{"type":"nope"}', "unknown frame type"],
    ['{"type":"signal","to":"p1"}', '"data"'],
    ['{"type":"signal","to":5,"data":1}', '"to"'],
    ['{"type":"signal","to":"way-too-long","data":1}', "1-8"],
    ['{"type":"broadcast"}', '"data"'],
    ['{"type":"meta","data":"x"}', "object"],
    ['{"type":"meta","data":null}', "object"],
  ])("refuses %j as bad-message mentioning %s", (text, hint) => {
    const result = parseClientFrame(text, limits);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.code).toBe("bad-message");
      expect(result.message).toContain(hint);
    }
  });

  it("refuses oversized meta as too-large", () => {
    const result = parseClientFrame(JSON.stringify({ type: "meta", data: { bio: "x".repeat(100) } }), limits);
    expect(result).toMatchObject({ ok: false, code: "too-large" });
  });

  it("does not echo a long unknown type back in full", () => {
    const result = parseClientFrame(JSON.stringify({ type: "z".repeat(10_000) }), limits);
    expect(!result.ok && result.message.length).toBeLessThan(200);
  });
});

describe("checkMeta", () => {
  it("measures meta in UTF-8 bytes", () => {
    expect(checkMeta({ a: "é".repeat(28) }, 64).ok).toBe(true); // 64 bytes exactly
    expect(checkMeta({ a: "é".repeat(29) }, 64).ok).toBe(false);
  });
});

describe("utf8ByteLength", () => {
  it.each(["", "ascii", "é", "€", "𝄞", "mixed é € 𝄞 text", "\ud800 lone surrogate"])("matches TextEncoder for %j", (text) => {
    expect(utf8ByteLength(text)).toBe(new TextEncoder().encode(text).length);
  });
});
