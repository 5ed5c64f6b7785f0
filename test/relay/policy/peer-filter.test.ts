/** The peer filter: address parsing, the default deny list at its edges, policy overrides, embedded IPv4 forms. */
import { BlockList, isIP } from "node:net";
import { describe, expect, it } from "vitest";
import { DEFAULT_DENIED_PEER_RANGES, checkPeerPolicy, compilePeerFilter, parseCidr } from "../../../relay/policy/peer-filter.js";
import { parseIpAddress, readIpv4 } from "../../../relay/policy/ip-text.js";

const defaults = compilePeerFilter({});

/** Each default range with its first and last address, and the nearest addresses outside it that are allowed. */
const DEFAULT_RANGE_EDGES: ReadonlyArray<{ range: string; first: string; last: string; before?: string; after?: string }> = [
  { range: "0.0.0.0/8", first: "0.0.0.0", last: "0.255.255.255", after: "1.0.0.0" },
  { range: "10.0.0.0/8", first: "10.0.0.0", last: "10.255.255.255", before: "9.255.255.255", after: "11.0.0.0" },
  { range: "100.64.0.0/10", first: "100.64.0.0", last: "100.127.255.255", before: "100.63.255.255", after: "100.128.0.0" },
  { range: "127.0.0.0/8", first: "127.0.0.0", last: "127.255.255.255", before: "126.255.255.255", after: "128.0.0.0" },
  { range: "169.254.0.0/16", first: "169.254.0.0", last: "169.254.255.255", before: "169.253.255.255", after: "169.255.0.0" },
  { range: "172.16.0.0/12", first: "172.16.0.0", last: "172.31.255.255", before: "172.15.255.255", after: "172.32.0.0" },
  { range: "192.0.0.0/24", first: "192.0.0.0", last: "192.0.0.255", before: "191.255.255.255", after: "192.0.1.0" },
  { range: "192.0.2.0/24", first: "192.0.2.0", last: "192.0.2.255", before: "192.0.1.255", after: "192.0.3.0" },
  { range: "192.88.99.0/24", first: "192.88.99.0", last: "192.88.99.255", before: "192.88.98.255", after: "192.88.100.0" },
  { range: "192.168.0.0/16", first: "192.168.0.0", last: "192.168.255.255", before: "192.167.255.255", after: "192.169.0.0" },
  { range: "198.18.0.0/15", first: "198.18.0.0", last: "198.19.255.255", before: "198.17.255.255", after: "198.20.0.0" },
  { range: "198.51.100.0/24", first: "198.51.100.0", last: "198.51.100.255", before: "198.51.99.255", after: "198.51.101.0" },
  { range: "203.0.113.0/24", first: "203.0.113.0", last: "203.0.113.255", before: "203.0.112.255", after: "203.0.114.0" },
  { range: "224.0.0.0/4", first: "224.0.0.0", last: "239.255.255.255", before: "223.255.255.255" },
  { range: "240.0.0.0/4", first: "240.0.0.0", last: "255.255.255.255" },
  // ::2 and up are IPv4-compatible (0.0.0.2 ...), inside 0.0.0.0/8: nothing next to :: or ::1 is allowed.
  { range: "::/128", first: "::", last: "0:0:0:0:0:0:0:0" },
  { range: "::1/128", first: "::1", last: "0000:0000:0000:0000:0000:0000:0000:0001" },
  {
    range: "64:ff9b::/96",
    first: "64:ff9b::",
    last: "64:ff9b::ffff:ffff",
    before: "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
    after: "64:ff9b::1:0:0",
  },
  {
    range: "64:ff9b:1::/48",
    first: "64:ff9b:1::",
    last: "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
    before: "64:ff9b:0:ffff:ffff:ffff:ffff:ffff",
    after: "64:ff9b:2::",
  },
  { range: "100::/64", first: "100::", last: "100::ffff:ffff:ffff:ffff", before: "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", after: "100:0:0:1::" },
  {
    range: "2001::/23",
    first: "2001::",
    last: "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
    before: "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    after: "2001:200::",
  },
  {
    range: "2001:db8::/32",
    first: "2001:db8::",
    last: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    before: "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
    after: "2001:db9::",
  },
  {
    range: "2002::/16",
    first: "2002::",
    last: "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    before: "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    after: "2003::",
  },
  { range: "fc00::/7", first: "fc00::", last: "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", before: "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", after: "fe00::" },
  { range: "fe80::/10", first: "fe80::", last: "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", before: "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", after: "fec0::" },
  { range: "ff00::/8", first: "ff00::", last: "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF", before: "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
];

describe("DEFAULT_DENIED_PEER_RANGES", () => {
  it("is exactly eturnal's recommended list, in canonical form", () => {
    expect(DEFAULT_DENIED_PEER_RANGES).toEqual(DEFAULT_RANGE_EDGES.map((edge) => edge.range));
    expect(Object.isFrozen(DEFAULT_DENIED_PEER_RANGES)).toBe(true);
    for (const range of DEFAULT_DENIED_PEER_RANGES) {
      const parsed = parseCidr(range);
      expect(parsed.ok && parsed.cidr.text).toBe(range);
    }
  });

  for (const { range, first, last, before, after } of DEFAULT_RANGE_EDGES) {
    it(`refuses ${range} at both ends${before || after ? " and allows just outside" : ""}`, () => {
      expect(defaults.isAllowed(first)).toBe(false);
      expect(defaults.isAllowed(last)).toBe(false);
      if (before !== undefined) expect(defaults.isAllowed(before)).toBe(true);
      if (after !== undefined) expect(defaults.isAllowed(after)).toBe(true);
    });
  }

  it("allows public addresses", () => {
    for (const address of ["8.8.8.8", "1.1.1.1", "9.9.9.9", "2606:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::200e"]) {
      expect(defaults.isAllowed(address), address).toBe(true);
    }
  });

  it("refuses the cloud metadata endpoint, broadcast and loopback", () => {
    for (const address of ["169.254.169.254", "255.255.255.255", "127.0.0.1", "::1", "fd00:ec2::254"]) {
      expect(defaults.isAllowed(address), address).toBe(false);
    }
  });

  it("agrees with node:net BlockList on addresses around every range edge", () => {
    const blockList = new BlockList();
    for (const range of DEFAULT_DENIED_PEER_RANGES) {
      const [network = "", prefix = ""] = range.split("/");
      blockList.addSubnet(network, Number(prefix), isIP(network) === 4 ? "ipv4" : "ipv6");
    }
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed;
    };
    let checked = 0;
    for (const { first, last } of DEFAULT_RANGE_EDGES) {
      for (const edge of [first, last]) {
        const parsed = parseIpAddress(edge);
        if (!parsed.ok) throw new Error(parsed.reason);
        for (let n = 0; n < 200; n++) {
          const bytes = parsed.bytes.slice();
          // Perturb a random low byte and its neighbours to cross the edge either way.
          const at = bytes.length - 1 - (random() % Math.min(bytes.length, 4));
          bytes[at] = random() & 0xff;
          if (n % 3 === 0 && at > 0) bytes[at - 1] = ((bytes[at - 1] ?? 0) + (random() % 3) - 1) & 0xff;
          let text: string;
          if (parsed.family === 4) {
            text = bytes.join(".");
          } else {
            const words = [];
            for (let k = 0; k < 16; k += 2) words.push((((bytes[k] ?? 0) << 8) | (bytes[k + 1] ?? 0)).toString(16));
            text = words.join(":");
            // Addresses that embed IPv4 are judged as IPv4 too; BlockList alone cannot predict them.
            if (/^0:0:0:0:0:(0|ffff):/.test(text) || text.startsWith("64:ff9b:0:0:0:0:")) continue;
          }
          expect(defaults.isAllowed(text), text).toBe(!blockList.check(text, parsed.family === 4 ? "ipv4" : "ipv6"));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(4000);
  });
});

describe("IPv4 written as IPv6", () => {
  it("judges IPv4-mapped and IPv4-compatible addresses as the IPv4 address (CVE-2026-27624)", () => {
    for (const address of [
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::FFFF:7F00:0001",
      "0:0:0:0:0:ffff:127.0.0.1",
      "::127.0.0.1",
      "::7f00:1",
      "::ffff:10.0.0.1",
      "::ffff:a00:1",
      "::ffff:169.254.169.254",
      "::ffff:a9fe:a9fe",
      "::169.254.169.254",
      "::ffff:192.168.1.1",
      "::ffff:255.255.255.255",
      "::0.0.0.2",
    ]) {
      expect(defaults.isAllowed(address), address).toBe(false);
    }
    for (const address of ["::ffff:8.8.8.8", "::ffff:808:808", "::8.8.8.8", "::ffff:1.1.1.1"]) {
      expect(defaults.isAllowed(address), address).toBe(true);
    }
  });

  it("judges NAT64 64:ff9b::a.b.c.d as the IPv4 address when the operator allows the prefix", () => {
    expect(defaults.isAllowed("64:ff9b::8.8.8.8")).toBe(false);
    const nat64 = compilePeerFilter({ allowedPeers: ["64:ff9b::/96"] });
    expect(nat64.isAllowed("64:ff9b::8.8.8.8")).toBe(true);
    expect(nat64.isAllowed("64:ff9b::808:808")).toBe(true);
    expect(nat64.isAllowed("64:ff9b::10.0.0.1")).toBe(false);
    expect(nat64.isAllowed("64:ff9b::127.0.0.1")).toBe(false);
    expect(nat64.isAllowed("64:ff9b::169.254.169.254")).toBe(false);
    expect(nat64.isAllowed("64:ff9b::0.0.0.0")).toBe(false);
  });

  it("applies IPv4-mapped policy ranges to plain IPv4 and IPv4 ranges to mapped addresses", () => {
    const filter = compilePeerFilter({ allowedPeers: ["::ffff:10.1.0.0/112"], deniedPeers: ["::ffff:8.8.8.0/120", "1.1.1.0/24"] });
    expect(filter.isAllowed("10.1.2.3")).toBe(true);
    expect(filter.isAllowed("::ffff:10.1.2.3")).toBe(true);
    expect(filter.isAllowed("10.2.0.1")).toBe(false);
    expect(filter.isAllowed("8.8.8.8")).toBe(false);
    expect(filter.isAllowed("::ffff:8.8.8.8")).toBe(false);
    expect(filter.isAllowed("::ffff:1.1.1.1")).toBe(false);
    expect(filter.isAllowed("8.8.4.4")).toBe(true);
  });
});

describe("always refused", () => {
  it("refuses the unspecified addresses even when allowed explicitly (CVE-2020-26262)", () => {
    const filter = compilePeerFilter({ allowLoopback: true, allowedPeers: ["0.0.0.0/0", "::/0", "0.0.0.0", "::"] });
    for (const address of ["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "::0", "::ffff:0.0.0.0", "::ffff:0:0", "::0.0.0.0"]) {
      expect(filter.isAllowed(address), address).toBe(false);
      expect(defaults.isAllowed(address), address).toBe(false);
    }
    expect(filter.isAllowed("10.0.0.1")).toBe(true);
  });

  it("refuses loopback unless allowLoopback, even when allowedPeers covers it", () => {
    const loopbacks = ["127.0.0.1", "127.1.2.3", "127.255.255.255", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1", "::127.0.0.1"];
    const allowAll = compilePeerFilter({ allowedPeers: ["0.0.0.0/0", "::/0", "127.0.0.0/8", "::1"] });
    for (const address of loopbacks) {
      expect(defaults.isAllowed(address), address).toBe(false);
      expect(allowAll.isAllowed(address), address).toBe(false);
    }
    const local = compilePeerFilter({ allowLoopback: true });
    for (const address of loopbacks) expect(local.isAllowed(address), address).toBe(true);
    // allowLoopback opens loopback only.
    for (const address of ["10.0.0.1", "169.254.169.254", "0.0.0.0", "::", "fe80::1", "::ffff:10.0.0.1"]) {
      expect(local.isAllowed(address), address).toBe(false);
    }
    expect(local.isAllowed("8.8.8.8")).toBe(true);
  });

  it("refuses text that is not an address", () => {
    for (const address of [
      "",
      " ",
      "localhost",
      "example.com",
      "8.8.8.8 ",
      " 8.8.8.8",
      "8.8.8",
      "8.8.8.8.8",
      "8.8.8.256",
      "08.8.8.8",
      "0x7f.0.0.1",
      "2130706433",
      "127.1",
      "8.8.8.8:3478",
      "[2606:4700::1111]",
      "2606:4700::1111/128",
      "8.8.8.8/32",
      ":::",
      "1::2::3",
      "2606:4700:::1111",
      "12345::",
      "g::1",
      "%eth0",
      "2606:4700::1111%",
      "1.2.3.4%eth0",
      "::ffff:1.2.3",
      "::ffff:01.2.3.4",
    ]) {
      expect(defaults.isAllowed(address), JSON.stringify(address)).toBe(false);
    }
    expect(defaults.isAllowed(undefined as unknown as string)).toBe(false);
  });

  it("judges a zoned IPv6 address by its address", () => {
    expect(defaults.isAllowed("fe80::1%eth0")).toBe(false);
    expect(compilePeerFilter({ allowedPeers: ["fe80::/10"] }).isAllowed("fe80::1%eth0")).toBe(true);
    expect(defaults.isAllowed("2606:4700::1111%1")).toBe(true);
  });
});

describe("operator policy", () => {
  it("lets allowedPeers open part of a default range (allow wins, as in coturn)", () => {
    const filter = compilePeerFilter({ allowedPeers: ["10.1.0.0/16", "fd00:1234::/32", "192.168.1.10"] });
    expect(filter.isAllowed("10.1.2.3")).toBe(true);
    expect(filter.isAllowed("10.1.255.255")).toBe(true);
    expect(filter.isAllowed("10.0.255.255")).toBe(false);
    expect(filter.isAllowed("10.2.0.0")).toBe(false);
    expect(filter.isAllowed("::ffff:10.1.2.3")).toBe(true);
    expect(filter.isAllowed("fd00:1234:5678::1")).toBe(true);
    expect(filter.isAllowed("fd00:1235::1")).toBe(false);
    expect(filter.isAllowed("192.168.1.10")).toBe(true);
    expect(filter.isAllowed("192.168.1.11")).toBe(false);
  });

  it("lets allowedPeers win over deniedPeers", () => {
    const filter = compilePeerFilter({ allowedPeers: ["8.8.8.8"], deniedPeers: ["8.8.8.0/24"] });
    expect(filter.isAllowed("8.8.8.8")).toBe(true);
    expect(filter.isAllowed("8.8.8.9")).toBe(false);
  });

  it("adds deniedPeers to the defaults", () => {
    const filter = compilePeerFilter({ deniedPeers: ["8.8.8.0/24", "2606:4700::/32"] });
    expect(filter.isAllowed("8.8.8.8")).toBe(false);
    expect(filter.isAllowed("8.8.8.255")).toBe(false);
    expect(filter.isAllowed("8.8.9.0")).toBe(true);
    expect(filter.isAllowed("8.8.7.255")).toBe(true);
    expect(filter.isAllowed("::ffff:8.8.8.8")).toBe(false);
    expect(filter.isAllowed("2606:4700::1111")).toBe(false);
    expect(filter.isAllowed("2606:4701::1")).toBe(true);
    expect(filter.isAllowed("10.0.0.1")).toBe(false);
    expect(filter.isAllowed("1.1.1.1")).toBe(true);
  });

  it("handles /0 ranges", () => {
    const denyAllV4 = compilePeerFilter({ deniedPeers: ["0.0.0.0/0"] });
    expect(denyAllV4.isAllowed("8.8.8.8")).toBe(false);
    expect(denyAllV4.isAllowed("::ffff:8.8.8.8")).toBe(false);
    expect(denyAllV4.isAllowed("2606:4700::1111")).toBe(true);
    const denyAllV6 = compilePeerFilter({ deniedPeers: ["::/0"] });
    expect(denyAllV6.isAllowed("2606:4700::1111")).toBe(false);
    expect(denyAllV6.isAllowed("8.8.8.8")).toBe(true);
  });

  it("describes the compiled policy", () => {
    expect(defaults.describe()).toEqual({
      allowLoopback: false,
      allowed: [],
      denied: [...DEFAULT_DENIED_PEER_RANGES],
      alwaysRefused: ["0.0.0.0/32", "::/128", "127.0.0.0/8", "::1/128"],
    });
    const described = compilePeerFilter({ allowLoopback: true, allowedPeers: ["10.1.0.0/16"], deniedPeers: ["2606:4700:0:0::/32"] }).describe();
    expect(described.allowed).toEqual(["10.1.0.0/16", "127.0.0.0/8", "::1/128"]);
    expect(described.denied.at(-1)).toBe("2606:4700::/32");
    expect(described.alwaysRefused).toEqual(["0.0.0.0/32", "::/128"]);
  });

  it("refuses to compile an invalid policy, naming every bad entry", () => {
    const policy = { allowedPeers: ["10.0.0.0/8", "10.0.0.0/33"], deniedPeers: ["not-an-ip", "fc00::/129"] };
    expect(checkPeerPolicy(policy)).toEqual([
      'allowedPeers[1] (coturn allowed-peer-ip): "10.0.0.0/33": prefix length 33 is over 32 for IPv4',
      expect.stringMatching(/^deniedPeers\[0\] \(coturn denied-peer-ip\): "not-an-ip": /),
      'deniedPeers[1] (coturn denied-peer-ip): "fc00::/129": prefix length 129 is over 128 for IPv6',
    ]);
    expect(() => compilePeerFilter(policy)).toThrow(RangeError);
    expect(() => compilePeerFilter(policy)).toThrow(/allowedPeers\[1\][\s\S]*deniedPeers\[0\][\s\S]*deniedPeers\[1\]/);
    expect(checkPeerPolicy({ allowedPeers: ["10.0.0.0/8"], deniedPeers: [] })).toEqual([]);
  });
});

describe("parseCidr", () => {
  it("parses IPv4 and IPv6 ranges and bare addresses", () => {
    const cases: Array<[string, 4 | 6, number, string]> = [
      ["10.0.0.0/8", 4, 8, "10.0.0.0/8"],
      ["0.0.0.0/0", 4, 0, "0.0.0.0/0"],
      ["8.8.8.8", 4, 32, "8.8.8.8/32"],
      ["255.255.255.255/32", 4, 32, "255.255.255.255/32"],
      ["::", 6, 128, "::/128"],
      ["::/0", 6, 0, "::/0"],
      ["::1", 6, 128, "::1/128"],
      ["FC00::/7", 6, 7, "fc00::/7"],
      ["2001:0db8:0000:0000:0000:0000:0000:0000/32", 6, 32, "2001:db8::/32"],
      ["::ffff:1.2.3.4", 6, 128, "::ffff:102:304/128"],
      ["::ffff:10.0.0.0/104", 6, 104, "::ffff:a00:0/104"],
      ["64:ff9b::/96", 6, 96, "64:ff9b::/96"],
      ["1:2:3:4:5:6:7::", 6, 128, "1:2:3:4:5:6:7:0/128"],
      ["::2:3:4:5:6:7:8", 6, 128, "0:2:3:4:5:6:7:8/128"],
      ["1:2:3:4:5:6:1.2.3.4/128", 6, 128, "1:2:3:4:5:6:102:304/128"],
      ["1::1.2.3.4", 6, 128, "1::102:304/128"],
    ];
    for (const [text, family, prefixLength, canonical] of cases) {
      const result = parseCidr(text);
      expect(result, text).toMatchObject({ ok: true, cidr: { family, prefixLength, text: canonical } });
    }
    const mapped = parseCidr("::ffff:1.2.3.4");
    expect(mapped.ok && [...mapped.cidr.bytes]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
    const v4 = parseCidr("192.168.0.0/16");
    expect(v4.ok && [...v4.cidr.bytes]).toEqual([192, 168, 0, 0]);
  });

  it("rejects malformed ranges with a reason", () => {
    const cases: Array<[string, RegExp]> = [
      ["", /empty/],
      ["10.0.0.0/33", /prefix length 33 is over 32 for IPv4/],
      ["::/129", /prefix length 129 is over 128 for IPv6/],
      ["10.0.0.0/", /missing prefix length/],
      ["10.0.0.0/-1", /not a number/],
      ["10.0.0.0/8/8", /not a number/],
      ["10.0.0.0/ 8", /not a number/],
      ["10.0.0.0/1000", /not a number/],
      ["10.0.0.0/08", /leading zero/],
      ["256.0.0.0/8", /octet 256 is over 255/],
      ["1.2.3.999", /octet 999 is over 255/],
      ["1.2.3.1000", /more than 3 digits/],
      ["010.0.0.0/8", /leading zero/],
      ["1.2.3", /3 octets; it needs 4/],
      ["10/8", /1 octet; it needs 4/],
      ["1.2.3.4.5", /more than 4 octets/],
      ["1..2.3", /empty octet/],
      ["1.2.3.", /ends with a '\.'/],
      ["1.2.3.4a", /unexpected character "a"/],
      ["1:2:3:4:5:6:7:8:9", /more than 8 groups/],
      ["1:2:3:4:5:6:7", /7 groups; it needs 8/],
      ["1:2:3:4:5:6:7:8::", /more than 8 groups|at least one zero group/],
      ["1:2:3:4::5:6:7:8", /at least one zero group/],
      ["1::2::3", /'::' more than once/],
      [":::", /':::'/],
      [":1::", /starts with a single ':'/],
      ["1::2:", /ends with a single ':'/],
      ["12345::", /more than 4 hex digits/],
      ["g::", /unexpected character "g"/],
      ["::ffff:1.2.3.4.5", /embedded IPv4 address has more than 4 octets/],
      ["::ffff:1.2.3.256", /embedded IPv4 octet 256/],
      ["1:2:3:4:5:6:7:1.2.3.4", /last 32 bits/],
      ["1.2.3.4::", /embedded unexpected character ":"/],
      ["fe80::1%eth0/64", /zone id/],
      [" 10.0.0.0/8", /whitespace/],
      ["10.0.0.0/8 ", /whitespace/],
      ["10.1.2.3/8", /did you mean 10\.0\.0\.0\/8\?/],
      ["fc00::1/7", /did you mean fc00::\/7\?/],
      ["2001:db8::1/32", /did you mean 2001:db8::\/32\?/],
      ["localhost", /unexpected character "l"/],
    ];
    for (const [text, pattern] of cases) {
      const result = parseCidr(text);
      expect(result.ok, text).toBe(false);
      if (!result.ok) {
        expect(result.reason, text).toMatch(pattern);
        expect(result.reason.startsWith(JSON.stringify(text)), text).toBe(true);
      }
    }
  });
});

describe("address text parsing", () => {
  it("accepts and refuses the same address text as node:net, except zone ids", () => {
    const pieces = ["0", "1", "ff", "ffff", "10000", "a", ":", ":", "::", ".", "1.2.3.4", "255", "256", "01", "00", "g", "%", "eth0", ""];
    let seed = 99;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let compared = 0;
    for (let n = 0; n < 20_000; n++) {
      let text = "";
      const length = 1 + random(12);
      for (let k = 0; k < length; k++) text += pieces[random(pieces.length)];
      if (text.includes("%")) continue;
      const ours = parseIpAddress(text);
      expect(ours.ok ? ours.family : 0, text).toBe(isIP(text));
      compared++;
    }
    expect(compared).toBeGreaterThan(10_000);
  });

  it("reads IPv4 as an unsigned 32-bit number", () => {
    expect(readIpv4("255.255.255.255")).toBe(0xffffffff);
    expect(readIpv4("1.2.3.4")).toBe(0x01020304);
    expect(readIpv4("0.0.0.0")).toBe(0);
    expect(readIpv4("x.0.0.0")).toMatch(/unexpected character/);
  });
});
