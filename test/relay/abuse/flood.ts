/**
 * The unauthenticated flood, in a process of its own so the heap it measures is the relay's and not the test
 * runner's: `node --expose-gc --import tsx test/relay/abuse/flood.ts [requests]`.
 *
 * A relay with the default unauthenticated rate limit (20 answers/s, burst 40) on 127.0.0.1; one client socket
 * sends `requests` Allocates without credentials, `requests` Binding requests, and a tenth as many Allocates
 * signed with a made-up NONCE (the 438 path), all from one source. Sending waits for the relay to have read
 * what was sent, so the flood is processed rather than dropped by the kernel. Prints one JSON line: heap
 * before and after (each after a forced GC), how many datagrams the relay read, how many answers came back,
 * how long it took, and any uncaught error.
 */
import { createSocket } from "node:dgram";
import { encodeRequestedTransport, encodeText } from "../../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId } from "../../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../../relay/stun/constants.js";
import { REALM, countUdpReads, startRelay } from "../turn-client.js";

const requests = Number(process.argv[2] ?? 100_000);
const DEADLINE_MS = 40_000;
const BATCH = 64;
/** At most this many datagrams sent and not yet read by the relay (well within a loopback socket buffer). */
const IN_FLIGHT = 128;

const problems: string[] = [];
process.on("uncaughtException", (error) => problems.push(`uncaughtException: ${String(error)}`));
process.on("unhandledRejection", (error) => problems.push(`unhandledRejection: ${String(error)}`));

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc");

function heapAfterGc(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

const events: string[] = [];
const { relay, port } = await startRelay(["--min-port=46100", "--max-port=46101"], (event) => {
  if (event.event === "request-failed") events.push(JSON.stringify(event));
});

// Count what the relay's UDP listener reads (its own handler wrapped, not replaced).
const reads = countUdpReads(relay);

const client = createSocket("udp4");
await new Promise<void>((resolve) => client.bind(0, "127.0.0.1", resolve));
await new Promise<void>((resolve) => client.connect(port, "127.0.0.1", resolve));
let answers = 0;
client.on("message", () => answers++);

const unsignedAllocate = buildStunMessage({
  method: StunMethod.Allocate,
  messageClass: StunClass.Request,
  transactionId: newTransactionId(),
  attributes: [encodeRequestedTransport(17)],
});
const binding = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId: newTransactionId(), fingerprint: true });
const staleSigned = buildStunMessage({
  method: StunMethod.Allocate,
  messageClass: StunClass.Request,
  transactionId: newTransactionId(),
  attributes: [
    encodeRequestedTransport(17),
    encodeText(AttributeType.Username, `${Math.floor(Date.now() / 1000) + 600}:flood`),
    encodeText(AttributeType.Realm, REALM),
    encodeText(AttributeType.Nonce, "000000000000.AAAAAAAAAAAAAAAAAAAAAA"),
  ],
  messageIntegrityKey: Buffer.alloc(16, 7),
});

let sent = 0;
const startedAt = Date.now();
const deadline = startedAt + DEADLINE_MS;

/** Sends `count` copies of `template`, each with a transaction id of its own (a counter in bytes 8..11). */
async function flood(template: Buffer, count: number): Promise<number> {
  let done = 0;
  while (done < count && Date.now() < deadline) {
    const batch = Math.min(BATCH, count - done);
    for (let i = 0; i < batch; i++) {
      const packet = Buffer.from(template);
      packet.writeUInt32BE((sent + i) >>> 0, 8);
      client.send(packet);
    }
    sent += batch;
    done += batch;
    while (sent - reads() > IN_FLIGHT && Date.now() < deadline) await tick();
  }
  return done;
}

/** Waits (bounded) until the relay has read everything sent, then a little for the last answers. */
async function settle(): Promise<void> {
  const until = Date.now() + 3_000;
  while (reads() < sent && Date.now() < until) await tick();
  await new Promise((resolve) => setTimeout(resolve, 100));
}

// Warm-up: JIT, buffers and the rate limiter's bucket for 127.0.0.1 exist before the first measurement.
await flood(unsignedAllocate, 2_000);
await flood(binding, 2_000);
await settle();
const heapBefore = heapAfterGc();
const floodStartedAt = Date.now();
const readBefore = reads();

const allocates = await flood(unsignedAllocate, requests);
const bindings = await flood(binding, requests);
const stale = await flood(staleSigned, Math.floor(requests / 10));
await settle();
const floodMs = Date.now() - floodStartedAt;
const answersDuringRun = answers;
const runMs = Date.now() - startedAt;
const heapAfter = heapAfterGc();

const stillAnswers = await (async () => {
  // After a second of quiet the bucket holds 20 answers again: a Binding must be answered.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const before = answers;
  client.send(binding);
  const until = Date.now() + 2_000;
  while (answers === before && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
  return answers > before;
})();

const allocationCount = relay.allocationCount;
client.close();
await relay.stop();

console.log(
  JSON.stringify({
    requests: { allocates, bindings, stale },
    sent,
    read: reads(),
    readDuringFlood: reads() - readBefore,
    answers: answersDuringRun,
    runMs,
    floodMs,
    heapBefore,
    heapAfter,
    heapDelta: heapAfter - heapBefore,
    stillAnswers,
    allocationCount,
    events,
    problems,
  }),
);
