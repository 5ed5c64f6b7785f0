/**
 * The relay's options: defaults, every option by flag and by RELAY_* variable, which one wins, secrets
 * from files, the TLS files, and errors that name the option (or variable), say what is expected and
 * never quote a secret. Pure parsing, apart from the temporary files the file options name.
 */
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RELAY_DEFAULTS, RELAY_USAGE, parseRelayArgs, type RelayConfig } from "../../relay/config.js";
import { config, failure, type Env } from "./parse-config.js";

const SECRET = "config-test-secret-7f3a";
const BASE = ["--listening-ip=127.0.0.1", `--static-auth-secret=${SECRET}`];


let dir = "";
let certFile = "";
let keyFile = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "relay-config-test-"));
  certFile = join(dir, "cert.pem");
  keyFile = join(dir, "key.pem");
  await writeFile(certFile, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
  await writeFile(keyFile, "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n");
});

afterAll(async () => {
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

async function secretFile(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

describe("defaults", () => {
  it("fills in every field from the minimal flags", () => {
    expect(config(BASE)).toEqual({
      listeningIps: ["127.0.0.1"],
      listeningPort: 3478,
      udp: true,
      tcp: true,
      tlsListeningPort: null,
      certFile: null,
      keyFile: null,
      relayIps: ["127.0.0.1"],
      externalIps: [],
      minPort: 49152,
      maxPort: 65535,
      realm: "relaykit",
      secrets: [SECRET],
      allowLoopbackPeers: false,
      allowedPeerIps: [],
      deniedPeerIps: [],
      userQuota: 200,
      maxAllocationsPerIp: 2000,
      totalQuota: 0,
      maxPermissionsPerAllocation: 32,
      maxChannelsPerAllocation: 32,
      maxBps: 0,
      bpsCapacity: 0,
      maxAllocateLifetime: 3600,
      staleNonceSeconds: 600,
      unauthenticatedRate: 20,
      unauthenticatedBurst: 40,
      maxConnectionsPerIp: 500,
      maxAllocateTimeoutSeconds: 60,
      strictExpiry: false,
      maxCredentialTtl: 172_800,
      credentialClockSkew: 30,
      software: null,
      configFile: null,
      logLevel: "info",
      udpIo: "auto",
      tcpIo: "auto",
      prometheus: null,
      drainTimeoutSeconds: 0,
      externalIpStunServer: null,
      fleet: null,
      relayThreads: "auto",
    } satisfies RelayConfig);
  });

  it("still needs a relay address when listening on every address, and a secret", () => {
    expect(failure([`--static-auth-secret=${SECRET}`])).toMatch(/--relay-ip is needed/);
    expect(failure(["--listening-ip=127.0.0.1"])).toMatch(/no secret given.*--static-auth-secret.*--static-auth-secret-file/);
    expect(config([`--static-auth-secret=${SECRET}`, "--relay-ip=192.0.2.1"]).listeningIps).toEqual(["0.0.0.0"]);
  });
});

describe("new options", () => {
  it("reads the limits", () => {
    const parsed = config([
      ...BASE,
      "--max-bps=125000",
      "--bps-capacity=10000000",
      "--stale-nonce=30",
      "--max-permissions=5",
      "--max-channels=4096",
      "--unauthenticated-rate=0",
      "--unauthenticated-burst=1",
      "--max-connections-per-ip=1000",
      "--max-allocate-timeout=3600",
    ]);
    expect(parsed).toMatchObject({
      maxBps: 125_000,
      bpsCapacity: 10_000_000,
      staleNonceSeconds: 30,
      maxPermissionsPerAllocation: 5,
      maxChannelsPerAllocation: 4096,
      unauthenticatedRate: 0,
      unauthenticatedBurst: 1,
      maxConnectionsPerIp: 1000,
      maxAllocateTimeoutSeconds: 3600,
    });
    // 0 turns the per-address cap off.
    expect(config([...BASE, "--max-connections-per-ip=0"]).maxConnectionsPerIp).toBe(0);
    expect(config([...BASE, "--stale-nonce", "86400"]).staleNonceSeconds).toBe(86_400);
    // Short lifetimes exist for tests that watch clients refresh (they refresh at half the lifetime).
    expect(config([...BASE, "--max-allocate-lifetime=10"]).maxAllocateLifetime).toBe(10);
  });

  it.each([
    ["--stale-nonce=29", /--stale-nonce is "29"; it must be a whole number of seconds from 30 to 86400/],
    ["--stale-nonce=86401", /--stale-nonce is "86401"/],
    ["--max-allocate-lifetime=9", /--max-allocate-lifetime is "9"; it must be a whole number of seconds from 10 to 86400/],
    // One maximum for Worker and relay: a relay cannot accept longer credentials than the Worker may issue.
    ["--max-credential-ttl=172801", /--max-credential-ttl is "172801"; it must be a whole number of seconds from 60 to 172800/],
    ["--max-allocations-per-ip=-1", /--max-allocations-per-ip is "-1"; it must be a whole number of allocations from 0/],
    ["--max-permissions=0", /--max-permissions is "0"; it must be a whole number of permissions from 1 to 10000/],
    ["--max-channels=4097", /--max-channels is "4097"; it must be a whole number of channels from 1 to 4096/],
    ["--max-bps=1k", /--max-bps is "1k"; it must be a whole number of bytes per second from 0/],
    ["--max-bps=-1", /--max-bps is "-1"/],
    ["--bps-capacity=1.5", /--bps-capacity is "1.5"; it must be a whole number/],
    ["--unauthenticated-rate=x", /--unauthenticated-rate is "x"; it must be a whole number/],
    ["--unauthenticated-burst=0", /--unauthenticated-burst is "0"; it must be a whole number of answers from 1/],
    ["--max-connections-per-ip=-1", /--max-connections-per-ip is "-1"; it must be a whole number of connections from 0 to 1000000/],
    ["--max-connections-per-ip=lots", /--max-connections-per-ip is "lots"/],
    ["--max-allocate-timeout=0", /--max-allocate-timeout is "0"; it must be a whole number of seconds from 1 to 3600/],
    ["--max-allocate-timeout=3601", /--max-allocate-timeout is "3601"/],
    ["--listening-port=65536", /--listening-port is "65536"; it must be a whole number from 0 to 65535/],
    ["--min-port=", /--min-port is ""; it must be a whole number from 1 to 65535/],
    ["--listening-ip=localhost", /--listening-ip "localhost" is not an IP address/],
    ["--external-ip=1.2.3.4/5.6.7", /--external-ip "1.2.3.4\/5.6.7" must be PUBLIC or PUBLIC\/PRIVATE/],
    ["--denied-peer-ip=10.1.0.0/8", /--denied-peer-ip "10.1.0.0\/8": has bits set after the \/8 prefix; did you mean 10.0.0.0\/8\?/],
    ["--allowed-peer-ip=nope", /--allowed-peer-ip "nope"/],
    ["--realm=", /--realm is empty; it must be 1 to 127 characters/],
    [`--realm=${"r".repeat(128)}`, /--realm is too long: .*at most 127/],
    [`--software=${"s".repeat(128)}`, /--software is too long/],
  ])("refuses %s, naming the option", (flag, message) => {
    expect(failure([...BASE, flag])).toMatch(message);
  });

  it("refuses min-port above max-port and two relay IPs of one family", () => {
    expect(failure([...BASE, "--min-port=50001", "--max-port=50000"])).toBe("--min-port 50001 is above --max-port 50000");
    expect(failure([...BASE, "--max-port=50000"], { RELAY_MIN_PORT: "50001" })).toBe("RELAY_MIN_PORT 50001 is above --max-port 50000");
    expect(failure([...BASE, "--relay-ip=192.0.2.1", "--relay-ip=192.0.2.2"])).toMatch(/--relay-ip gives more than one IPv4 address/);
    expect(config([...BASE, "--relay-ip=192.0.2.1", "--relay-ip=2001:db8::1"]).relayIps).toEqual(["192.0.2.1", "2001:db8::1"]);
  });

  it("turns UDP or TCP off, but not both without TLS", () => {
    expect(config([...BASE, "--no-udp"])).toMatchObject({ udp: false, tcp: true });
    expect(config([...BASE, "--no-tcp"])).toMatchObject({ udp: true, tcp: false });
    expect(failure([...BASE, "--no-udp", "--no-tcp"])).toMatch(/--no-udp and --no-tcp together leave nothing to listen on/);
    expect(config([...BASE, "--no-udp", "--no-tcp", `--cert=${certFile}`, `--pkey=${keyFile}`])).toMatchObject({ udp: false, tcp: false, tlsListeningPort: 5349 });
    expect(failure([...BASE, "--no-udp=true"])).toMatch(/--no-udp does not take a value/);
  });
});

describe("TLS files", () => {
  it("listens for TLS on 5349 when --cert and --pkey are given, or on --tls-listening-port", () => {
    expect(config([...BASE, `--cert=${certFile}`, `--pkey=${keyFile}`])).toMatchObject({ certFile, keyFile, tlsListeningPort: 5349 });
    expect(config([...BASE, `--cert=${certFile}`, `--pkey=${keyFile}`, "--tls-listening-port=443"]).tlsListeningPort).toBe(443);
    expect(config([...BASE, `--cert=${certFile}`, `--pkey=${keyFile}`, "--tls-listening-port=0", "--listening-port=0"]).tlsListeningPort).toBe(0);
    expect(failure([...BASE, `--cert=${certFile}`, `--pkey=${keyFile}`, "--tls-listening-port=99999"])).toMatch(/--tls-listening-port is "99999"/);
  });

  it("needs both files or neither", () => {
    expect(failure([...BASE, `--cert=${certFile}`])).toMatch(/--cert is given without --pkey: TLS needs both/);
    expect(failure([...BASE, `--pkey=${keyFile}`])).toMatch(/--pkey is given without --cert: TLS needs both/);
    expect(failure([...BASE], { RELAY_PKEY: keyFile })).toMatch(/RELAY_PKEY is given without --cert/);
    expect(failure([...BASE, "--tls-listening-port=443"])).toMatch(/--tls-listening-port is given without --cert and --pkey/);
  });

  it("names the option and the path of a file that cannot be read", async () => {
    const missing = join(dir, "missing-cert.pem");
    expect(failure([...BASE, `--cert=${missing}`, `--pkey=${keyFile}`])).toBe(
      `--cert ${JSON.stringify(missing)} cannot be read (there is no such file); it must be a readable PEM certificate file`,
    );
    expect(failure([...BASE, `--cert=${certFile}`, `--pkey=${missing}`])).toMatch(new RegExp(`^--pkey "${missing}" cannot be read .*PEM private key`));
    expect(failure([...BASE], { RELAY_CERT: certFile, RELAY_PKEY: missing })).toMatch(new RegExp(`^RELAY_PKEY "${missing}" cannot be read`));
    const folder = join(dir, "a-directory");
    await mkdir(folder, { recursive: true });
    expect(failure([...BASE, `--cert=${folder}`, `--pkey=${keyFile}`])).toMatch(new RegExp(`^--cert "${folder}" is not a file`));
    if (process.getuid?.() !== 0) {
      const unreadable = join(dir, "unreadable.pem");
      await writeFile(unreadable, "x");
      await chmod(unreadable, 0o000);
      expect(failure([...BASE, `--cert=${unreadable}`, `--pkey=${keyFile}`])).toMatch(/cannot be read \(permission denied\)/);
    }
  });

  it("refuses TLS on the TCP listening port unless TCP is off", () => {
    const tls = [`--cert=${certFile}`, `--pkey=${keyFile}`, "--tls-listening-port=3478"];
    expect(failure([...BASE, ...tls])).toMatch(/--tls-listening-port 3478 is also --listening-port, where TCP listens/);
    expect(config([...BASE, ...tls, "--no-tcp"])).toMatchObject({ tcp: false, tlsListeningPort: 3478 });
  });
});

describe("environment variables", () => {
  it("sets every option as RELAY_ + its name in upper snake case", () => {
    const parsed = config([], {
      RELAY_LISTENING_IP: "127.0.0.1,::1",
      RELAY_LISTENING_PORT: "3479",
      RELAY_NO_UDP: "false",
      RELAY_NO_TCP: "true",
      RELAY_CERT: certFile,
      RELAY_PKEY: keyFile,
      RELAY_TLS_LISTENING_PORT: "443",
      RELAY_RELAY_IP: "192.0.2.1",
      RELAY_EXTERNAL_IP: "198.51.100.1/192.0.2.1, 2001:db8::1",
      RELAY_MIN_PORT: "50000",
      RELAY_MAX_PORT: "50100",
      RELAY_ALLOW_LOOPBACK_PEERS: "1",
      RELAY_ALLOWED_PEER_IP: "10.0.0.0/8,fc00::/7",
      RELAY_DENIED_PEER_IP: "203.0.113.0/24",
      RELAY_REALM: "example.org",
      RELAY_STATIC_AUTH_SECRET: SECRET,
      RELAY_STALE_NONCE: "300",
      RELAY_STRICT_EXPIRY: "TRUE",
      RELAY_CREDENTIAL_CLOCK_SKEW: "5",
      RELAY_USER_QUOTA: "3",
      RELAY_MAX_ALLOCATIONS_PER_IP: "7",
      RELAY_MAX_CREDENTIAL_TTL: "3600",
      RELAY_TOTAL_QUOTA: "100",
      RELAY_MAX_ALLOCATE_LIFETIME: "600",
      RELAY_MAX_PERMISSIONS: "8",
      RELAY_MAX_CHANNELS: "16",
      RELAY_MAX_BPS: "1000",
      RELAY_BPS_CAPACITY: "2000",
      RELAY_UNAUTHENTICATED_RATE: "5",
      RELAY_UNAUTHENTICATED_BURST: "10",
      RELAY_MAX_CONNECTIONS_PER_IP: "0",
      RELAY_MAX_ALLOCATE_TIMEOUT: "30",
      RELAY_SOFTWARE: "relaykit",
      RELAY_UDP_IO: "dgram",
      RELAY_TCP_IO: "net",
      RELAY_RELAY_THREADS: "4",
    });
    expect(parsed).toEqual({
      listeningIps: ["127.0.0.1", "::1"],
      listeningPort: 3479,
      udp: true,
      tcp: false,
      tlsListeningPort: 443,
      certFile,
      keyFile,
      relayIps: ["192.0.2.1"],
      externalIps: [{ public: "198.51.100.1", private: "192.0.2.1" }, { public: "2001:db8::1" }],
      minPort: 50000,
      maxPort: 50100,
      realm: "example.org",
      secrets: [SECRET],
      allowLoopbackPeers: true,
      allowedPeerIps: ["10.0.0.0/8", "fc00::/7"],
      deniedPeerIps: ["203.0.113.0/24"],
      userQuota: 3,
      maxAllocationsPerIp: 7,
      totalQuota: 100,
      maxPermissionsPerAllocation: 8,
      maxChannelsPerAllocation: 16,
      maxBps: 1000,
      bpsCapacity: 2000,
      maxAllocateLifetime: 600,
      staleNonceSeconds: 300,
      unauthenticatedRate: 5,
      unauthenticatedBurst: 10,
      maxConnectionsPerIp: 0,
      maxAllocateTimeoutSeconds: 30,
      strictExpiry: true,
      maxCredentialTtl: 3600,
      credentialClockSkew: 5,
      software: "relaykit",
      configFile: null,
      logLevel: "info",
      udpIo: "dgram",
      tcpIo: "net",
      prometheus: null,
      drainTimeoutSeconds: 0,
      externalIpStunServer: null,
      fleet: null,
      relayThreads: 4,
    } satisfies RelayConfig);
  });

  it("lets a flag win over the variable, and the variable over the default", () => {
    const env = { RELAY_LISTENING_PORT: "4000", RELAY_MAX_BPS: "500", RELAY_REALM: "from-env", RELAY_LISTENING_IP: "::1" };
    expect(config([...BASE, "--listening-port=5000", "--realm=from-flag"], env)).toMatchObject({
      listeningPort: 5000,
      realm: "from-flag",
      maxBps: 500,
      listeningIps: ["127.0.0.1"],
    });
    expect(config([`--static-auth-secret=${SECRET}`], env)).toMatchObject({ listeningPort: 4000, realm: "from-env", listeningIps: ["::1"] });
    expect(config(BASE, {}).listeningPort).toBe(RELAY_DEFAULTS.listeningPort);
    // A bad variable is not looked at when the flag is given.
    expect(config([...BASE, "--min-port=40000"], { RELAY_MIN_PORT: "x" }).minPort).toBe(40000);
    // A switch on the command line wins over a variable saying false.
    expect(config([...BASE, "--allow-loopback-peers"], { RELAY_ALLOW_LOOPBACK_PEERS: "false" }).allowLoopbackPeers).toBe(true);
  });

  it("reads switches as true, false, 1 or 0", () => {
    for (const [text, value] of [["true", true], ["1", true], ["True", true], ["false", false], ["0", false], ["FALSE", false]] as const) {
      expect(config(BASE, { RELAY_ALLOW_LOOPBACK_PEERS: text }).allowLoopbackPeers).toBe(value);
      expect(config(BASE, { RELAY_STRICT_EXPIRY: text }).strictExpiry).toBe(value);
      expect(config(BASE, { RELAY_NO_UDP: text }).udp).toBe(!value);
    }
    expect(failure(BASE, { RELAY_ALLOW_LOOPBACK_PEERS: "yes" })).toBe('RELAY_ALLOW_LOOPBACK_PEERS is "yes"; it must be true, false, 1 or 0');
  });

  it("takes repeatable options as comma-separated lists, which a flag replaces", () => {
    expect(config([`--static-auth-secret=${SECRET}`], { RELAY_LISTENING_IP: " 127.0.0.1 , ::1 ," }).listeningIps).toEqual(["127.0.0.1", "::1"]);
    expect(config(BASE, { RELAY_LISTENING_IP: "::1" }).listeningIps).toEqual(["127.0.0.1"]);
    expect(config(["--listening-ip=127.0.0.1"], { RELAY_STATIC_AUTH_SECRET: "one-secret,two-secret", RELAY_SECRETS: "three-secret" }).secrets).toEqual([
      "one-secret",
      "two-secret",
      "three-secret",
    ]);
    expect(config(["--listening-ip=127.0.0.1"], { RELAY_SECRETS: "a-secret, b-secret" }).secrets).toEqual(["a-secret", "b-secret"]);
    expect(config(BASE, { RELAY_SECRETS: "env-secret" }).secrets).toEqual([SECRET]);
    expect(failure([`--static-auth-secret=${SECRET}`], { RELAY_LISTENING_IP: "127.0.0.1,nope" })).toBe('RELAY_LISTENING_IP "nope" is not an IP address');
  });

  it("counts an empty variable as unset", () => {
    expect(config(BASE, { RELAY_LISTENING_PORT: "", RELAY_NO_UDP: " ", RELAY_REALM: "" })).toMatchObject({ listeningPort: 3478, udp: true, realm: "relaykit" });
  });

  it("names the variable in errors", () => {
    expect(failure(BASE, { RELAY_MIN_PORT: "x" })).toBe('RELAY_MIN_PORT is "x"; it must be a whole number from 1 to 65535');
    expect(failure(BASE, { RELAY_STALE_NONCE: "10" })).toMatch(/^RELAY_STALE_NONCE is "10"; it must be a whole number of seconds from 30 to 86400/);
    expect(failure(BASE, { RELAY_MAX_CHANNELS: "0" })).toMatch(/^RELAY_MAX_CHANNELS is "0"/);
    expect(failure(BASE, { RELAY_EXTERNAL_IP: "1.2.3" })).toMatch(/^RELAY_EXTERNAL_IP "1.2.3" must be PUBLIC or PUBLIC\/PRIVATE/);
    expect(failure(BASE, { RELAY_NO_UDP: "1", RELAY_NO_TCP: "1" })).toMatch(/^RELAY_NO_UDP and RELAY_NO_TCP together leave nothing to listen on/);
  });
});

describe("secrets from files", () => {
  it("reads one secret per line, trimmed, skipping blank lines", async () => {
    const first = await secretFile("turn-secrets", "  file-secret-one  \r\n\n\t\nfile-secret-two\n");
    const second = await secretFile("turn-secret-2", "file-secret-three");
    expect(config(["--listening-ip=127.0.0.1", `--static-auth-secret-file=${first}`, "--static-auth-secret-file", second]).secrets).toEqual([
      "file-secret-one",
      "file-secret-two",
      "file-secret-three",
    ]);
    expect(config(["--listening-ip=127.0.0.1"], { RELAY_STATIC_AUTH_SECRET_FILE: `${first},${second}` }).secrets).toEqual([
      "file-secret-one",
      "file-secret-two",
      "file-secret-three",
    ]);
  });

  it("adds file secrets after the inline ones, without repeats", async () => {
    const path = await secretFile("mixed", `${SECRET}\nfile-only-secret\n`);
    expect(config([...BASE, `--static-auth-secret-file=${path}`]).secrets).toEqual([SECRET, "file-only-secret"]);
    expect(config(BASE, { RELAY_STATIC_AUTH_SECRET_FILE: path }).secrets).toEqual([SECRET, "file-only-secret"]);
  });

  it("refuses a missing file or one with no secret, naming the option and the path", async () => {
    const missing = join(dir, "no-such-secret");
    expect(failure(["--listening-ip=127.0.0.1", `--static-auth-secret-file=${missing}`])).toBe(
      `--static-auth-secret-file ${JSON.stringify(missing)} cannot be read (there is no such file); it must be a readable file with one secret per line`,
    );
    expect(failure(["--listening-ip=127.0.0.1"], { RELAY_STATIC_AUTH_SECRET_FILE: missing })).toMatch(/^RELAY_STATIC_AUTH_SECRET_FILE "/);
    const blank = await secretFile("blank", "\n  \n");
    expect(failure(["--listening-ip=127.0.0.1", `--static-auth-secret-file=${blank}`])).toMatch(/has no secret in it/);
    expect(failure(["--listening-ip=127.0.0.1", `--static-auth-secret-file=${dir}`])).toMatch(/is not a file/);
  });
});

describe("command line", () => {
  it("refuses unknown flags, naming them and pointing at --help", () => {
    expect(failure([...BASE, "--use-auth-secret"])).toBe("unknown option --use-auth-secret; see --help for the options");
    expect(failure([...BASE, "--listening_port=3478"])).toMatch(/unknown option --listening_port; see --help/);
    expect(failure([...BASE, "-v"])).toMatch(/unknown option -v; see --help/);
  });

  it("refuses stray arguments and missing values", () => {
    expect(failure([...BASE, "3478"])).toMatch(/unexpected argument 3 that is not an option.*see --help/);
    expect(failure([...BASE, "--realm"])).toBe("--realm needs a value; see --help");
    expect(failure(["--realm", "--listening-ip=127.0.0.1"])).toMatch(/--realm needs a value; to give one that starts with a dash write --realm=-VALUE/);
  });

  it("never quotes a secret in an error", async () => {
    const fileSecret = "file-secret-9c1d";
    const path = await secretFile("leak", `${fileSecret}\n`);
    const cases: [string[], Env][] = [
      [[...BASE, `--min-port=${SECRET}`], {}],
      [[...BASE, `--realm=${SECRET}`, "--no-udp", "--no-tcp"], {}],
      [[...BASE, `--listening-ip=${SECRET}`], {}],
      [[...BASE, `--external-ip=${SECRET}`], {}],
      [[...BASE, `--denied-peer-ip=${SECRET}`], {}],
      [["--listening-ip=127.0.0.1", "--static-auth-secret=", SECRET], {}],
      [["--listening-ip=127.0.0.1", "--static-auth-secret", SECRET, SECRET], {}],
      [["--listening-ip=127.0.0.1", "--static-auth-secret", SECRET, `--cert=${SECRET}`], {}],
      [["--listening-ip=127.0.0.1"], { RELAY_SECRETS: SECRET, RELAY_MAX_BPS: SECRET }],
      [["--listening-ip=127.0.0.1"], { RELAY_STATIC_AUTH_SECRET: `x-secret,${SECRET}`, RELAY_ALLOW_LOOPBACK_PEERS: SECRET }],
      [["--listening-ip=127.0.0.1", `--static-auth-secret-file=${path}`, `--max-bps=${fileSecret}`], {}],
      [["--listening-ip=127.0.0.1", `--static-auth-secret-file=${path}`], { RELAY_SOFTWARE: `${fileSecret}${"x".repeat(200)}` }],
    ];
    for (const [argv, env] of cases) {
      const message = failure(argv, env);
      expect(message).not.toContain(SECRET);
      expect(message).not.toContain(fileSecret);
    }
    expect(failure([...BASE, `--min-port=${SECRET}`])).toBe('--min-port is "<secret>"; it must be a whole number from 1 to 65535');
  });
});

describe("--help", () => {
  const OPTIONS = [
    "listening-ip",
    "listening-port",
    "no-udp",
    "no-tcp",
    "tls-listening-port",
    "cert",
    "pkey",
    "relay-ip",
    "external-ip",
    "min-port",
    "max-port",
    "allow-loopback-peers",
    "allowed-peer-ip",
    "denied-peer-ip",
    "realm",
    "static-auth-secret",
    "static-auth-secret-file",
    "stale-nonce",
    "strict-expiry",
    "max-credential-ttl",
    "credential-clock-skew",
    "user-quota",
    "max-allocations-per-ip",
    "total-quota",
    "max-allocate-lifetime",
    "max-permissions",
    "max-channels",
    "max-bps",
    "bps-capacity",
    "unauthenticated-rate",
    "unauthenticated-burst",
    "max-connections-per-ip",
    "max-allocate-timeout",
    "software",
    "config",
    "relay-threads",
    "udp-io",
    "tcp-io",
    "log-level",
    "prometheus",
    "prometheus-port",
    "prometheus-address",
    "prometheus-token-file",
    "drain-timeout",
    "external-ip-stun-server",
    "fleet-url",
    "fleet-key-file",
    "fleet-relay-id",
    "fleet-region",
    "fleet-location",
    "public-url",
  ];

  it("is asked for with --help, whatever else is in the environment", () => {
    expect(parseRelayArgs(["--help"])).toEqual({ help: true });
    expect(parseRelayArgs(["--help"], { RELAY_MIN_PORT: "x" })).toEqual({ help: true });
  });

  it("lists every option with its default and its variable, and the precedence", () => {
    for (const option of OPTIONS) {
      const line = RELAY_USAGE.split("\n").findIndex((text) => text.startsWith(`  --${option} `) || text === `  --${option}` || new RegExp(`^  --${option}\\s`).test(text));
      expect(line, option).toBeGreaterThan(-1);
      // A long flag has its help on a line of its own; the default comes on the line after the help.
      const next = RELAY_USAGE.split("\n").slice(line + 1, line + 3).find((text) => text.trim().startsWith("default:")) ?? "";
      expect(next, option).toMatch(new RegExp(`default: .+; env: RELAY_${option.toUpperCase().replace(/-/g, "_")}\\b`));
    }
    expect(RELAY_USAGE).toContain("command-line flag > environment variable > config file > default");
    expect(RELAY_USAGE).toContain("RELAY_SECRETS");
    expect(RELAY_USAGE).toMatch(/--tls-listening-port N .*443/);
    expect(RELAY_USAGE).toMatch(/default: 5349 with --cert and --pkey/);
    expect(RELAY_USAGE).toContain("--help");
  });

  it("documents each option that parses", () => {
    for (const option of OPTIONS) {
      const documented = RELAY_USAGE.includes(`--${option}`);
      expect(documented, option).toBe(true);
    }
    // And nothing the parser accepts is missing from the list above.
    const listed = [...RELAY_USAGE.matchAll(/^ {2}--([a-z-]+)/gm)].map((match) => match[1]).filter((name) => name !== "help");
    expect(listed.sort()).toEqual([...OPTIONS].sort());
  });
});

describe("config file", () => {
  it("reads coturn's name=value format: switches, repeated lists, comments, a tolerated leading --", async () => {
    const path = await secretFile(
      "relay.conf",
      [
        "# the relay on a cloud VM",
        "listening-ip=127.0.0.1",
        "listening-ip = ::1",
        "",
        "  realm=from-file  ",
        "--min-port=50000",
        "max-port=50100",
        "allow-loopback-peers",
        "strict-expiry=false",
        `static-auth-secret=${SECRET}#with-a-hash`,
        "external-ip=198.51.100.1/127.0.0.1",
        "log-level=warn",
        "drain-timeout=120",
      ].join("\n"),
    );
    expect(config([`--config=${path}`])).toMatchObject({
      listeningIps: ["127.0.0.1", "::1"],
      realm: "from-file",
      minPort: 50000,
      maxPort: 50100,
      allowLoopbackPeers: true,
      strictExpiry: false,
      secrets: [`${SECRET}#with-a-hash`],
      externalIps: [{ public: "198.51.100.1", private: "127.0.0.1" }],
      logLevel: "warn",
      drainTimeoutSeconds: 120,
      configFile: path,
    });
    expect(config([], { RELAY_CONFIG: path }).realm).toBe("from-file");
  });

  it("ranks below flags and the environment, above the defaults, option by option", async () => {
    const path = await secretFile("ranked.conf", `listening-ip=127.0.0.1\nstatic-auth-secret=${SECRET}\nrealm=file\nmin-port=50000\nmax-port=50100\nlistening-port=4000\nno-udp=true\n`);
    const parsed = config([`--config=${path}`, "--realm=flag", "--listening-ip=::1"], { RELAY_MIN_PORT: "50050", RELAY_REALM: "env", RELAY_NO_UDP: "false" });
    expect(parsed).toMatchObject({ realm: "flag", minPort: 50050, maxPort: 50100, listeningPort: 4000, udp: true, listeningIps: ["::1"], maxBps: 0 });
    // A list from the environment replaces the file's list entirely, as a flag replaces the variable.
    expect(config([`--config=${path}`], { RELAY_LISTENING_IP: "::1" }).listeningIps).toEqual(["::1"]);
  });

  it("names the option, the file and the line in errors, and never quotes a secret", async () => {
    const bad = async (name: string, text: string) => failure([`--config=${await secretFile(name, text)}`, "--listening-ip=127.0.0.1", `--static-auth-secret=${SECRET}`]);
    const dirPath = (name: string) => join(dir, name);
    expect(await bad("port.conf", "# ports\nmin-port=70000\n")).toBe(`min-port in ${dirPath("port.conf")} line 2 is "70000"; it must be a whole number from 1 to 65535`);
    expect(await bad("unknown.conf", "listening-port=3478\nbogus-option=1\n")).toBe(`${dirPath("unknown.conf")} line 2: unknown option "bogus-option"; write name=value with an option from --help`);
    expect(await bad("twice.conf", "realm=a\nrealm=b\n")).toBe(`${dirPath("twice.conf")} line 2: realm is given again (first on line 1); it takes one value`);
    expect(await bad("bare.conf", "realm\n")).toBe(`${dirPath("bare.conf")} line 1: realm needs a value; write realm=VALUE`);
    expect(await bad("switch.conf", "strict-expiry=maybe\n")).toBe(`strict-expiry in ${dirPath("switch.conf")} line 1 is "maybe"; it must be true, false, 1 or 0`);
    expect(await bad("nested.conf", "config=/etc/other.conf\n")).toMatch(/line 1: config cannot be set in a config file/);
    // A line that is only a secret (a mistake) is not echoed back.
    const straySecret = "Zq9+bare/Secret";
    const stray = await bad("stray.conf", `${straySecret}\n`);
    expect(stray).toMatch(/line 1: unknown option \(not shown\)/);
    expect(stray).not.toContain(straySecret);
    // One that looks like an option name is quoted, unless it is a known secret.
    expect(await bad("stray-known.conf", `${SECRET}\n`)).toMatch(/line 1: unknown option "<secret>"/);
    // A secret given in the file is scrubbed from a later error that quotes it.
    const fileSecret = "file-secret-0b5e9d";
    expect(failure([`--config=${await secretFile("secret.conf", `static-auth-secret=${fileSecret}\nlistening-ip=127.0.0.1\nrealm=${fileSecret}${"x".repeat(130)}\n`)}`])).not.toContain(fileSecret);
    expect(failure(["--config=/nonexistent/relay.conf"])).toBe('--config "/nonexistent/relay.conf" cannot be read (there is no such file); it must be a readable config file');
    expect(failure([], { RELAY_CONFIG: dir })).toBe(`RELAY_CONFIG ${JSON.stringify(dir)} is not a file; it must be a readable config file`);
  });
});

describe("operations options", () => {
  it("turns on the metrics listener with its defaults, or where it is told", async () => {
    expect(config([...BASE, "--prometheus"]).prometheus).toEqual({ address: "127.0.0.1", port: 9641, token: null });
    const tokenFile = await secretFile("metrics-token", "\n  s3cr3t-metrics-token \n");
    expect(config([...BASE, "--prometheus", "--prometheus-port=9100", "--prometheus-address=::", `--prometheus-token-file=${tokenFile}`]).prometheus).toEqual({
      address: "::",
      port: 9100,
      token: "s3cr3t-metrics-token",
    });
    expect(config(BASE, { RELAY_PROMETHEUS: "1", RELAY_PROMETHEUS_PORT: "9000" }).prometheus).toEqual({ address: "127.0.0.1", port: 9000, token: null });
  });

  it("refuses metrics options without --prometheus, bad addresses and empty token files, naming the option", async () => {
    expect(failure([...BASE, "--prometheus-port=9000"])).toBe("--prometheus-port is given without --prometheus: turn the metrics listener on with --prometheus (or RELAY_PROMETHEUS=1)");
    expect(failure([...BASE, "--prometheus", "--prometheus-address=localhost"])).toBe('--prometheus-address "localhost" is not an IP address');
    expect(failure([...BASE], { RELAY_PROMETHEUS: "1", RELAY_PROMETHEUS_PORT: "65536" })).toBe('RELAY_PROMETHEUS_PORT is "65536"; it must be a whole number from 0 to 65535');
    const empty = await secretFile("empty-token", "\n");
    expect(failure([...BASE, "--prometheus", `--prometheus-token-file=${empty}`])).toBe(`--prometheus-token-file ${JSON.stringify(empty)} is empty; it must hold the metrics bearer token`);
    const twoWords = await secretFile("two-word-token", "one-token-secret another");
    const message = failure([...BASE, "--prometheus", `--prometheus-token-file=${twoWords}`]);
    expect(message).toMatch(/--prometheus-token-file .* holds more than one word/);
    expect(message).not.toContain("one-token-secret");
  });

  it("reads the drain timeout, the log level, the UDP I/O and the STUN server for discovery", () => {
    expect(config([...BASE, "--drain-timeout=300"]).drainTimeoutSeconds).toBe(300);
    expect(failure([...BASE, "--drain-timeout=-1"])).toMatch(/^--drain-timeout/);
    expect(failure([...BASE, "--drain-timeout=86401"])).toBe('--drain-timeout is "86401"; it must be a whole number of seconds from 0 to 86400');
    expect(config([...BASE, "--log-level=DEBUG"]).logLevel).toBe("debug");
    expect(failure([...BASE, "--log-level=verbose"])).toBe('--log-level is "verbose"; it must be one of trace, debug, info, warn, error, fatal, silent');
    expect(config([...BASE, "--udp-io=Native"]).udpIo).toBe("native");
    expect(failure([...BASE, "--udp-io=io_uring"])).toBe('--udp-io is "io_uring"; it must be one of auto, native, dgram');
    expect(config([...BASE, "--tcp-io=NET"]).tcpIo).toBe("net");
    expect(failure([...BASE, "--tcp-io=libuv"])).toBe('--tcp-io is "libuv"; it must be one of auto, native, net');
    expect(config(BASE).relayThreads).toBe("auto");
    expect(config([...BASE, "--relay-threads=Auto"]).relayThreads).toBe("auto");
    expect(config([...BASE, "--relay-threads=8"]).relayThreads).toBe(8);
    for (const bad of ["0", "129", "two", "-1"]) {
      expect(failure([...BASE, `--relay-threads=${bad}`])).toBe(`--relay-threads is "${bad}"; it must be auto (the CPUs this process may use) or a whole number from 1 to 128`);
    }
    const stun = (value: string) => config([...BASE, `--external-ip-stun-server=${value}`]).externalIpStunServer;
    expect(stun("stun.example.com")).toEqual({ host: "stun.example.com", port: 3478 });
    expect(stun("192.0.2.1:19302")).toEqual({ host: "192.0.2.1", port: 19302 });
    expect(stun("2001:db8::1")).toEqual({ host: "2001:db8::1", port: 3478 });
    expect(stun("[2001:db8::1]:3479")).toEqual({ host: "2001:db8::1", port: 3479 });
    expect(failure([...BASE, "--external-ip-stun-server=host:99999"])).toMatch(/^--external-ip-stun-server "host:99999" must be HOST or HOST:PORT/);
    expect(failure([...BASE, "--external-ip-stun-server=bad host"])).toMatch(/^--external-ip-stun-server "bad host" must be HOST/);
    expect(failure([...BASE, "--external-ip-stun-server=192.0.2.1", "--external-ip=198.51.100.1"])).toMatch(
      /^--external-ip-stun-server and --external-ip are both given/,
    );
  });
});
