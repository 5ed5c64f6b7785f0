/**
 * How --udp-io and --tcp-io are resolved (relay/transport/io-choice.ts): auto falls back when the
 * addon does not load, native refuses to start and says why, the fallback is taken without loading.
 */
import { describe, expect, it } from "vitest";
import { resolveIo, type NativeLoad } from "../../relay/transport/io-choice.js";

const loads = (result: NativeLoad) => {
  let calls = 0;
  return { load: () => (calls++, result), calls: () => calls };
};
const missing: NativeLoad = { ok: false, reason: "the addon is not built; run `npm run build:native`" };

describe("resolving --tcp-io and --udp-io", () => {
  it("auto and native take the addon when it loads", () => {
    expect(resolveIo("--tcp-io", "auto", "net", loads({ ok: true }).load)).toBe("native");
    expect(resolveIo("--tcp-io", "native", "net", loads({ ok: true }).load)).toBe("native");
  });

  it("auto falls back when the addon does not load; native refuses, naming the option and the reason", () => {
    expect(resolveIo("--tcp-io", "auto", "net", loads(missing).load)).toBe("net");
    expect(() => resolveIo("--udp-io", "native", "dgram", loads(missing).load)).toThrow("--udp-io=native: the addon is not built; run `npm run build:native`");
  });

  it("takes the fallback as asked without loading the addon", () => {
    const probe = loads({ ok: true });
    expect(resolveIo("--udp-io", "dgram", "dgram", probe.load)).toBe("dgram");
    expect(probe.calls()).toBe(0);
  });
});
