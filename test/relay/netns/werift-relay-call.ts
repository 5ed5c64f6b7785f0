/**
 * Two werift peers that reach each other only through our relay. Meant to run INSIDE a fresh network
 * namespace with nothing but loopback (see test/relay/werift-relay.test.ts): it refuses to start when
 * the host has any non-loopback interface up, so werift can never reach a real network by accident.
 *
 *   npx tsx test/relay/netns/werift-relay-call.ts [udp|tcp] [--wrong-secret] [--timeout-ms=N]
 *
 * It starts a RelayServer on 127.0.0.1 (UDP+TCP, loopback peers allowed), mints credentials, creates
 * two RTCPeerConnections with `iceTransportPolicy: "relay"` and the relay as their only ICE server
 * (`turn:127.0.0.1:<port>?transport=udp|tcp`), exchanges offer/answer/candidates in-process, opens a
 * data channel and has every one of MESSAGES messages echoed back. It then reads each side's selected
 * candidate pair from getStats() and checks both ends of it are `relay` candidates.
 *
 * The last stdout line is a JSON summary (`{"ok":true,...}` or `{"ok":false,"error":...}`); the exit
 * code is 0 only when everything was checked. `--wrong-secret` mints the peers' credentials with a
 * secret the relay does not know (the negative control: it must never connect). A global timeout
 * ends the process with exit 1 whatever werift is doing.
 */
import { createSocket, type Socket } from "node:dgram";
import { networkInterfaces } from "node:os";
import { RTCPeerConnection, type RTCDataChannel } from "werift";
import { TurnKeyring } from "../../../shared/turn/credentials.js";
import { parseRelayArgs } from "../../../relay/config.js";
import { RelayServer, type RelayEvent } from "../../../relay/server/relay-server.js";
import { readErrorCode } from "../../../relay/stun/attributes.js";
import { AttributeType, StunClass } from "../../../relay/stun/constants.js";
import { decodeStunMessage, findAttribute } from "../../../relay/stun/message.js";
import { selectedPair } from "../../e2e/werift-stats.js";
import { withTimeout } from "../../node/processes.js";

const MESSAGES = 20;
const SECRET = "werift-relay-secret";
const WRONG_SECRET = "not-the-relay-secret";
const REALM = "relaykit.test";

type Transport = "udp" | "tcp";

interface Options {
  transport: Transport;
  wrongSecret: boolean;
  timeoutMs: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { transport: "udp", wrongSecret: false, timeoutMs: 20_000 };
  for (const arg of argv) {
    if (arg === "udp" || arg === "tcp") options.transport = arg;
    else if (arg === "--wrong-secret") options.wrongSecret = true;
    else if (arg.startsWith("--timeout-ms=")) options.timeoutMs = Number(arg.slice("--timeout-ms=".length));
    else throw new Error(`unknown argument ${arg}`);
  }
  if (!Number.isFinite(options.timeoutMs) || options.timeoutMs <= 0) throw new Error("--timeout-ms must be a positive number");
  return options;
}

const started = Date.now();
const events: RelayEvent[] = [];
const summary: Record<string, unknown> = {};

function finish(ok: boolean, error?: string): never {
  const line = { ok, ...(error === undefined ? {} : { error }), elapsedMs: Date.now() - started, ...summary, relayEvents: events };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  if (!ok) process.stderr.write(`werift-relay-call: ${error}\n`);
  process.exit(ok ? 0 : 1);
}

/** Anything but loopback up means we are not in the namespace the test made: refuse. */
function assertLoopbackOnly(): void {
  const others = Object.entries(networkInterfaces())
    .filter(([, addresses]) => (addresses ?? []).some((address) => !address.internal))
    .map(([name]) => name);
  if (others.length > 0) throw new Error(`refusing to run outside a loopback-only network namespace (interfaces up: ${others.join(", ")})`);
  if (!Object.values(networkInterfaces()).some((addresses) => (addresses ?? []).some((a) => a.address === "127.0.0.1"))) {
    throw new Error("loopback is not up (run `ip link set lo up` first)");
  }
}

const METHOD_NAMES: Record<number, string> = { 0x001: "binding", 0x003: "allocate", 0x004: "refresh", 0x008: "create-permission", 0x009: "channel-bind" };
const CLASS_NAMES: Record<number, string> = { [StunClass.Request]: "request", [StunClass.Indication]: "indication", [StunClass.SuccessResponse]: "success", [StunClass.ErrorResponse]: "error" };

/** `allocate/request/signed`, `allocate/error/401`, … for a STUN datagram; null for anything else. */
function describeStun(data: Buffer): string | null {
  const decoded = decodeStunMessage(data);
  if (!decoded.ok) return null;
  const { message } = decoded;
  const label = `${METHOD_NAMES[message.method] ?? `0x${message.method.toString(16)}`}/${CLASS_NAMES[message.messageClass] ?? message.messageClass}`;
  if (message.messageClass === StunClass.Request) {
    return `${label}/${findAttribute(message, AttributeType.MessageIntegrity) === undefined ? "unsigned" : "signed"}`;
  }
  if (message.messageClass === StunClass.ErrorResponse) {
    const attribute = findAttribute(message, AttributeType.ErrorCode);
    const code = attribute === undefined ? undefined : readErrorCode(message, attribute);
    return `${label}/${code?.ok ? code.value.code : "?"}`;
  }
  return label;
}

/**
 * A UDP forwarder between werift and the relay that records what crosses it (for the negative
 * control: the relay saw the peers' signed Allocates and refused them). One upstream socket per client.
 */
async function startUdpTap(relayPort: number): Promise<{ port: number; seen: Record<string, number>; close(): void }> {
  const seen: Record<string, number> = {};
  const note = (data: Buffer) => {
    const label = describeStun(data);
    if (label !== null) seen[label] = (seen[label] ?? 0) + 1;
  };
  const front = createSocket("udp4");
  const upstream = new Map<string, Socket>();
  front.on("message", (data, from) => {
    const key = `${from.address}:${from.port}`;
    let back = upstream.get(key);
    if (back === undefined) {
      back = createSocket("udp4");
      back.on("message", (answer) => {
        note(answer);
        front.send(answer, from.port, from.address);
      });
      back.on("error", () => {});
      back.bind(0, "127.0.0.1");
      upstream.set(key, back);
    }
    note(data);
    back.send(data, relayPort, "127.0.0.1");
  });
  front.on("error", () => {});
  await new Promise<void>((resolve) => front.bind(0, "127.0.0.1", resolve));
  return {
    port: front.address().port,
    seen,
    close: () => {
      front.close();
      for (const back of upstream.values()) back.close();
    },
  };
}

async function main(options: Options): Promise<void> {
  assertLoopbackOnly();
  const parsed = parseRelayArgs([
    "--listening-ip=127.0.0.1",
    "--listening-port=0",
    "--min-port=43000",
    "--max-port=43999",
    `--static-auth-secret=${SECRET}`,
    `--realm=${REALM}`,
    "--allow-loopback-peers",
  ]);
  if (parsed.help) throw new Error("unexpected --help");
  const relay = new RelayServer(parsed.config, (event) => events.push(event));
  const listeners = await relay.start();
  const listener = listeners.find((l) => l.transport === options.transport);
  if (listener === undefined) throw new Error(`the relay has no ${options.transport} listener`);
  // The negative control goes through a recording forwarder so it can show what the relay answered.
  let port = listener.port;
  if (options.wrongSecret) {
    if (options.transport !== "udp") throw new Error("--wrong-secret is only supported over udp");
    const tap = await startUdpTap(listener.port);
    summary["stunSeenByTap"] = tap.seen;
    port = tap.port;
  }
  const url = `turn:127.0.0.1:${port}?transport=${options.transport}`;
  summary["transport"] = options.transport;
  summary["url"] = url;

  const keyring = new TurnKeyring([options.wrongSecret ? WRONG_SECRET : SECRET]);
  const config = (credential: { username: string; password: string }) => ({
    iceServers: [{ urls: url, username: credential.username, credential: credential.password }],
    iceTransportPolicy: "relay" as const,
    // TURN/TCP connect bound (werift's default is 8 s); everything is on loopback.
    iceTurnConnectTimeout: 3,
  });
  const alice = new RTCPeerConnection(config(await keyring.mint("alice", 600)));
  const bob = new RTCPeerConnection(config(await keyring.mint("bob", 600)));
  const peers = [alice, bob];
  const states: Record<string, string[]> = { alice: [], bob: [] };
  alice.connectionStateChange.subscribe((state) => states["alice"]!.push(state));
  bob.connectionStateChange.subscribe((state) => states["bob"]!.push(state));
  summary["connectionStates"] = states;
  const candidates = { alice: 0, bob: 0 };
  summary["candidatesSignaled"] = candidates;

  // Trickle in-process: each side's candidates go straight to the other.
  alice.onIceCandidate.subscribe((candidate) => {
    if (candidate === undefined) return;
    candidates.alice++;
    void bob.addIceCandidate(candidate).catch(() => {});
  });
  bob.onIceCandidate.subscribe((candidate) => {
    if (candidate === undefined) return;
    candidates.bob++;
    void alice.addIceCandidate(candidate).catch(() => {});
  });

  // Bob echoes whatever arrives on the channel Alice opens.
  bob.onDataChannel.subscribe((channel: RTCDataChannel) => {
    channel.onMessage.subscribe((data) => channel.send(typeof data === "string" ? `echo:${data}` : data));
  });

  const channel = alice.createDataChannel("echo");
  const opened = new Promise<void>((resolve, reject) => {
    channel.stateChanged.subscribe((state) => {
      if (state === "open") resolve();
      if (state === "closed") reject(new Error("the data channel closed before it opened"));
    });
    for (const [name, pc] of [["alice", alice], ["bob", bob]] as const) {
      pc.connectionStateChange.subscribe((state) => {
        if (state === "failed") reject(new Error(`${name}'s connection failed`));
      });
    }
  });

  const phase = (name: string) => (summary["phase"] = name);
  phase("alice.setLocalDescription(offer)");
  const offer = await alice.createOffer();
  await alice.setLocalDescription(offer);
  phase("bob.setRemoteDescription(offer)");
  await bob.setRemoteDescription(alice.localDescription!);
  phase("bob.setLocalDescription(answer)");
  const answer = await bob.createAnswer();
  await bob.setLocalDescription(answer);
  phase("alice.setRemoteDescription(answer)");
  await alice.setRemoteDescription(bob.localDescription!);

  phase("waiting for the data channel to open");
  await opened; // bounded by the global timeout
  phase("echo");
  summary["openedAfterMs"] = Date.now() - started;

  // Every message must come back, in order (the channel is reliable and ordered).
  const expected = Array.from({ length: MESSAGES }, (_, i) => `message-${i}`);
  const received: string[] = [];
  const allEchoed = new Promise<void>((resolve) => {
    channel.onMessage.subscribe((data) => {
      received.push(typeof data === "string" ? data : `binary:${data.length}`);
      if (received.length === expected.length) resolve();
    });
  });
  for (const message of expected) channel.send(message);
  await withTimeout(allEchoed, 5_000, `all ${MESSAGES} echoes`);
  const wanted = expected.map((message) => `echo:${message}`);
  if (received.join("\n") !== wanted.join("\n")) throw new Error(`echoes differ: got ${JSON.stringify(received)}`);
  summary["messagesSent"] = expected.length;
  summary["messagesEchoed"] = received.length;

  const pairs = { alice: await selectedPair(alice), bob: await selectedPair(bob) };
  summary["selectedPairs"] = pairs;
  for (const [name, pair] of Object.entries(pairs)) {
    if (pair.local !== "relay" || pair.remote !== "relay") {
      throw new Error(`${name}'s selected pair is ${pair.local} → ${pair.remote}, not relay → relay`);
    }
    if (pair.localTypes.some((type) => type !== "relay")) throw new Error(`${name} gathered non-relay candidates: ${pair.localTypes.join(", ")}`);
  }
  phase("closing");
  summary["allocationsDuringCall"] = relay.allocationCount;
  // How each peer reached the relay (werift's stats do not report relayProtocol; the relay knows).
  summary["clientTransports"] = events.filter((event) => event.event === "allocation-start").map((event) => String(event["client"]).split(":")[0]);

  channel.close();
  await withTimeout(Promise.all(peers.map((pc) => pc.close())), 5_000, "closing both peers");
  await withTimeout(relay.stop(), 5_000, "stopping the relay");
}

let options: Options;
try {
  options = parseOptions(process.argv.slice(2));
} catch (error) {
  finish(false, error instanceof Error ? error.message : String(error));
}
const globalTimer = setTimeout(() => finish(false, `global timeout: no complete relay-only call within ${options.timeoutMs} ms`), options.timeoutMs);
main(options).then(
  () => {
    clearTimeout(globalTimer);
    finish(true);
  },
  (error: unknown) => {
    clearTimeout(globalTimer);
    finish(false, error instanceof Error ? error.message : String(error));
  },
);
