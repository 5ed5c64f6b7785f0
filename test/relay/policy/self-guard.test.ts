/**
 * The relay's own listeners are no peers, however their address is spelled (relay/policy/self-guard.ts).
 * The interfaces of a wildcard listener come from an injected reader, so a test can change them.
 */
import { describe, expect, it } from "vitest";
import { canonicalIp } from "../../../relay/policy/ip-text.js";
import { SelfGuard } from "../../../relay/policy/self-guard.js";

const PORT = 3478;

describe("canonicalIp", () => {
  it.each([
    ["0:0:0:0:0:0:0:1", "::1"],
    ["0000:0000:0000:0000:0000:0000:0000:0001", "::1"],
    ["::0:1", "::1"],
    ["2001:DB8::0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["::FFFF:7F00:1", "127.0.0.1"],
    ["0:0:0:0:0:ffff:c000:0201", "192.0.2.1"],
    ["192.0.2.1", "192.0.2.1"],
  ])("writes %s as %s", (text, canonical) => {
    expect(canonicalIp(text)).toBe(canonical);
  });

  it.each(["", "localhost", "1.2.3", "::1%lo", "010.0.0.1", "[::1]"])("refuses %j", (text) => {
    expect(canonicalIp(text)).toBeNull();
  });
});

describe("SelfGuard", () => {
  it.each([
    ["0:0:0:0:0:0:0:1", ["::1", "0:0:0:0:0:0:0:1", "0::1"]],
    ["::1", ["0000:0000:0000:0000:0000:0000:0000:0001"]],
    ["127.0.0.1", ["127.0.0.1", "::ffff:127.0.0.1", "::FFFF:7F00:1", "0:0:0:0:0:ffff:7f00:0001"]],
    ["2001:DB8::0001", ["2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001"]],
  ])("knows a listener on %s under every spelling", (listeningIp, spellings) => {
    const guard = new SelfGuard([PORT], [listeningIp], [], () => []);
    for (const spelling of spellings) expect(guard.isListener(spelling, PORT), spelling).toBe(true);
    // Another port of the same address is a relay port or someone else's: not a listener.
    for (const spelling of spellings) expect(guard.isListener(spelling, PORT + 1), spelling).toBe(false);
  });

  it("knows external addresses under every spelling", () => {
    const guard = new SelfGuard([PORT], ["10.0.0.5"], ["2001:DB8::0005", "198.51.100.7"], () => []);
    expect(guard.isListener("2001:db8::5", PORT)).toBe(true);
    expect(guard.isListener("::ffff:198.51.100.7", PORT)).toBe(true);
  });

  it("always counts the unspecified addresses as its own: the kernel delivers them locally", () => {
    const guard = new SelfGuard([PORT], ["192.0.2.1"], [], () => []);
    for (const address of ["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::ffff:0.0.0.0"]) expect(guard.isListener(address, PORT), address).toBe(true);
  });

  it("leaves other addresses alone for a listener on one address", () => {
    const guard = new SelfGuard([PORT], ["127.0.0.1"], [], () => ["127.0.0.1", "10.1.2.3"]);
    expect(guard.isListener("127.0.0.2", PORT)).toBe(false);
    expect(guard.isListener("10.1.2.3", PORT)).toBe(false);
  });

  it("counts every interface address and all of 127.0.0.0/8 for a wildcard listener, and re-reads the interfaces", () => {
    let interfaces = ["127.0.0.1", "::1", "10.1.2.3", "fe80::1%eth0"];
    const guard = new SelfGuard([PORT], ["0.0.0.0"], [], () => interfaces);
    for (const address of ["10.1.2.3", "::ffff:10.1.2.3", "127.0.0.1", "127.0.0.2", "127.255.255.254", "fe80::1"]) {
      expect(guard.isListener(address, PORT), address).toBe(true);
    }
    expect(guard.isListener("10.1.2.4", PORT)).toBe(false);
    expect(guard.isListener("128.0.0.1", PORT)).toBe(false);

    // A new interface comes up, an old one goes.
    interfaces = ["127.0.0.1", "10.9.9.9"];
    guard.refresh();
    expect(guard.isListener("10.9.9.9", PORT)).toBe(true);
    expect(guard.isListener("10.1.2.3", PORT)).toBe(false);
  });

  it("counts the interface addresses for an IPv6 wildcard listener written in full", () => {
    const guard = new SelfGuard([PORT], ["0:0:0:0:0:0:0:0"], [], () => ["2001:db8::7"]);
    expect(guard.isListener("2001:DB8:0::7", PORT)).toBe(true);
  });

  it("treats text that is no address as its own (refused), never as a stranger", () => {
    const guard = new SelfGuard([PORT], ["127.0.0.1"], [], () => []);
    expect(guard.isListener("not-an-address", PORT)).toBe(true);
  });
});
