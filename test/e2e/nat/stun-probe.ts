/**
 * A tiny STUN tool for the NAT lab's preconditions, written with the relay's own codec (relay/stun/).
 * Run inside one of the lab's namespaces (`ip netns exec <ns> node --import tsx …`):
 *
 *   stun-probe.ts serve --address A --port P [--port P2 …] --max-ms N
 *       answers STUN Binding requests on each port with the source it saw (XOR-MAPPED-ADDRESS);
 *       prints {"event":"ready",…} once bound, and exits by itself after N ms.
 *   stun-probe.ts map --server A:P [--server A:P2 …] --timeout-ms N
 *       sends a Binding request to every server from ONE socket (retrying every RETRY_MS) and prints
 *       {"localPort":…,"mapped":[{"server","address","port"} | {"server","error"}]}.
 *
 * `map` to two ports of one server tells the NAT's mapping behaviour: a symmetric NAT shows each
 * destination a different public port, a cone NAT the same one. `map` to an address that should be
 * unreachable (the other home's LAN) must time out. The last stdout line is the JSON result.
 */
import { createSocket } from "node:dgram";
import { readXorAddress, encodeXorAddress, type TransportAddress } from "../../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId } from "../../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { decodeStunMessage, findAttribute } from "../../../relay/stun/message.js";
import type { MapReport, MappedResult } from "./cases.js";

const RETRY_MS = 250;

function parseEndpoint(text: string): { address: string; port: number } {
  const match = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(text);
  if (match === null) throw new Error(`--server must be IPv4:port, got ${JSON.stringify(text)}`);
  return { address: match[1]!, port: Number(match[2]) };
}

function readArgs(argv: string[]): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (name === undefined || !name.startsWith("--") || value === undefined) throw new Error(`expected --name value pairs, got ${JSON.stringify(argv.slice(i))}`);
    values.set(name.slice(2), [...(values.get(name.slice(2)) ?? []), value]);
  }
  return values;
}

function positiveNumber(values: Map<string, string[]>, name: string): number {
  const value = Number(values.get(name)?.[0]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

async function serve(values: Map<string, string[]>): Promise<void> {
  const address = values.get("address")?.[0];
  if (address === undefined) throw new Error("serve needs --address");
  const ports = (values.get("port") ?? []).map(Number);
  if (ports.length === 0 || ports.some((port) => !Number.isInteger(port) || port <= 0 || port > 65_535)) throw new Error("serve needs --port 1-65535 (repeatable)");
  const maxMs = positiveNumber(values, "max-ms");
  const sockets = await Promise.all(
    ports.map(
      (port) =>
        new Promise<ReturnType<typeof createSocket>>((resolve, reject) => {
          const socket = createSocket("udp4");
          socket.once("error", reject);
          socket.on("message", (data, from) => {
            const decoded = decodeStunMessage(data);
            if (!decoded.ok || decoded.message.method !== StunMethod.Binding || decoded.message.messageClass !== StunClass.Request) return;
            const seen: TransportAddress = { family: 4, address: from.address, port: from.port };
            const transactionId = decoded.message.transactionId;
            const answer = buildStunMessage({
              method: StunMethod.Binding,
              messageClass: StunClass.SuccessResponse,
              transactionId,
              attributes: [encodeXorAddress(AttributeType.XorMappedAddress, seen, transactionId)],
            });
            socket.send(answer, from.port, from.address);
          });
          socket.bind(port, address, () => resolve(socket));
        }),
    ),
  );
  process.stdout.write(`${JSON.stringify({ event: "ready", address, ports })}\n`);
  await new Promise((resolve) => setTimeout(resolve, maxMs));
  for (const socket of sockets) socket.close();
}

async function map(values: Map<string, string[]>): Promise<MapReport> {
  const servers = (values.get("server") ?? []).map(parseEndpoint);
  if (servers.length === 0) throw new Error("map needs --server A:P (repeatable)");
  const timeoutMs = positiveNumber(values, "timeout-ms");
  const socket = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "0.0.0.0", () => resolve());
  });
  socket.on("error", () => {});
  const results: (MappedResult | undefined)[] = servers.map(() => undefined);
  // One transaction id per server, so each answer is matched to the server it came from.
  const transactions = servers.map(() => newTransactionId());
  socket.on("message", (data) => {
    const decoded = decodeStunMessage(data);
    if (!decoded.ok || decoded.message.messageClass !== StunClass.SuccessResponse) return;
    const index = transactions.findIndex((id) => id.equals(decoded.message.transactionId));
    const server = servers[index];
    if (server === undefined || results[index] !== undefined) return;
    const attribute = findAttribute(decoded.message, AttributeType.XorMappedAddress);
    const mapped = attribute === undefined ? undefined : readXorAddress(decoded.message, attribute);
    results[index] = mapped?.ok
      ? { server: `${server.address}:${server.port}`, address: mapped.value.address, port: mapped.value.port }
      : { server: `${server.address}:${server.port}`, error: "answer without a readable XOR-MAPPED-ADDRESS" };
  });
  const deadline = Date.now() + timeoutMs;
  while (results.some((result) => result === undefined) && Date.now() < deadline) {
    servers.forEach((server, index) => {
      if (results[index] !== undefined) return;
      const request = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: transactions[index]! });
      socket.send(request, server.port, server.address);
    });
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
  const localPort = socket.address().port;
  socket.close();
  return {
    localPort,
    mapped: servers.map((server, index) => results[index] ?? { server: `${server.address}:${server.port}`, error: `no answer within ${timeoutMs} ms` }),
  };
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const values = readArgs(rest);
  if (mode === "serve") return serve(values);
  if (mode === "map") {
    process.stdout.write(`${JSON.stringify(await map(values))}\n`);
    return;
  }
  throw new Error(`usage: stun-probe.ts serve --address A --port P --max-ms N | map --server A:P --timeout-ms N (got ${JSON.stringify(mode)})`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stdout.write(`${JSON.stringify({ error: error instanceof Error ? error.message : String(error) })}\n`);
    process.exit(1);
  },
);
