/**
 * What the per-source limits count a client against (relay/policy/source-address.ts).
 */
import { describe, expect, it } from "vitest";
import { sourceOf } from "../../../relay/policy/source-address.js";

describe("sourceOf", () => {
  it("counts IPv4 per address and IPv6 per /64, so one site's subnet cannot dodge the cap address by address", () => {
    expect(sourceOf("192.0.2.7")).toBe("192.0.2.7");
    expect(sourceOf("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:DB8:1:2:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(sourceOf("2001:db8:1:3::1")).not.toBe(sourceOf("2001:db8:1:2::1"));
    expect(sourceOf("::1")).toBe("0:0:0:0::/64");
    expect(sourceOf("::ffff:192.0.2.7")).toBe("192.0.2.7");
  });
});
