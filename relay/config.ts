/**
 * The relay's settings, named as coturn names them so operators can carry their habits over
 * (`listening-port`, `realm`, `static-auth-secret`, `min-port`, `max-port`, `external-ip`, …).
 * Parsing is pure: flags and environment in, a checked config or an error naming the option out.
 */
import { isIP } from "node:net";
import { parseArgs } from "node:util";
import { DEFAULT_CLOCK_SKEW_SECONDS } from "../shared/turn/credentials.js";

export interface ExternalAddress {
  /** Advertised to clients in XOR-RELAYED-ADDRESS. */
  public: string;
  /** The local relay address it stands for; absent: every relay address of that family. */
  private?: string;
}

export interface RelayConfig {
  listeningIps: string[];
  listeningPort: number;
  /** Addresses relay sockets bind to, at most one per family. */
  relayIps: string[];
  externalIps: ExternalAddress[];
  minPort: number;
  maxPort: number;
  realm: string;
  /** The Worker's TURN_SECRETS: the first is the Worker's signing secret, all are accepted. */
  secrets: string[];
  allowLoopbackPeers: boolean;
  allowedPeerIps: string[];
  deniedPeerIps: string[];
  /** Allocations one TURN user may hold at once; 0: no limit. */
  userQuota: number;
  /** Allocations the relay holds at once; 0: as many as the port range allows. */
  totalQuota: number;
  /** Seconds: the longest lifetime a client may ask for. */
  maxAllocateLifetime: number;
  /** Refuse requests on an allocation once the credential that created it has expired. */
  strictExpiry: boolean;
  /** Seconds a credential's expiry may be off between the Worker's clock and this host's. */
  credentialClockSkew: number;
  /** SOFTWARE attribute in responses; none by default (it only helps fingerprinting and amplification). */
  software: string | null;
}

export const RELAY_DEFAULTS = {
  listeningIps: ["0.0.0.0"],
  listeningPort: 3478,
  minPort: 49152,
  maxPort: 65535,
  realm: "relaykit",
  userQuota: 0,
  totalQuota: 0,
  maxAllocateLifetime: 3600,
} as const;

/** RFC 8656 §7.2: an allocation without a LIFETIME request lives 10 minutes. */
export const DEFAULT_ALLOCATION_LIFETIME_SECONDS = 600;
/** RFC 8656 §9: permissions last 5 minutes. */
export const PERMISSION_LIFETIME_SECONDS = 300;
/** RFC 8656 §12: channel bindings last 10 minutes. */
export const CHANNEL_LIFETIME_SECONDS = 600;
/** How long a nonce stays fresh before a client is asked to retry with a new one (438). */
export const NONCE_LIFETIME_SECONDS = 600;

export class RelayConfigError extends Error {
  override name = "RelayConfigError";
}

export const RELAY_USAGE = `relaykit relay: a STUN/TURN server (RFC 8489, RFC 8656) for the Worker's TURN REST credentials

Options (coturn's names; repeat the ones marked * to give several):
  --listening-ip IP *          addresses to listen on (default 0.0.0.0)
  --listening-port N           UDP and TCP port for STUN/TURN (default 3478)
  --relay-ip IP *              address relay sockets bind to, one per family (default: the listening IP)
  --external-ip PUBLIC[/PRIVATE] *  address advertised for a relay IP behind 1:1 NAT
  --min-port N, --max-port N   relay port range (default 49152-65535)
  --realm TEXT                 authentication realm (default relaykit)
  --static-auth-secret TEXT *  the Worker's TURN secret(s); also RELAY_SECRETS (comma-separated)
  --allow-loopback-peers       allow relaying to 127.0.0.0/8 and ::1 (development only)
  --allowed-peer-ip CIDR *     allow these peers even inside the default denied ranges
  --denied-peer-ip CIDR *      refuse these peers too
  --user-quota N               allocations per user at once (default 0: no limit)
  --total-quota N              allocations at once (default 0: the port range)
  --max-allocate-lifetime N    longest allocation lifetime in seconds (default 3600)
  --strict-expiry              refuse Refresh, CreatePermission and ChannelBind once the credential has expired
  --credential-clock-skew N    seconds of clock difference allowed on credential expiry (default 30)
  --software TEXT              SOFTWARE attribute in responses (default: none)
  --help                       this text`;

function integer(option: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new RelayConfigError(`--${option} is ${JSON.stringify(raw)}; it must be a whole number from ${min} to ${max}`);
  }
  return value;
}

function ipList(option: string, values: string[] | undefined, fallback: readonly string[]): string[] {
  const list = values && values.length > 0 ? values : [...fallback];
  for (const ip of list) {
    if (isIP(ip) === 0) throw new RelayConfigError(`--${option} ${JSON.stringify(ip)} is not an IP address`);
  }
  return list;
}

function externalAddress(raw: string): ExternalAddress {
  const [publicIp, privateIp, extra] = raw.split("/");
  if (extra !== undefined || publicIp === undefined || isIP(publicIp) === 0 || (privateIp !== undefined && isIP(privateIp) === 0)) {
    throw new RelayConfigError(`--external-ip ${JSON.stringify(raw)} must be PUBLIC or PUBLIC/PRIVATE, both IP addresses`);
  }
  return privateIp === undefined ? { public: publicIp } : { public: publicIp, private: privateIp };
}

export type ParsedArgs = { help: true } | { help: false; config: RelayConfig };

export function parseRelayArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        "listening-ip": { type: "string", multiple: true },
        "listening-port": { type: "string" },
        "relay-ip": { type: "string", multiple: true },
        "external-ip": { type: "string", multiple: true },
        "min-port": { type: "string" },
        "max-port": { type: "string" },
        realm: { type: "string" },
        "static-auth-secret": { type: "string", multiple: true },
        "allow-loopback-peers": { type: "boolean" },
        "allowed-peer-ip": { type: "string", multiple: true },
        "denied-peer-ip": { type: "string", multiple: true },
        "user-quota": { type: "string" },
        "total-quota": { type: "string" },
        "max-allocate-lifetime": { type: "string" },
        "strict-expiry": { type: "boolean" },
        "credential-clock-skew": { type: "string" },
        software: { type: "string" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    throw new RelayConfigError(`${(error as Error).message}; see --help`);
  }
  if (values.help) return { help: true };

  const listeningIps = ipList("listening-ip", values["listening-ip"], RELAY_DEFAULTS.listeningIps);
  const relayIps = ipList("relay-ip", values["relay-ip"], listeningIps.filter((ip) => ip !== "0.0.0.0" && ip !== "::"));
  const externalIps = (values["external-ip"] ?? []).map(externalAddress);
  if (relayIps.length === 0 && externalIps.length === 0) {
    throw new RelayConfigError("--relay-ip is needed when listening on every address (0.0.0.0 or ::): clients must be told a concrete relay address (or give --external-ip)");
  }
  const minPort = integer("min-port", values["min-port"], RELAY_DEFAULTS.minPort, 1, 65535);
  const maxPort = integer("max-port", values["max-port"], RELAY_DEFAULTS.maxPort, 1, 65535);
  if (minPort > maxPort) throw new RelayConfigError(`--min-port ${minPort} is above --max-port ${maxPort}`);

  const secrets = [...(values["static-auth-secret"] ?? []), ...(env.RELAY_SECRETS ?? "").split(",")]
    .map((secret) => secret.trim())
    .filter((secret) => secret.length > 0);
  if (secrets.length === 0) {
    throw new RelayConfigError("no --static-auth-secret (or RELAY_SECRETS) given: the relay needs the Worker's TURN_SECRETS to check credentials");
  }
  const realm = values.realm ?? RELAY_DEFAULTS.realm;
  if (realm.length === 0 || realm.length > 127) throw new RelayConfigError("--realm must be 1-127 characters");

  return {
    help: false,
    config: {
      listeningIps,
      listeningPort: integer("listening-port", values["listening-port"], RELAY_DEFAULTS.listeningPort, 0, 65535),
      relayIps: relayIps.length > 0 ? relayIps : ["0.0.0.0"],
      externalIps,
      minPort,
      maxPort,
      realm,
      secrets,
      allowLoopbackPeers: values["allow-loopback-peers"] ?? false,
      allowedPeerIps: values["allowed-peer-ip"] ?? [],
      deniedPeerIps: values["denied-peer-ip"] ?? [],
      userQuota: integer("user-quota", values["user-quota"], RELAY_DEFAULTS.userQuota, 0, 1_000_000),
      totalQuota: integer("total-quota", values["total-quota"], RELAY_DEFAULTS.totalQuota, 0, 1_000_000),
      maxAllocateLifetime: integer("max-allocate-lifetime", values["max-allocate-lifetime"], RELAY_DEFAULTS.maxAllocateLifetime, 60, 86_400),
      strictExpiry: values["strict-expiry"] ?? false,
      credentialClockSkew: integer("credential-clock-skew", values["credential-clock-skew"], DEFAULT_CLOCK_SKEW_SECONDS, 0, 3600),
      software: values.software ?? null,
    },
  };
}
