/**
 * The NAT lab's network: a small "internet" and two homes, each behind a NAT router of its own, built
 * with `ip netns`, veth pairs, a bridge and iptables. Meant to run INSIDE the fresh network and mount
 * namespaces the test made (nat-lab.test.ts → runInNetns → enter-lab.sh): it refuses to touch the
 * network when the namespace it runs in has anything but loopback, and it mounts a private tmpfs on
 * /run/netns first, so the namespace names can clash with nothing on the host and vanish with the lab.
 *
 *                         lab root namespace (the test's controller, 198.51.100.254)
 *                                   bridge "internet" 198.51.100.0/24
 *        ┌─────────────────────────────┼──────────────────────────────┐
 *   pub 198.51.100.1            nat1 198.51.100.11               nat2 198.51.100.12
 *   Worker + relay                 │ MASQUERADE                    │ MASQUERADE
 *                               10.0.1.1                         10.0.2.1
 *                                  │                               │
 *                            home1 10.0.1.2                  home2 10.0.2.2
 *
 * The public segment uses TEST-NET-2 (198.51.100.0/24, RFC 5737): it can never be a real address, and our
 * relay denies it as a peer by default, so the lab passes `--allowed-peer-ip` (LAB.publicCidr) to it.
 *
 * No namespace forwards except the two routers, and the lab root routes nothing: a packet from a home
 * to the other home's LAN address leaves through its router towards the internet's default gateway
 * (the lab root) and is dropped there, as the internet drops private addresses.
 *
 * The routers are one of two kinds:
 * - "symmetric": `MASQUERADE --random-fully`, a fresh random public port for every new flow (every
 *   destination address and port), so the port a STUN server sees is useless to anyone else.
 * - "cone": plain `MASQUERADE`, which keeps the home's source port whenever it is free on the WAN address
 *   (always, in this lab), so one home socket shows the same public address and port to every destination:
 *   endpoint-independent mapping. Filtering stays address- and port-dependent (only replies to flows the
 *   home started come in), a port-restricted cone NAT: ICE gets through it because both sides send
 *   connectivity checks, each opening its own router for the other's.
 * Both kinds drop unsolicited inbound traffic in FORWARD and INPUT. Dropping it in INPUT also matters for
 * the cone: a check arriving before the home has sent its own would otherwise leave a conntrack entry for
 * the router's port, and the home's later packet would be given a different port.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { networkInterfaces } from "node:os";

export type NatKind = "symmetric" | "cone";

export interface HomeAddresses {
  /** The home's namespace: where its WebRTC peer runs. */
  namespace: "home1" | "home2";
  router: "nat1" | "nat2";
  /** The home's own (LAN) address. */
  address: string;
  routerLan: string;
  /** The router's public address: what the internet sees of this home. */
  routerWan: string;
}

export const LAB = {
  publicCidr: "198.51.100.0/24",
  publicPrefix: 24,
  /** The lab root namespace's leg on the bridge: the internet's gateway, and the test's controller. */
  controller: "198.51.100.254",
  /** The `pub` namespace: Worker and relay. */
  pub: "198.51.100.1",
  /** The relay's UDP and TCP listening port in pub (STUN and TURN). */
  relayPort: 3478,
  homes: {
    home1: { namespace: "home1", router: "nat1", address: "10.0.1.2", routerLan: "10.0.1.1", routerWan: "198.51.100.11" },
    home2: { namespace: "home2", router: "nat2", address: "10.0.2.2", routerLan: "10.0.2.1", routerWan: "198.51.100.12" },
  } satisfies Record<string, HomeAddresses>,
} as const;

export type HomeName = keyof typeof LAB.homes;
export const HOME_NAMES: readonly HomeName[] = ["home1", "home2"];

export function otherHome(home: HomeName): HomeName {
  return home === "home1" ? "home2" : "home1";
}

/** Which kind of NAT each home sits behind. */
export type LabShape = Record<HomeName, NatKind>;

const COMMAND_TIMEOUT_MS = 10_000;
const BRIDGE = "internet";
const LAN_PREFIX = 24;

type Command = readonly string[];

/** `ip netns exec <ns> …` */
function inNs(namespace: string, ...command: string[]): Command {
  return ["ip", "netns", "exec", namespace, ...command];
}

/** Forwarding off (or on) in a namespace; new namespaces may inherit the host's setting, so set it always. */
function forwarding(namespace: string | null, on: boolean): Command {
  const sysctl = ["sysctl", "-qw", `net.ipv4.ip_forward=${on ? 1 : 0}`];
  return namespace === null ? sysctl : inNs(namespace, ...sysctl);
}

/**
 * The lab speaks IPv4 only: IPv6 off in a namespace before its interfaces exist, so no link-local IPv6
 * address appears (a peer would gather it as a host candidate, and the homes' address checks would see it).
 */
function ipv6Off(namespace: string | null): Command[] {
  return ["all", "default"].map((scope) => {
    const sysctl = ["sysctl", "-qw", `net.ipv6.conf.${scope}.disable_ipv6=1`];
    return namespace === null ? sysctl : inNs(namespace, ...sysctl);
  });
}

/**
 * Packet counters the lab reads after a call (iptables rules without a target count and pass on), named
 * by their comment. On each router, about the other home's public address:
 * - `to-other-home`: UDP the home sent straight to the other home (ICE checks, and data on a direct path);
 * - `from-other-home-forwarded`: UDP from the other home that matched a mapping and was let in;
 * - `from-other-home-unsolicited`: UDP from the other home that matched no mapping and hit the router
 *   itself, where it is dropped (what a symmetric NAT does to checks sent to a port it gave to someone else).
 * In `pub`, the relay's own traffic: `relay-udp-in`, `relay-tcp-in`, `relay-udp-out`, `relay-tcp-out`.
 */
export const ROUTER_COUNTERS = ["to-other-home", "from-other-home-forwarded", "from-other-home-unsolicited"] as const;
export const PUB_COUNTERS = ["relay-udp-in", "relay-tcp-in", "relay-udp-out", "relay-tcp-out"] as const;
export type RouterCounter = (typeof ROUTER_COUNTERS)[number];
export type PubCounter = (typeof PUB_COUNTERS)[number];

function counted(name: RouterCounter | PubCounter): string[] {
  return ["-m", "comment", "--comment", name];
}

/** The iptables rules of one router (see the header for what each kind means); `otherWan` is the other home's router. */
export function natRules(kind: NatKind, otherWan: string): string[][] {
  const masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE", ...(kind === "symmetric" ? ["--random-fully"] : [])];
  return [
    masquerade,
    ["-A", "FORWARD", "-i", "lan", "-o", "wan", "-d", otherWan, "-p", "udp", ...counted("to-other-home")],
    ["-A", "FORWARD", "-i", "wan", "-o", "lan", "-s", otherWan, "-p", "udp", ...counted("from-other-home-forwarded")],
    ["-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT"],
    ["-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ["-A", "FORWARD", "-j", "DROP"],
    ["-A", "INPUT", "-i", "wan", "-s", otherWan, "-p", "udp", ...counted("from-other-home-unsolicited")],
    ["-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
    ["-A", "INPUT", "-i", "wan", "-j", "DROP"],
  ];
}

/** Counting rules in `pub` for the relay's listening port. */
export function pubCounterRules(relayPort: number): string[][] {
  const port = String(relayPort);
  return [
    ["-A", "INPUT", "-p", "udp", "--dport", port, ...counted("relay-udp-in")],
    ["-A", "INPUT", "-p", "tcp", "--dport", port, ...counted("relay-tcp-in")],
    ["-A", "OUTPUT", "-p", "udp", "--sport", port, ...counted("relay-udp-out")],
    ["-A", "OUTPUT", "-p", "tcp", "--sport", port, ...counted("relay-tcp-out")],
  ];
}

/** Every command that builds the lab, in order; run in the lab root namespace. Pure, for reading and testing. */
export function labCommands(shape: LabShape): Command[] {
  const commands: Command[] = [];
  const namespaces = ["pub", ...HOME_NAMES.flatMap((home) => [LAB.homes[home].router, LAB.homes[home].namespace])];
  for (const namespace of namespaces) {
    commands.push(["ip", "netns", "add", namespace], ...ipv6Off(namespace), ["ip", "-n", namespace, "link", "set", "lo", "up"]);
  }
  // The internet: a bridge in the lab root, which also holds the default gateway address and routes nothing.
  commands.push(
    ...ipv6Off(null),
    forwarding(null, false),
    ["ip", "link", "add", BRIDGE, "type", "bridge"],
    ["ip", "addr", "add", `${LAB.controller}/${LAB.publicPrefix}`, "dev", BRIDGE],
    ["ip", "link", "set", BRIDGE, "up"],
  );
  // A namespace's leg on the internet: veth "<ns>-wan" on the bridge, "<inside>" in the namespace.
  const attach = (namespace: string, inside: string, address: string) => {
    commands.push(
      ["ip", "link", "add", `${namespace}-wan`, "type", "veth", "peer", "name", inside, "netns", namespace],
      ["ip", "link", "set", `${namespace}-wan`, "master", BRIDGE, "up"],
      ["ip", "-n", namespace, "addr", "add", `${address}/${LAB.publicPrefix}`, "dev", inside],
      ["ip", "-n", namespace, "link", "set", inside, "up"],
      // A default route even for pub: a TURN server without one fails sends to unroutable peers (ENETUNREACH).
      ["ip", "-n", namespace, "route", "add", "default", "via", LAB.controller],
    );
  };
  attach("pub", "eth0", LAB.pub);
  commands.push(forwarding("pub", false), ...pubCounterRules(LAB.relayPort).map((rule) => inNs("pub", "iptables", ...rule)));
  for (const home of HOME_NAMES) {
    const { namespace, router, address, routerLan, routerWan } = LAB.homes[home];
    attach(router, "wan", routerWan);
    commands.push(
      ["ip", "-n", router, "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", namespace],
      ["ip", "-n", router, "addr", "add", `${routerLan}/${LAN_PREFIX}`, "dev", "lan"],
      ["ip", "-n", router, "link", "set", "lan", "up"],
      ["ip", "-n", namespace, "addr", "add", `${address}/${LAN_PREFIX}`, "dev", "eth0"],
      ["ip", "-n", namespace, "link", "set", "eth0", "up"],
      ["ip", "-n", namespace, "route", "add", "default", "via", routerLan],
      forwarding(namespace, false),
      forwarding(router, true),
      ...natRules(shape[home], LAB.homes[otherHome(home)].routerWan).map((rule) => inNs(router, "iptables", ...rule)),
    );
  }
  return commands;
}

/** Throws unless this process's network namespace has nothing but loopback (the one the test made). */
export function assertFreshNamespace(): void {
  const others = Object.entries(networkInterfaces())
    .filter(([, addresses]) => (addresses ?? []).some((address) => !address.internal))
    .map(([name]) => name);
  if (others.length > 0) {
    throw new Error(`refusing to build the NAT lab outside a fresh network namespace (interfaces up here: ${others.join(", ")}); run it through test/e2e/nat-lab.test.ts`);
  }
}

function run(command: Command): string {
  const [file, ...args] = command;
  try {
    return execFileSync(file!, args, { encoding: "utf8", timeout: COMMAND_TIMEOUT_MS, stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`\`${command.join(" ")}\` failed: ${stderr.trim() || (error instanceof Error ? error.message : String(error))}`);
  }
}

/**
 * Builds the lab in the current (fresh) namespace. /run/netns becomes a tmpfs private to this mount
 * namespace first, so `ip netns add` names live only as long as the lab.
 */
export function buildLab(shape: LabShape): { commands: number } {
  assertFreshNamespace();
  run(["mount", "--make-rprivate", "/"]);
  mkdirSync("/run/netns", { recursive: true });
  run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "relaykit-nat-lab", "/run/netns"]);
  const commands = labCommands(shape);
  for (const command of commands) run(command);
  return { commands: commands.length };
}

/** Zeroes every packet counter of the lab, e.g. after the preconditions' probes. */
export function resetCounters(): void {
  for (const namespace of ["pub", "nat1", "nat2"]) run(inNs(namespace, "iptables", "-Z"));
}

/** The named counters of one namespace (packets), from `iptables-save -c`. */
function readNamedCounters(namespace: string): Record<string, number> {
  const counters: Record<string, number> = {};
  for (const line of run(inNs(namespace, "iptables-save", "-c", "-t", "filter")).split("\n")) {
    const match = /^\[(\d+):\d+\] .*--comment "?([a-z-]+)"?/.exec(line);
    if (match !== null) counters[match[2]!] = Number(match[1]);
  }
  return counters;
}

export interface LabCounters {
  routers: Record<HomeName, Record<RouterCounter, number>>;
  pub: Record<PubCounter, number>;
}

export function readCounters(): LabCounters {
  const pick = <K extends string>(counters: Record<string, number>, names: readonly K[]) =>
    Object.fromEntries(names.map((name) => [name, counters[name] ?? -1])) as Record<K, number>;
  return {
    routers: {
      home1: pick(readNamedCounters(LAB.homes.home1.router), ROUTER_COUNTERS),
      home2: pick(readNamedCounters(LAB.homes.home2.router), ROUTER_COUNTERS),
    },
    pub: pick(readNamedCounters("pub"), PUB_COUNTERS),
  };
}

/** The router's rules as iptables lists them, for the summary (what the lab really ran). */
export function routerRules(router: "nat1" | "nat2"): string[] {
  const lines = [...run(inNs(router, "iptables", "-S")).split("\n"), ...run(inNs(router, "iptables", "-t", "nat", "-S")).split("\n")];
  return lines.filter((line) => line.startsWith("-A "));
}
