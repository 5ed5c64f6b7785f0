/**
 * Two werift peers in one room on the local Worker, relay-only through our relay: each a process of
 * its own running test/e2e/werift-peer.ts (the client library's RoomClient and Mesh). One sends
 * numbered messages, the other echoes them. Runs inside the loopback-only namespace the test made.
 *
 *   npx tsx test/e2e/netns/werift-call.ts --transport udp|tcp [--ttl N] [--hold-ms N] [--strict-expiry]
 *
 * With --ttl the Worker issues credentials that live N seconds, and --hold-ms keeps the call up that
 * long (the sender ticks every 500 ms), so the client's refresh before expiry can be watched.
 * --strict-expiry runs the relay with --strict-expiry, no clock skew and 10 s allocations: an
 * allocation made with an expired credential can no longer be refreshed, so the call survives only
 * if the client fetched fresh credentials and restarted ICE with them. Prints one JSON summary line.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { assertIsolatedNetwork } from "../isolation.js";
import { runWeriftPeer } from "../peer-process.js";
import { startStack, type TurnTransport } from "../stack.js";

const { values } = parseArgs({ options: { transport: { type: "string", default: "udp" }, ttl: { type: "string" }, "hold-ms": { type: "string", default: "1500" }, "strict-expiry": { type: "boolean", default: false } } });
const MESSAGES = 10;
const PEER_TIMEOUT_MS = 30_000 + Number(values["hold-ms"]);

async function main(): Promise<Record<string, unknown>> {
  assertIsolatedNetwork("werift-call");
  const transport = values.transport as TurnTransport;
  if (transport !== "udp" && transport !== "tcp") throw new Error("--transport must be udp or tcp");
  const stack = await startStack({
    turnTransports: [transport],
    ...(values.ttl !== undefined ? { turnTtlSeconds: Number(values.ttl) } : {}),
    ...(values["strict-expiry"] ? { maxAllocateLifetime: 10, relayArgs: ["--strict-expiry", "--credential-clock-skew=0"] } : {}),
  });
  try {
    const room = `werift-${randomUUID().slice(0, 8)}`;
    const common = ["--server", stack.workerUrl, "--room", room, "--relay-only", `--linger-ms=${values["hold-ms"]}`];
    const started = Date.now();
    const [sender, echoer] = await Promise.all([
      runWeriftPeer([...common, `--send=${MESSAGES}`, `--expect=${MESSAGES}`], PEER_TIMEOUT_MS),
      runWeriftPeer([...common, "--echo", `--expect=${MESSAGES}`], PEER_TIMEOUT_MS),
    ]);
    return { ok: sender.summary.ok && echoer.summary.ok, callMs: Date.now() - started, transport, room, sender: sender.summary, echoer: echoer.summary, stderr: sender.stderr + echoer.stderr, relayEvents: stack.relayEvents() };
  } finally {
    await stack.stop();
  }
}

main().then(
  (summary) => {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    process.exit(0);
  },
  (error: unknown) => {
    process.stdout.write(`${JSON.stringify({ ok: false, error: error instanceof Error ? error.message : String(error) })}\n`);
    process.exit(1);
  },
);
