/**
 * The relay's settings, named as coturn names them so operators can carry their habits over
 * (`listening-port`, `realm`, `static-auth-secret`, `min-port`, `max-port`, `external-ip`, …).
 *
 * Where a setting comes from, for each option on its own:
 *
 *   command-line flag  >  environment variable  >  config file  >  default
 *
 * Every option (except --help) can be given as an environment variable named `RELAY_` + the option
 * in upper snake case: `--min-port` → `RELAY_MIN_PORT`, `--static-auth-secret-file` →
 * `RELAY_STATIC_AUTH_SECRET_FILE`. Switches take `true`, `false`, `1` or `0`
 * (`RELAY_ALLOW_LOOPBACK_PEERS=1`, `RELAY_NO_TCP=true`); options that may be repeated take a
 * comma-separated list (`RELAY_LISTENING_IP=127.0.0.1,::1`). An empty variable counts as unset (as
 * `VAR=` in a compose file means). A flag given on the command line replaces the variable entirely:
 * lists are not merged. `RELAY_SECRETS` (comma-separated) is kept as another name for
 * `RELAY_STATIC_AUTH_SECRET`; when both are set, both lists are used.
 *
 * Parsing reads nothing but its arguments and the files the options name: `--cert` and `--pkey` must
 * be readable files, and `--static-auth-secret-file` files (Docker secrets) are read here, one secret
 * per line. A checked config or a `RelayConfigError` naming the option (or variable) comes out; no
 * error message ever contains a secret.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from "node:fs";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { FLEET_PATH, type GeoLocation } from "../shared/fleet/protocol.js";
import { MIN_FLEET_KEY_LENGTH, readFleetKeys } from "../shared/fleet/token.js";
import { DEFAULT_CLOCK_SKEW_SECONDS, MAX_CREDENTIAL_TTL_SECONDS } from "../shared/turn/credentials.js";
import { DEFAULT_NONCE_LIFETIME_SECONDS } from "./auth/nonce.js";
import { ConfigFileError, readConfigFile, type ConfigFileOptions, type OptionKind } from "./config-file.js";
import { checkFleetUrl, checkLocation, checkPublicUrls, checkRegion, checkRelayId, relayIdFromHostname, type Checked } from "./fleet/settings.js";
import { publicHost } from "./fleet/public-urls.js";
import { parseCidr } from "./policy/peer-filter.js";
import { encodeText, type TextAttributeType } from "./stun/attributes.js";
import { AttributeType } from "./stun/constants.js";
import type { TcpIo } from "./transport/native-stream.js";
import type { UdpIo } from "./transport/udp-socket.js";

const UDP_IO_CHOICES: readonly UdpIo[] = ["auto", "native", "dgram"];
const TCP_IO_CHOICES: readonly TcpIo[] = ["auto", "native", "net"];

export interface ExternalAddress {
  /** Advertised to clients in XOR-RELAYED-ADDRESS. */
  public: string;
  /** The local relay address it stands for; absent: every relay address of that family. */
  private?: string;
}

export interface RelayConfig {
  listeningIps: string[];
  /** UDP and TCP (each unless turned off by `udp` / `tcp`); 0 picks a free port. */
  listeningPort: number;
  /** Listen for STUN/TURN over UDP on listening-port [coturn: no-udp turns it off]. */
  udp: boolean;
  /** Listen for STUN/TURN over TCP on listening-port [coturn: no-tcp turns it off]. */
  tcp: boolean;
  /** TLS (turns:) port; set exactly when certFile and keyFile are (5349 by default, 443 to get through firewalls). */
  tlsListeningPort: number | null;
  /** PEM certificate chain for TLS; checked readable at parse time. Null with keyFile. */
  certFile: string | null;
  /** PEM private key for TLS; checked readable at parse time. Null with certFile. */
  keyFile: string | null;
  /** Addresses relay sockets bind to, at most one per family. */
  relayIps: string[];
  externalIps: ExternalAddress[];
  minPort: number;
  maxPort: number;
  realm: string;
  /**
   * The Worker's TURN_SECRETS: the first is the Worker's signing secret, all are accepted. From
   * --static-auth-secret (or RELAY_STATIC_AUTH_SECRET / RELAY_SECRETS), then from the lines of the
   * --static-auth-secret-file files (or RELAY_STATIC_AUTH_SECRET_FILE); trimmed, no blanks, no repeats.
   */
  secrets: string[];
  allowLoopbackPeers: boolean;
  allowedPeerIps: string[];
  deniedPeerIps: string[];
  /** Allocations one TURN user may hold at once; 0: no limit [user-quota]. */
  userQuota: number;
  /**
   * Allocations clients at one IPv4 address (or IPv6 /64) may hold at once, over every transport;
   * 0: no limit [max-allocations-per-ip].
   */
  maxAllocationsPerIp: number;
  /** Allocations the relay holds at once; 0: as many as the port range allows. */
  totalQuota: number;
  /** Permissions (peer addresses) one allocation may hold at once [max-permissions]. */
  maxPermissionsPerAllocation: number;
  /** Channel bindings one allocation may hold at once [max-channels]. */
  maxChannelsPerAllocation: number;
  /** Bytes per second relayed for one allocation, both directions together; 0: no limit [max-bps]. */
  maxBps: number;
  /** Bytes per second relayed for all allocations together; 0: no limit [bps-capacity]. */
  bpsCapacity: number;
  /** Seconds: the longest lifetime a client may ask for. */
  maxAllocateLifetime: number;
  /** Seconds a nonce stays fresh before the client is asked to retry with a new one (438) [stale-nonce]. */
  staleNonceSeconds: number;
  /**
   * Answers per second to one source IP for requests that carry no valid credential (Binding, 401 and
   * 438 challenges); 0: no limit [unauthenticated-rate]. A token bucket of `unauthenticatedBurst`.
   */
  unauthenticatedRate: number;
  /** How many such answers one source IP may get at once before the rate applies [unauthenticated-burst]. */
  unauthenticatedBurst: number;
  /**
   * TCP and TLS connections one source IP may hold at once, both listeners together; 0: no limit
   * [max-connections-per-ip; coturn has no such option]. Past it a new connection is closed at once.
   */
  maxConnectionsPerIp: number;
  /** Seconds a TCP/TLS connection may stay open without an allocation [max-allocate-timeout, as coturn]. */
  maxAllocateTimeoutSeconds: number;
  /**
   * End an allocation once the credential that created it has expired (plus the clock skew): data
   * stops and the client's next request gets 401. Off: an allocation outlives its credential while
   * it is refreshed, as in coturn.
   */
  strictExpiry: boolean;
  /**
   * Seconds: credentials whose expiry lies further ahead are refused [max-credential-ttl]. At most
   * shared/turn's maximum (48 h), which the Worker's TURN_MAX_TTL may not exceed either; lower it to
   * match a Worker that issues shorter credentials.
   */
  maxCredentialTtl: number;
  /** Seconds a credential's expiry may be off between the Worker's clock and this host's. */
  credentialClockSkew: number;
  /** SOFTWARE attribute in responses; none by default (it only helps fingerprinting and amplification). */
  software: string | null;
  /** The config file the options were read from, if any (read again on SIGHUP). */
  configFile: string | null;
  /**
   * What carries UDP [udp-io]: `native` (the batched C addon, Linux; about a third less relay CPU
   * than dgram under uclient's loads), `dgram` (Node's sockets), or `auto`: native when the addon loads, else dgram.
   */
  udpIo: UdpIo;
  /**
   * What carries TURN over plain TCP [tcp-io]: `native` (the same addon: accept, read and write in C),
   * `net` (Node's sockets), or `auto`: native when the addon loads, else net. TLS is always Node's;
   * so is TCP in a worker process of --relay-threads (the primary accepts and hands connections on).
   */
  tcpIo: TcpIo;
  /** The lowest level of log line written [log-level]. */
  logLevel: LogLevel;
  /** The metrics and health listener (`--prometheus`); null: none. */
  prometheus: PrometheusConfig | null;
  /**
   * Seconds SIGTERM waits for live allocations to end before closing them [drain-timeout]; new
   * allocations are refused meanwhile. 0: close them at once.
   */
  drainTimeoutSeconds: number;
  /** A STUN server asked at start which public address each relay IP maps to [external-ip-stun-server]. */
  externalIpStunServer: StunServerAddress | null;
  /** The Worker's fleet this relay registers with (`--fleet-url`); null: none, the relay stands alone. */
  fleet: FleetConfig | null;
  /**
   * Worker processes relaying [relay-threads, coturn's name]: 1 is one event loop, as before;
   * `auto`, the CPUs the process may use (relay/cluster/available-cpus.ts), resolved at start.
   */
  relayThreads: number | "auto";
}

/**
 * A relay in a fleet keeps one WebSocket to the Worker's fleet object, registers what clients should
 * use to reach it and reports its load every 5 s (relay/fleet/). The fleet only steers: the relay
 * serves the same whether or not the channel is up.
 */
export interface FleetConfig {
  /** `wss://<worker>/v1/fleet` (`ws://` only to a loopback host) [fleet-url]. */
  url: string;
  /**
   * The fleet key(s), the Worker's FLEET_KEYS: from --fleet-key-file (one per line) or
   * RELAY_FLEET_KEY (comma-separated); at least 32 characters each. The first signs the relay's
   * tokens. Never logged; read again on SIGHUP.
   */
  keys: string[];
  /** The relay's name in the fleet [fleet-relay-id]; default: the host name, made to fit the relay id rule. */
  relayId: string;
  /** A label for operators [fleet-region]; default "". */
  region: string;
  /** Where the relay is [fleet-location]; null: not said (the fleet orders it after located relays). */
  location: GeoLocation | null;
  /**
   * `turn:`/`turns:` URLs registered [public-url]; empty: derived at start from the first
   * --external-ip (else the listening IP) and the bound listeners (relay/fleet/public-urls.ts).
   */
  publicUrls: string[];
}

export interface PrometheusConfig {
  address: string;
  port: number;
  /** Bearer token /metrics asks for, read from --prometheus-token-file; null: none asked. */
  token: string | null;
}

export interface StunServerAddress {
  /** An IP address or a host name (resolved at start). */
  host: string;
  port: number;
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** RFC 8656 §7.2: an allocation without a LIFETIME request lives 10 minutes. */
export const DEFAULT_ALLOCATION_LIFETIME_SECONDS = 600;
/** RFC 8656 §9: permissions last 5 minutes. */
export const PERMISSION_LIFETIME_SECONDS = 300;
/** RFC 8656 §12: channel bindings last 10 minutes. */
export const CHANNEL_LIFETIME_SECONDS = 600;
/**
 * The shortest --max-allocate-lifetime. Clients refresh at half a short lifetime (Chromium does
 * below two minutes), so a few seconds lets a test watch a call survive several refreshes.
 */
export const MIN_ALLOCATE_LIFETIME_SECONDS = 10;

export const RELAY_DEFAULTS = {
  listeningIps: ["0.0.0.0"],
  listeningPort: 3478,
  /** Used when --cert and --pkey are given; 443 is the usual alternative. */
  tlsListeningPort: 5349,
  minPort: 49152,
  maxPort: 65535,
  realm: "relaykit",
  /**
   * Safe on a public host, never in the way of a call: one peer of a 16-peer mesh holds at most
   * 15 connections × 3 relay URLs (UDP, TCP, TLS) × 2 local addresses × 2 (an ICE restart keeps the
   * old allocations until the new ones work) = 180 allocations under one credential.
   */
  userQuota: 200,
  /** The whole 16-peer room behind one NAT: 16 × 90 (one local address each, restarts overlapping) = 1,440. */
  maxAllocationsPerIp: 2000,
  totalQuota: 0,
  maxAllocateLifetime: 3600,
  maxPermissionsPerAllocation: 32,
  maxChannelsPerAllocation: 32,
  maxBps: 0,
  bpsCapacity: 0,
  staleNonceSeconds: DEFAULT_NONCE_LIFETIME_SECONDS,
  unauthenticatedRate: 20,
  unauthenticatedBurst: 40,
  /**
   * Like --max-allocations-per-ip, sized for a 16-peer mesh behind one NAT falling back to TCP and
   * TLS: 16 peers × 15 connections × 2 (turn:?transport=tcp and turns:) = 480 connections, one per
   * allocation. One host then holds at most 5% of a listener's 10,000 connections.
   */
  maxConnectionsPerIp: 500,
  /** coturn's default: a client allocates within a round trip or two of connecting. */
  maxAllocateTimeoutSeconds: 60,
  credentialClockSkew: DEFAULT_CLOCK_SKEW_SECONDS,
  maxCredentialTtl: MAX_CREDENTIAL_TTL_SECONDS,
  /** coturn's Prometheus port. */
  prometheusPort: 9641,
  /** Loopback: metrics tell a lot about the traffic, so publishing them is a choice. */
  prometheusAddress: "127.0.0.1",
  drainTimeoutSeconds: 0,
  logLevel: "info",
  udpIo: "auto",
  tcpIo: "auto",
  stunPort: 3478,
} as const;

/** The shortest --max-credential-ttl: the Worker's shortest TURN_TTL is 10 s, but a minute is the least a real deployment issues. */
export const MIN_CREDENTIAL_TTL_SECONDS = 60;

/** The longest --max-allocate-timeout: an hour; longer only lets idle connections hold file descriptors. */
export const MAX_ALLOCATE_TIMEOUT_SECONDS = 3600;

/** The most --relay-threads: more worker processes than this only share the same cores. */
export const MAX_RELAY_THREADS = 128;

/** The longest --drain-timeout: a day, as the longest allocation lifetime. */
export const MAX_DRAIN_TIMEOUT_SECONDS = 86_400;

export class RelayConfigError extends Error {
  override name = "RelayConfigError";
}

// ---------------------------------------------------------------------------------------------------------------
// The options: one table drives parseArgs, the environment variables and --help.

interface OptionSpec {
  readonly name: string;
  /** value: one string; list: repeatable flag, comma-separated variable; switch: a flag with no value. */
  readonly kind: "value" | "list" | "switch";
  /** Placeholder for the value in --help. */
  readonly arg?: string;
  readonly help: string;
  /** What applies when neither the flag nor the variable is given. */
  readonly fallback: string;
  /** Other variables read for this option, after its own. */
  readonly aliases?: readonly string[];
}

const CHANNEL_NUMBERS = 0x4fff - 0x4000 + 1;
/** The environment variable that holds the fleet key itself (there is no flag: a key on a command line is seen by every `ps`). */
export const FLEET_KEY_ENV = "RELAY_FLEET_KEY";
const MAX_BYTES_PER_SECOND = 100_000_000_000;

const OPTION_GROUPS: readonly (readonly [string, readonly OptionSpec[]])[] = [
  [
    "Listening",
    [
      { name: "listening-ip", kind: "list", arg: "IP", help: "addresses to listen on", fallback: "0.0.0.0" },
      { name: "listening-port", kind: "value", arg: "N", help: "UDP and TCP port for STUN/TURN (0: any free port)", fallback: String(RELAY_DEFAULTS.listeningPort) },
      { name: "no-udp", kind: "switch", help: "do not listen on UDP", fallback: "UDP on" },
      { name: "no-tcp", kind: "switch", help: "do not listen on TCP", fallback: "TCP on" },
      {
        name: "tls-listening-port",
        kind: "value",
        arg: "N",
        help: "TLS (turns:) port; needs --cert and --pkey; 443 gets through most firewalls",
        fallback: `${RELAY_DEFAULTS.tlsListeningPort} with --cert and --pkey, else no TLS`,
      },
      { name: "cert", kind: "value", arg: "FILE", help: "PEM certificate chain for TLS (with --pkey; must be readable)", fallback: "none" },
      { name: "pkey", kind: "value", arg: "FILE", help: "PEM private key for TLS (with --cert; must be readable)", fallback: "none" },
    ],
  ],
  [
    "Relaying",
    [
      { name: "relay-ip", kind: "list", arg: "IP", help: "address relay sockets bind to, one per family", fallback: "the listening IPs" },
      { name: "external-ip", kind: "list", arg: "PUBLIC[/PRIVATE]", help: "address advertised for a relay IP behind 1:1 NAT", fallback: "none" },
      { name: "min-port", kind: "value", arg: "N", help: "lowest relay port", fallback: String(RELAY_DEFAULTS.minPort) },
      { name: "max-port", kind: "value", arg: "N", help: "highest relay port", fallback: String(RELAY_DEFAULTS.maxPort) },
      { name: "allow-loopback-peers", kind: "switch", help: "allow relaying to 127.0.0.0/8 and ::1 (development only)", fallback: "off" },
      { name: "allowed-peer-ip", kind: "list", arg: "CIDR", help: "allow these peers even inside the default denied ranges", fallback: "none" },
      { name: "denied-peer-ip", kind: "list", arg: "CIDR", help: "refuse these peers too", fallback: "none" },
    ],
  ],
  [
    "Authentication",
    [
      { name: "realm", kind: "value", arg: "TEXT", help: "authentication realm", fallback: RELAY_DEFAULTS.realm },
      {
        name: "static-auth-secret",
        kind: "list",
        arg: "TEXT",
        help: "the Worker's TURN secret(s)",
        fallback: "none (a secret or a secret file is required)",
        aliases: ["RELAY_SECRETS"],
      },
      {
        name: "static-auth-secret-file",
        kind: "list",
        arg: "FILE",
        help: "read secrets from a file, one per line (Docker secrets)",
        fallback: "none",
      },
      { name: "stale-nonce", kind: "value", arg: "N", help: "seconds a nonce stays fresh (30-86400)", fallback: String(RELAY_DEFAULTS.staleNonceSeconds) },
      { name: "strict-expiry", kind: "switch", help: "end an allocation when the credential that made it expires (without it, an allocation lives while it is refreshed, as in coturn)", fallback: "off" },
      {
        name: "max-credential-ttl",
        kind: "value",
        arg: "N",
        help: `refuse credentials that expire more than N seconds ahead (${MIN_CREDENTIAL_TTL_SECONDS}-${MAX_CREDENTIAL_TTL_SECONDS}: the Worker's TURN_MAX_TTL is capped at the same maximum)`,
        fallback: String(RELAY_DEFAULTS.maxCredentialTtl),
      },
      { name: "credential-clock-skew", kind: "value", arg: "N", help: "seconds of clock difference allowed on credential expiry", fallback: String(RELAY_DEFAULTS.credentialClockSkew) },
    ],
  ],
  [
    "Limits",
    [
      { name: "user-quota", kind: "value", arg: "N", help: "allocations per user (credential user id) at once (0: no limit)", fallback: String(RELAY_DEFAULTS.userQuota) },
      { name: "max-allocations-per-ip", kind: "value", arg: "N", help: "allocations clients at one IP address may hold at once, over every transport (0: no limit)", fallback: String(RELAY_DEFAULTS.maxAllocationsPerIp) },
      { name: "total-quota", kind: "value", arg: "N", help: "allocations at once (0: as many as the port range allows)", fallback: "0" },
      { name: "max-allocate-lifetime", kind: "value", arg: "N", help: "longest allocation lifetime in seconds (10-86400; below 60 only for tests: clients refresh at half the lifetime)", fallback: String(RELAY_DEFAULTS.maxAllocateLifetime) },
      { name: "max-permissions", kind: "value", arg: "N", help: "permissions per allocation (1-10000)", fallback: String(RELAY_DEFAULTS.maxPermissionsPerAllocation) },
      { name: "max-channels", kind: "value", arg: "N", help: `channel bindings per allocation (1-${CHANNEL_NUMBERS})`, fallback: String(RELAY_DEFAULTS.maxChannelsPerAllocation) },
      { name: "max-bps", kind: "value", arg: "N", help: "bytes per second per allocation (0: no limit)", fallback: "0" },
      { name: "bps-capacity", kind: "value", arg: "N", help: "bytes per second for all allocations together (0: no limit)", fallback: "0" },
      {
        name: "unauthenticated-rate",
        kind: "value",
        arg: "N",
        help: "answers per second per source IP to requests without a valid credential (Binding, 401/438 challenges; 0: no limit)",
        fallback: String(RELAY_DEFAULTS.unauthenticatedRate),
      },
      { name: "unauthenticated-burst", kind: "value", arg: "N", help: "such answers one source IP may get at once", fallback: String(RELAY_DEFAULTS.unauthenticatedBurst) },
      {
        name: "max-connections-per-ip",
        kind: "value",
        arg: "N",
        help: "TCP and TLS connections one source IP may hold at once, both listeners together; more are closed at once (0: no limit; coturn has no such option)",
        fallback: String(RELAY_DEFAULTS.maxConnectionsPerIp),
      },
      {
        name: "max-allocate-timeout",
        kind: "value",
        arg: "N",
        help: `seconds a TCP/TLS connection may stay open without an allocation, STUN Binding or not (1-${MAX_ALLOCATE_TIMEOUT_SECONDS}; coturn's option)`,
        fallback: String(RELAY_DEFAULTS.maxAllocateTimeoutSeconds),
      },
    ],
  ],
  [
    "Operations",
    [
      { name: "config", kind: "value", arg: "FILE", help: "read options from this file: name=value lines, coturn's turnserver.conf format", fallback: "none" },
      {
        name: "relay-threads",
        kind: "value",
        arg: "N",
        help: `worker processes relaying (1-${MAX_RELAY_THREADS}, or auto: the CPUs this process may use, cgroup quota included); above 1 needs the native UDP I/O`,
        fallback: "auto",
      },
      { name: "udp-io", kind: "value", arg: "IO", help: `UDP I/O: ${UDP_IO_CHOICES.join(", ")} (native: batched C addon, Linux, built by npm run build:native; auto: native when it loads)`, fallback: RELAY_DEFAULTS.udpIo },
      { name: "tcp-io", kind: "value", arg: "IO", help: `TURN over TCP: ${TCP_IO_CHOICES.join(", ")} (native: the same addon; auto: native when it loads; TLS is always Node's)`, fallback: RELAY_DEFAULTS.tcpIo },
      { name: "log-level", kind: "value", arg: "LEVEL", help: `lowest level logged: ${LOG_LEVELS.join(", ")}`, fallback: RELAY_DEFAULTS.logLevel },
      { name: "prometheus", kind: "switch", help: "serve /metrics (Prometheus), /livez and /readyz over HTTP", fallback: "off" },
      { name: "prometheus-port", kind: "value", arg: "N", help: "port of the metrics and health listener", fallback: String(RELAY_DEFAULTS.prometheusPort) },
      { name: "prometheus-address", kind: "value", arg: "IP", help: "address of the metrics and health listener", fallback: RELAY_DEFAULTS.prometheusAddress },
      {
        name: "prometheus-token-file",
        kind: "value",
        arg: "FILE",
        help: "/metrics asks for Authorization: Bearer <the token in this file>; read again on SIGHUP",
        fallback: "no token asked",
      },
      {
        name: "drain-timeout",
        kind: "value",
        arg: "N",
        help: `on SIGTERM (or SIGUSR1, coturn's drain signal), seconds to refuse new allocations and wait for live ones to end (0-${MAX_DRAIN_TIMEOUT_SECONDS}; 0: close them at once)`,
        fallback: String(RELAY_DEFAULTS.drainTimeoutSeconds),
      },
      {
        name: "external-ip-stun-server",
        kind: "value",
        arg: "HOST[:PORT]",
        help: "at start, ask this STUN server the public address of each relay IP and advertise it (instead of --external-ip)",
        fallback: "none",
      },
      { name: "software", kind: "value", arg: "TEXT", help: "SOFTWARE attribute in responses", fallback: "none" },
    ],
  ],
  [
    "Fleet (register with the Worker, which then hands this relay out to nearby callers)",
    [
      {
        name: "fleet-url",
        kind: "value",
        arg: "URL",
        help: `the Worker's fleet endpoint, wss://<worker>${FLEET_PATH} (ws:// only to a loopback host); needs a fleet key`,
        fallback: "none: the relay stands alone",
      },
      {
        name: "fleet-key-file",
        kind: "value",
        arg: "FILE",
        help: `a file holding the fleet key (the Worker's FLEET_KEYS; one per line, the first signs; at least ${MIN_FLEET_KEY_LENGTH} characters each), or give the key in RELAY_FLEET_KEY; read again on SIGHUP`,
        fallback: "none (one of them is required with --fleet-url)",
      },
      { name: "fleet-relay-id", kind: "value", arg: "ID", help: "this relay's name in the fleet (1-64 of A-Z a-z 0-9 _ . -)", fallback: "the host name" },
      { name: "fleet-region", kind: "value", arg: "LABEL", help: "a region label shown to operators (eu-west, fra1...)", fallback: "none" },
      { name: "fleet-location", kind: "value", arg: "LAT,LON", help: "where this relay is, in decimal degrees: callers get the nearest relays first", fallback: "none (ordered after located relays)" },
      {
        name: "public-url",
        kind: "list",
        arg: "URL",
        help: "a turn: or turns: URL clients should use for this relay, registered with the fleet (turns: wants a host name its certificate names)",
        fallback: "turn:/turns: URLs from the first --external-ip (else the listening IP) and the listeners",
      },
    ],
  ],
];

const OPTIONS: readonly OptionSpec[] = OPTION_GROUPS.flatMap(([, options]) => options);
const OPTION_KINDS: ReadonlyMap<string, OptionKind> = new Map(OPTIONS.map((option) => [option.name, option.kind]));

/** The environment variable for an option: `RELAY_` + its name in upper snake case. */
export function relayEnvName(option: string): string {
  return `RELAY_${option.toUpperCase().replace(/-/g, "_")}`;
}

function usageLine(option: OptionSpec): string {
  const flag = `--${option.name}${option.arg === undefined ? "" : ` ${option.arg}`}${option.kind === "list" ? " *" : ""}`;
  const env = [relayEnvName(option.name), ...(option.aliases ?? [])].join(" or ");
  const column = 36;
  const pad = " ".repeat(column);
  const head = `  ${flag}`;
  const first = head.length < column ? `${head.padEnd(column)}${option.help}` : `${head}\n${pad}${option.help}`;
  return `${first}\n${pad}default: ${option.fallback}; env: ${env}`;
}

export const RELAY_USAGE = `relaykit relay: a STUN/TURN server (RFC 8489, RFC 8656) for the Worker's TURN REST credentials

Usage: relay [options]    (options use coturn's names; write --name VALUE or --name=VALUE)

Every option can also be set in the environment as RELAY_ + its name in upper snake case
(--min-port 50000 is RELAY_MIN_PORT=50000). Switches take true, false, 1 or 0 there
(RELAY_ALLOW_LOOPBACK_PEERS=1); options marked * may be repeated on the command line and take a
comma-separated list there (RELAY_LISTENING_IP=127.0.0.1,::1). An empty variable counts as unset.
Precedence, option by option: command-line flag > environment variable > config file > default.
The config file (--config) has one option per line: name=value, or a bare name for a switch; lines
starting with # are comments; options marked * are repeated on several lines. Send SIGHUP to read
the secrets, the TLS certificate and the metrics token again.

${OPTION_GROUPS.map(([title, options]) => `${title}:\n${options.map(usageLine).join("\n")}`).join("\n\n")}

  --help                            this text`;

// ---------------------------------------------------------------------------------------------------------------
// Reading one option from the flags or the environment.

type Env = Readonly<Record<string, string | undefined>>;
type FlagValues = Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;

/** A value and where it came from: `--min-port` or `RELAY_MIN_PORT`, for error messages. */
interface Given<T> {
  readonly value: T;
  readonly from: string;
}

class OptionReader {
  constructor(
    private readonly flags: FlagValues,
    private readonly env: Env,
    private readonly file: ConfigFileOptions = new Map(),
  ) {}

  private envValue(variable: string): string | undefined {
    const raw = this.env[variable];
    return raw === undefined || raw.trim() === "" ? undefined : raw;
  }

  value(name: string): Given<string> | undefined {
    const flag = this.flags[name];
    if (typeof flag === "string") return { value: flag, from: `--${name}` };
    const variable = relayEnvName(name);
    const raw = this.envValue(variable);
    if (raw !== undefined) return { value: raw.trim(), from: variable };
    const inFile = this.file.get(name);
    return inFile === undefined || inFile.values[0] === undefined ? undefined : { value: inFile.values[0], from: inFile.from };
  }

  list(name: string): Given<string[]> | undefined {
    const flag = this.flags[name];
    if (Array.isArray(flag) && flag.length > 0) return { value: flag.map(String), from: `--${name}` };
    const variables = [relayEnvName(name), ...(OPTIONS.find((option) => option.name === name)?.aliases ?? [])];
    const set = variables.filter((variable) => this.envValue(variable) !== undefined);
    if (set.length === 0) {
      const inFile = this.file.get(name);
      return inFile === undefined ? undefined : { value: inFile.values.filter((item) => item.length > 0), from: inFile.from };
    }
    const value = set.flatMap((variable) =>
      (this.envValue(variable) ?? "")
        .split(",")
        .map((item) => item.trim())
        .filter((item) => item.length > 0),
    );
    return { value, from: set.join(" and ") };
  }

  switch(name: string): Given<boolean> | undefined {
    if (this.flags[name] === true) return { value: true, from: `--${name}` };
    const variable = relayEnvName(name);
    const raw = this.envValue(variable);
    const inFile = this.file.get(name);
    const given = raw !== undefined ? { text: raw, from: variable } : inFile?.values[0] !== undefined ? { text: inFile.values[0], from: inFile.from } : undefined;
    if (given === undefined) return undefined;
    const text = given.text.trim().toLowerCase();
    if (text === "true" || text === "1") return { value: true, from: given.from };
    if (text === "false" || text === "0") return { value: false, from: given.from };
    throw new RelayConfigError(`${given.from} is ${JSON.stringify(given.text)}; it must be true, false, 1 or 0`);
  }

  integer(name: string, fallback: number, min: number, max: number, unit = ""): number {
    const given = this.value(name);
    return given === undefined ? fallback : wholeNumber(given, min, max, unit);
  }
}

function wholeNumber(given: Given<string>, min: number, max: number, unit: string): number {
  const value = Number(given.value);
  if (!/^\d+$/.test(given.value) || value < min || value > max) {
    throw new RelayConfigError(`${given.from} is ${JSON.stringify(given.value)}; it must be a whole number${unit === "" ? "" : ` of ${unit}`} from ${min} to ${max}`);
  }
  return value;
}

function ipList(given: Given<string[]> | undefined, fallback: readonly string[]): string[] {
  if (given === undefined) return [...fallback];
  if (given.value.length === 0) throw new RelayConfigError(`${given.from} is empty; it must list IP addresses`);
  for (const ip of given.value) {
    if (isIP(ip) === 0) throw new RelayConfigError(`${given.from} ${JSON.stringify(ip)} is not an IP address`);
  }
  return given.value;
}

function cidrList(given: Given<string[]> | undefined): string[] {
  if (given === undefined) return [];
  for (const entry of given.value) {
    const parsed = parseCidr(entry);
    if (!parsed.ok) throw new RelayConfigError(`${given.from} ${parsed.reason}`);
  }
  return given.value;
}

function externalAddress(from: string, raw: string): ExternalAddress {
  const [publicIp, privateIp, extra] = raw.split("/");
  if (extra !== undefined || publicIp === undefined || isIP(publicIp) === 0 || (privateIp !== undefined && isIP(privateIp) === 0)) {
    throw new RelayConfigError(`${from} ${JSON.stringify(raw)} must be PUBLIC or PUBLIC/PRIVATE, both IP addresses`);
  }
  return privateIp === undefined ? { public: publicIp } : { public: publicIp, private: privateIp };
}

function text(given: Given<string> | undefined, type: TextAttributeType): string | null {
  if (given === undefined) return null;
  if (given.value.length === 0) throw new RelayConfigError(`${given.from} is empty; it must be 1 to 127 characters`);
  try {
    encodeText(type, given.value);
  } catch (error) {
    throw new RelayConfigError(`${given.from} is too long: ${(error as Error).message}`);
  }
  return given.value;
}

function fsReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "there is no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  return code ?? (error as Error).message;
}

/** Checks that `given` names a regular file this process may read; returns the path. */
function readableFile(given: Given<string>, what: string): string {
  const path = given.value;
  try {
    if (!statSync(path).isFile()) throw new RelayConfigError(`${given.from} ${JSON.stringify(path)} is not a file; it must be ${what}`);
    accessSync(path, fsConstants.R_OK);
  } catch (error) {
    if (error instanceof RelayConfigError) throw error;
    throw new RelayConfigError(`${given.from} ${JSON.stringify(path)} cannot be read (${fsReason(error)}); it must be ${what}`);
  }
  return path;
}

/** The secrets in a secret file: one per line, trimmed, blank lines ignored. */
function secretsFromFile(from: string, path: string, known: string[]): string[] {
  let content: string;
  try {
    if (!statSync(path).isFile()) throw new RelayConfigError(`${from} ${JSON.stringify(path)} is not a file; it must be a readable file with one secret per line`);
    content = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof RelayConfigError) throw error;
    throw new RelayConfigError(`${from} ${JSON.stringify(path)} cannot be read (${fsReason(error)}); it must be a readable file with one secret per line`);
  }
  const secrets = content
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  known.push(...secrets);
  if (secrets.length === 0) throw new RelayConfigError(`${from} ${JSON.stringify(path)} has no secret in it; it must hold one secret per line`);
  return secrets;
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing.

export type ParsedArgs = { help: true } | { help: false; config: RelayConfig };

const PARSE_OPTIONS = Object.fromEntries([
  ...OPTIONS.map((option) => [option.name, option.kind === "switch" ? { type: "boolean" } : option.kind === "list" ? { type: "string", multiple: true } : { type: "string" }] as const),
  ["help", { type: "boolean" }] as const,
]) as Record<string, { type: "string" | "boolean"; multiple?: boolean }>;

/** Where the first argument that is not an option (nor an option's value) stands, or -1. */
function firstPositionalIndex(argv: readonly string[]): number {
  try {
    const { tokens } = parseArgs({ args: [...argv], strict: false, allowPositionals: true, tokens: true, options: PARSE_OPTIONS });
    return tokens.find((token) => token.kind === "positional")?.index ?? -1;
  } catch {
    return -1;
  }
}

/** parseArgs' complaint in one line of our own, never quoting a value (it might be a secret). */
function argumentError(error: unknown, argv: readonly string[]): RelayConfigError {
  const code = (error as NodeJS.ErrnoException).code;
  const message = (error as Error).message;
  const quoted = /'([^']*)'/.exec(message)?.[1];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && quoted !== undefined) {
    return new RelayConfigError(`unknown option ${quoted}; see --help for the options`);
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const position = firstPositionalIndex(argv);
    const where = position === -1 ? "an argument" : `argument ${position + 1}`;
    return new RelayConfigError(`unexpected ${where} that is not an option (not shown, it might be a secret): write --name VALUE or --name=VALUE; see --help`);
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted !== undefined && message.includes("ambiguous")) {
    return new RelayConfigError(`${quoted} needs a value; to give one that starts with a dash write ${quoted}=-VALUE; see --help`);
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted !== undefined) {
    const option = quoted.split(" ")[0] ?? quoted;
    return new RelayConfigError(message.includes("argument missing") ? `${option} needs a value; see --help` : `${option} does not take a value; see --help`);
  }
  return new RelayConfigError(`${message.split("\n")[0] ?? message}; see --help`);
}

/** Secret text given inline, so that an error message quoting it by accident can be scrubbed. */
function inlineSecrets(argv: readonly string[], env: Env): string[] {
  const found: string[] = [];
  argv.forEach((arg, index) => {
    const next = argv[index + 1];
    if (arg === "--static-auth-secret" && next !== undefined && !next.startsWith("-")) found.push(next);
    else if (arg.startsWith("--static-auth-secret=")) found.push(arg.slice("--static-auth-secret=".length));
  });
  for (const variable of [relayEnvName("static-auth-secret"), "RELAY_SECRETS", FLEET_KEY_ENV]) {
    const raw = env[variable];
    if (raw !== undefined) found.push(raw, ...raw.split(","));
  }
  return found;
}

/**
 * Scrubs known secrets from an error message. Messages quote values with JSON.stringify, so a quoted
 * secret is always replaced; bare text only for secrets of 4 characters or more, so that a silly
 * one-letter secret does not garble the message.
 */
function redact(message: string, secrets: readonly string[]): string {
  const sorted = [...new Set(secrets.map((secret) => secret.trim()).filter((secret) => secret.length > 0))].sort((a, b) => b.length - a.length);
  return sorted.reduce((scrubbed, secret) => {
    const quoted = scrubbed.split(JSON.stringify(secret)).join('"<secret>"');
    return secret.length >= 4 ? quoted.split(secret).join("<secret>") : quoted;
  }, message);
}

export function parseRelayArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedArgs {
  const known = inlineSecrets(argv, env);
  try {
    return parse(argv, env, known);
  } catch (error) {
    if (error instanceof RelayConfigError) throw new RelayConfigError(redact(error.message, known));
    throw error;
  }
}

function parse(argv: readonly string[], env: Env, known: string[]): ParsedArgs {
  let values: FlagValues;
  try {
    ({ values } = parseArgs({ args: [...argv], strict: true, allowPositionals: false, options: PARSE_OPTIONS }));
  } catch (error) {
    throw argumentError(error, argv);
  }
  if (values.help === true) return { help: true };
  const configGiven = new OptionReader(values, env).value("config");
  let file: ConfigFileOptions = new Map();
  if (configGiven !== undefined) {
    try {
      file = readConfigFile(configGiven.value, configGiven.from, OPTION_KINDS);
    } catch (error) {
      if (error instanceof ConfigFileError) throw new RelayConfigError(error.message);
      throw error;
    }
    // Secrets written in the file are scrubbed from any later error, as inline ones are.
    known.push(...(file.get("static-auth-secret")?.values ?? []));
  }
  const read = new OptionReader(values, env, file);

  // Listening.
  const listeningIps = ipList(read.list("listening-ip"), RELAY_DEFAULTS.listeningIps);
  const listeningPortGiven = read.value("listening-port");
  const listeningPort = listeningPortGiven === undefined ? RELAY_DEFAULTS.listeningPort : wholeNumber(listeningPortGiven, 0, 65535, "");
  const noUdp = read.switch("no-udp");
  const noTcp = read.switch("no-tcp");
  const udp = !(noUdp?.value ?? false);
  const tcp = !(noTcp?.value ?? false);

  const cert = read.value("cert");
  const pkey = read.value("pkey");
  if ((cert === undefined) !== (pkey === undefined)) {
    const [given, missing] = cert === undefined ? [pkey!.from, "--cert"] : [cert.from, "--pkey"];
    throw new RelayConfigError(`${given} is given without ${missing}: TLS needs both a certificate (--cert) and its private key (--pkey), or neither`);
  }
  const certFile = cert === undefined ? null : readableFile(cert, "a readable PEM certificate file");
  const keyFile = pkey === undefined ? null : readableFile(pkey, "a readable PEM private key file");
  const tlsPortGiven = read.value("tls-listening-port");
  if (tlsPortGiven !== undefined && certFile === null) {
    throw new RelayConfigError(`${tlsPortGiven.from} is given without --cert and --pkey: TLS needs a certificate and its private key`);
  }
  const tlsListeningPort =
    certFile === null ? null : tlsPortGiven === undefined ? RELAY_DEFAULTS.tlsListeningPort : wholeNumber(tlsPortGiven, 0, 65535, "");
  if (tlsListeningPort !== null && tcp && tlsListeningPort !== 0 && tlsListeningPort === listeningPort) {
    throw new RelayConfigError(
      `${tlsPortGiven?.from ?? "--tls-listening-port"} ${tlsListeningPort} is also ${listeningPortGiven?.from ?? "--listening-port"}, where TCP listens: give TLS a port of its own, or --no-tcp`,
    );
  }
  if (!udp && !tcp && tlsListeningPort === null) {
    throw new RelayConfigError(`${noUdp!.from} and ${noTcp!.from} together leave nothing to listen on: keep one, or give --cert and --pkey for TLS`);
  }

  // Relaying.
  const relayIpsGiven = read.list("relay-ip");
  const relayIps = ipList(relayIpsGiven, listeningIps.filter((ip) => ip !== "0.0.0.0" && ip !== "::"));
  if (relayIpsGiven !== undefined) {
    for (const family of [4, 6]) {
      if (relayIps.filter((ip) => isIP(ip) === family).length > 1) {
        throw new RelayConfigError(`${relayIpsGiven.from} gives more than one IPv${family} address; relay sockets bind to at most one per family`);
      }
    }
  }
  const externalGiven = read.list("external-ip");
  const externalIps = (externalGiven?.value ?? []).map((raw) => externalAddress(externalGiven!.from, raw));
  if (relayIps.length === 0 && externalIps.length === 0) {
    throw new RelayConfigError("--relay-ip is needed when listening on every address (0.0.0.0 or ::): clients must be told a concrete relay address (or give --external-ip)");
  }
  const minPortGiven = read.value("min-port");
  const maxPortGiven = read.value("max-port");
  const minPort = minPortGiven === undefined ? RELAY_DEFAULTS.minPort : wholeNumber(minPortGiven, 1, 65535, "");
  const maxPort = maxPortGiven === undefined ? RELAY_DEFAULTS.maxPort : wholeNumber(maxPortGiven, 1, 65535, "");
  if (minPort > maxPort) {
    throw new RelayConfigError(`${minPortGiven?.from ?? "--min-port"} ${minPort} is above ${maxPortGiven?.from ?? "--max-port"} ${maxPort}`);
  }
  const allowLoopbackPeers = read.switch("allow-loopback-peers")?.value ?? false;
  const allowedPeerIps = cidrList(read.list("allowed-peer-ip"));
  const deniedPeerIps = cidrList(read.list("denied-peer-ip"));

  // Authentication.
  const realm = text(read.value("realm"), AttributeType.Realm) ?? RELAY_DEFAULTS.realm;
  const inline = (read.list("static-auth-secret")?.value ?? []).map((secret) => secret.trim()).filter((secret) => secret.length > 0);
  const files = read.list("static-auth-secret-file");
  const fromFiles = (files?.value ?? []).flatMap((path) => secretsFromFile(files!.from, path, known));
  const secrets = [...new Set([...inline, ...fromFiles])];
  if (secrets.length === 0) {
    throw new RelayConfigError(
      "no secret given: the relay needs the Worker's TURN_SECRETS to check credentials; give --static-auth-secret or --static-auth-secret-file " +
        "(or RELAY_STATIC_AUTH_SECRET, RELAY_SECRETS or RELAY_STATIC_AUTH_SECRET_FILE)",
    );
  }

  // Operations.
  const prometheus = (read.switch("prometheus")?.value ?? false)
    ? {
        address: singleIp(read.value("prometheus-address")) ?? RELAY_DEFAULTS.prometheusAddress,
        port: read.integer("prometheus-port", RELAY_DEFAULTS.prometheusPort, 0, 65535),
        token: tokenFromFile(read.value("prometheus-token-file"), known),
      }
    : null;
  if (prometheus === null) {
    for (const name of ["prometheus-port", "prometheus-address", "prometheus-token-file"]) {
      const given = read.value(name);
      if (given !== undefined) throw new RelayConfigError(`${given.from} is given without --prometheus: turn the metrics listener on with --prometheus (or RELAY_PROMETHEUS=1)`);
    }
  }
  const stunServerGiven = read.value("external-ip-stun-server");
  if (stunServerGiven !== undefined && externalGiven !== undefined) {
    throw new RelayConfigError(`${stunServerGiven.from} and ${externalGiven.from} are both given: advertise a known address with --external-ip, or discover it with --external-ip-stun-server, not both`);
  }

  const fleet = fleetConfig(read, env, known, {
    externalIps,
    listeningIps,
    discovering: stunServerGiven !== undefined,
  });

  // Limits.
  const unauthenticatedRate = read.integer("unauthenticated-rate", RELAY_DEFAULTS.unauthenticatedRate, 0, 1_000_000, "answers per second");
  const unauthenticatedBurst = read.integer("unauthenticated-burst", RELAY_DEFAULTS.unauthenticatedBurst, 1, 1_000_000, "answers");

  return {
    help: false,
    config: {
      listeningIps,
      listeningPort,
      udp,
      tcp,
      tlsListeningPort,
      certFile,
      keyFile,
      relayIps: relayIps.length > 0 ? relayIps : ["0.0.0.0"],
      externalIps,
      minPort,
      maxPort,
      realm,
      secrets,
      allowLoopbackPeers,
      allowedPeerIps,
      deniedPeerIps,
      userQuota: read.integer("user-quota", RELAY_DEFAULTS.userQuota, 0, 1_000_000, "allocations"),
      maxAllocationsPerIp: read.integer("max-allocations-per-ip", RELAY_DEFAULTS.maxAllocationsPerIp, 0, 1_000_000, "allocations"),
      totalQuota: read.integer("total-quota", RELAY_DEFAULTS.totalQuota, 0, 1_000_000, "allocations"),
      maxPermissionsPerAllocation: read.integer("max-permissions", RELAY_DEFAULTS.maxPermissionsPerAllocation, 1, 10_000, "permissions"),
      maxChannelsPerAllocation: read.integer("max-channels", RELAY_DEFAULTS.maxChannelsPerAllocation, 1, CHANNEL_NUMBERS, "channels"),
      maxBps: read.integer("max-bps", RELAY_DEFAULTS.maxBps, 0, MAX_BYTES_PER_SECOND, "bytes per second"),
      bpsCapacity: read.integer("bps-capacity", RELAY_DEFAULTS.bpsCapacity, 0, MAX_BYTES_PER_SECOND, "bytes per second"),
      maxAllocateLifetime: read.integer("max-allocate-lifetime", RELAY_DEFAULTS.maxAllocateLifetime, MIN_ALLOCATE_LIFETIME_SECONDS, 86_400, "seconds"),
      staleNonceSeconds: read.integer("stale-nonce", RELAY_DEFAULTS.staleNonceSeconds, 30, 86_400, "seconds"),
      unauthenticatedRate,
      unauthenticatedBurst,
      maxConnectionsPerIp: read.integer("max-connections-per-ip", RELAY_DEFAULTS.maxConnectionsPerIp, 0, 1_000_000, "connections"),
      maxAllocateTimeoutSeconds: read.integer("max-allocate-timeout", RELAY_DEFAULTS.maxAllocateTimeoutSeconds, 1, MAX_ALLOCATE_TIMEOUT_SECONDS, "seconds"),
      strictExpiry: read.switch("strict-expiry")?.value ?? false,
      maxCredentialTtl: read.integer("max-credential-ttl", RELAY_DEFAULTS.maxCredentialTtl, MIN_CREDENTIAL_TTL_SECONDS, MAX_CREDENTIAL_TTL_SECONDS, "seconds"),
      credentialClockSkew: read.integer("credential-clock-skew", RELAY_DEFAULTS.credentialClockSkew, 0, 3600, "seconds"),
      software: text(read.value("software"), AttributeType.Software),
      configFile: configGiven?.value ?? null,
      logLevel: logLevel(read.value("log-level")),
      udpIo: choice(read.value("udp-io"), UDP_IO_CHOICES, RELAY_DEFAULTS.udpIo),
      tcpIo: choice(read.value("tcp-io"), TCP_IO_CHOICES, RELAY_DEFAULTS.tcpIo),
      prometheus,
      drainTimeoutSeconds: read.integer("drain-timeout", RELAY_DEFAULTS.drainTimeoutSeconds, 0, MAX_DRAIN_TIMEOUT_SECONDS, "seconds"),
      externalIpStunServer: stunServerGiven === undefined ? null : stunServerAddress(stunServerGiven),
      fleet,
      relayThreads: relayThreads(read),
    },
  };
}

function relayThreads(read: OptionReader): number | "auto" {
  const given = read.value("relay-threads");
  if (given === undefined) return "auto";
  const text = given.value.trim().toLowerCase();
  if (text === "auto") return "auto";
  const threads = Number(text);
  if (!/^\d+$/.test(text) || threads < 1 || threads > MAX_RELAY_THREADS) {
    throw new RelayConfigError(`${given.from} is ${JSON.stringify(given.value)}; it must be auto (the CPUs this process may use) or a whole number from 1 to ${MAX_RELAY_THREADS}`);
  }
  return threads;
}

/** A fleet check's refusal as the error for the option (or variable) that gave the value. */
function checked<T>(from: string, result: Checked<T>): T {
  if (!result.ok) throw new RelayConfigError(`${from} ${result.reason}`);
  return result.value;
}

function fleetConfig(
  read: OptionReader,
  env: Env,
  known: string[],
  addresses: { externalIps: readonly ExternalAddress[]; listeningIps: readonly string[]; discovering: boolean },
): FleetConfig | null {
  const urlGiven = read.value("fleet-url");
  const keyFileGiven = read.value("fleet-key-file");
  const keyEnv = env[FLEET_KEY_ENV] === undefined || env[FLEET_KEY_ENV]!.trim() === "" ? undefined : { value: env[FLEET_KEY_ENV]!, from: FLEET_KEY_ENV };
  if (urlGiven === undefined) {
    const stray = [read.value("fleet-relay-id"), read.value("fleet-region"), read.value("fleet-location"), keyFileGiven, keyEnv].find((given) => given !== undefined) ?? read.list("public-url");
    if (stray !== undefined) throw new RelayConfigError(`${stray.from} is given without --fleet-url: give --fleet-url wss://<worker>${FLEET_PATH} (or RELAY_FLEET_URL) to join a fleet`);
    return null;
  }
  const url = checked(urlGiven.from, checkFleetUrl(urlGiven.value));

  if (keyFileGiven !== undefined && keyEnv !== undefined) {
    throw new RelayConfigError(`${keyFileGiven.from} and ${FLEET_KEY_ENV} are both given: give the fleet key one way`);
  }
  let keyText: Given<string>;
  if (keyEnv !== undefined) {
    keyText = keyEnv;
  } else if (keyFileGiven !== undefined) {
    const path = readableFile(keyFileGiven, "a readable file holding the fleet key");
    const content = readFileSync(path, "utf8");
    known.push(content, ...content.split(/[\n,]/));
    keyText = { value: content.split(/\r?\n/).join(","), from: `${keyFileGiven.from} ${JSON.stringify(path)}` };
  } else {
    throw new RelayConfigError(
      `${urlGiven.from} is given without a fleet key: give --fleet-key-file FILE (or RELAY_FLEET_KEY_FILE) or the key in ${FLEET_KEY_ENV}: the Worker's FLEET_KEYS (\`wrangler secret put FLEET_KEYS\`)`,
    );
  }
  let keys: string[];
  try {
    keys = readFleetKeys(keyText.value);
  } catch (error) {
    throw new RelayConfigError(`${keyText.from}: ${(error as Error).message}`);
  }
  if (keys.length === 0) throw new RelayConfigError(`${keyText.from} holds no fleet key; it must hold the Worker's FLEET_KEYS key (at least ${MIN_FLEET_KEY_LENGTH} characters)`);

  const relayIdGiven = read.value("fleet-relay-id");
  const regionGiven = read.value("fleet-region");
  const locationGiven = read.value("fleet-location");
  const urlsGiven = read.list("public-url");
  const publicUrls = urlsGiven === undefined ? [] : checked(urlsGiven.from, checkPublicUrls(urlsGiven.value));
  if (urlsGiven !== undefined && publicUrls.length === 0) throw new RelayConfigError(`${urlsGiven.from} is empty; it must list turn: or turns: URLs`);
  if (publicUrls.length === 0 && !addresses.discovering && publicHost(addresses) === null) {
    throw new RelayConfigError(
      `${urlGiven.from} needs the URLs clients should use for this relay, and it listens only on wildcard addresses (0.0.0.0 or ::): ` +
        "give --public-url turn:HOST:3478?transport=udp (repeat it for each URL), or --external-ip so they can be derived",
    );
  }
  return {
    url,
    keys,
    relayId: relayIdGiven === undefined ? relayIdFromHostname(hostname()) : checked(relayIdGiven.from, checkRelayId(relayIdGiven.value)),
    region: regionGiven === undefined ? "" : checked(regionGiven.from, checkRegion(regionGiven.value)),
    location: locationGiven === undefined ? null : checked(locationGiven.from, checkLocation(locationGiven.value)),
    publicUrls,
  };
}

function singleIp(given: Given<string> | undefined): string | undefined {
  if (given === undefined) return undefined;
  if (isIP(given.value) === 0) throw new RelayConfigError(`${given.from} ${JSON.stringify(given.value)} is not an IP address`);
  return given.value;
}

/** One of `choices` (any case), or `fallback` when not given. */
function choice<T extends string>(given: Given<string> | undefined, choices: readonly T[], fallback: T): T {
  if (given === undefined) return fallback;
  const chosen = choices.find((name) => name === given.value.toLowerCase());
  if (chosen === undefined) throw new RelayConfigError(`${given.from} is ${JSON.stringify(given.value)}; it must be one of ${choices.join(", ")}`);
  return chosen;
}

function logLevel(given: Given<string> | undefined): LogLevel {
  if (given === undefined) return RELAY_DEFAULTS.logLevel;
  const level = LOG_LEVELS.find((name) => name === given.value.toLowerCase());
  if (level === undefined) throw new RelayConfigError(`${given.from} is ${JSON.stringify(given.value)}; it must be one of ${LOG_LEVELS.join(", ")}`);
  return level;
}

/** The bearer token in a token file: its content, trimmed; it must not be empty. */
function tokenFromFile(given: Given<string> | undefined, known: string[]): string | null {
  if (given === undefined) return null;
  const path = readableFile(given, "a readable file holding the metrics bearer token");
  const token = readFileSync(path, "utf8").trim();
  known.push(token);
  if (token.length === 0) throw new RelayConfigError(`${given.from} ${JSON.stringify(path)} is empty; it must hold the metrics bearer token`);
  if (/\s/.test(token)) throw new RelayConfigError(`${given.from} ${JSON.stringify(path)} holds more than one word; the bearer token is one line without spaces`);
  return token;
}

/** HOST, HOST:PORT, IPv6 or [IPv6]:PORT; the port defaults to STUN's 3478. */
export function stunServerAddress(given: Given<string>): StunServerAddress {
  const text = given.value;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  let host: string;
  let port: string | undefined;
  if (bracketed !== null) [, host = "", port] = bracketed;
  else if (isIP(text) === 6) host = text;
  else [host = "", port] = text.split(/:(?=[^:]*$)/);
  const portNumber = port === undefined ? RELAY_DEFAULTS.stunPort : Number(port);
  const validHost = isIP(host) !== 0 || /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(host);
  if (!validHost || (port !== undefined && (!/^\d+$/.test(port) || portNumber < 1 || portNumber > 65535))) {
    throw new RelayConfigError(`${given.from} ${JSON.stringify(text)} must be HOST or HOST:PORT (an IPv6 address with a port in brackets: [2001:db8::1]:3478)`);
  }
  return { host, port: portNumber };
}
