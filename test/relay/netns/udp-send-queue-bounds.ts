/**
 * Run by udp-socket.test.ts inside a loopback-only namespace whose `lo` is throttled (tbf), so sent
 * datagrams stay in the kernel and small send buffers really fill. Argument: native | dgram.
 *
 * Several sockets burst at once with a total bound (setUdpSendQueueLimit) below what their own
 * bounds allow together: the queues must stay within the total, the excess is dropped and counted,
 * everything not dropped arrives in order, and the bytes waiting go back to 0, both when the queues
 * drain and when a socket closes with datagrams still queued. Prints one JSON line (see `report`).
 */
import { createSocket } from "node:dgram";
import { openRelayUdpSocket, setUdpSendQueueLimit, udpSendTotals, type RelayUdpSocket } from "../../../relay/transport/udp-socket.js";

const io = process.argv[2] === "dgram" ? "dgram" : "native";
const SOCKETS = 4;
const PER_SOCKET = 10;
const DATAGRAM_BYTES = 8_000;
/** Each socket's buffers, and with them the bound of its own queue: two datagrams. */
const BUFFER_BYTES = 16_384;
/** All queues together: three datagrams, less than the four sockets' own bounds allow (eight). */
const TOTAL_BYTES = 24_000;
const WAIT_MS = 10_000;

setUdpSendQueueLimit(TOTAL_BYTES);

const receiver = createSocket({ type: "udp4", recvBufferSize: 4 * 1024 * 1024 });
await new Promise<void>((resolve) => receiver.bind(0, "127.0.0.1", resolve));
const next = new Map<number, number>();
let received = 0;
let inOrder = true;
receiver.on("message", (data, from) => {
  const sequence = data.readUInt32BE(0);
  if (sequence < (next.get(from.port) ?? 0)) inOrder = false;
  next.set(from.port, sequence + 1);
  received++;
});

/** What libuv (dgram) or the addon (native) holds now, read from the sockets themselves where we can. */
function heldNow(sockets: RelayUdpSocket[]): number {
  if (io === "native") return udpSendTotals().queuedBytes;
  return sockets.reduce((sum, socket) => sum + (socket as unknown as { socket: { getSendQueueSize(): number } }).socket.getSendQueueSize(), 0);
}

const before = udpSendTotals();
const sockets: RelayUdpSocket[] = [];
for (let i = 0; i < SOCKETS; i++) sockets.push(await openRelayUdpSocket(io, 4, "127.0.0.1", 0, BUFFER_BYTES));
/** A fresh buffer per send: dgram queues the caller's buffer itself, not a copy. */
function datagram(sequence: number): Buffer {
  const bytes = Buffer.alloc(DATAGRAM_BYTES, 0x5a);
  bytes.writeUInt32BE(sequence, 0);
  return bytes;
}
// One synchronous burst, round robin, so every socket meets its full buffer while the others queue too.
let peakHeld = 0;
let peakCounted = 0;
for (let sequence = 0; sequence < PER_SOCKET; sequence++) {
  for (const socket of sockets) {
    socket.send(datagram(sequence), 0, DATAGRAM_BYTES, receiver.address().port, "127.0.0.1");
    peakHeld = Math.max(peakHeld, heldNow(sockets));
    peakCounted = Math.max(peakCounted, udpSendTotals().queuedBytes);
  }
}
const afterBurst = udpSendTotals();
const perSocket = sockets.map((socket) => socket.sendCounts());
const sent = SOCKETS * PER_SOCKET;
const dropped = afterBurst.dropped - before.dropped;
const deadline = Date.now() + WAIT_MS;
while ((received < sent - dropped || udpSendTotals().queuedBytes > 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
const drained = udpSendTotals();
const heldAfterDrain = heldNow(sockets);

// A socket closed with datagrams still queued: what waited leaves the total, the running counts stay.
const closing = sockets[0]!;
for (let sequence = 0; sequence < PER_SOCKET; sequence++) closing.send(datagram(PER_SOCKET + sequence), 0, DATAGRAM_BYTES, receiver.address().port, "127.0.0.1");
const queuedBeforeClose = udpSendTotals().queuedBytes;
await new Promise<void>((resolve) => closing.close(resolve));
const afterClose = udpSendTotals();

console.log(
  JSON.stringify({
    io,
    sockets: SOCKETS,
    datagramBytes: DATAGRAM_BYTES,
    sent,
    received,
    inOrder,
    totalLimit: TOTAL_BYTES,
    peakHeld,
    peakCounted,
    queued: afterBurst.queued - before.queued,
    dropped,
    perSocketQueued: perSocket.reduce((sum, counts) => sum + counts.queued, 0),
    perSocketDropped: perSocket.reduce((sum, counts) => sum + counts.dropped, 0),
    queuedBytesAfterDrain: drained.queuedBytes,
    heldAfterDrain,
    queuedBeforeClose,
    queuedBytesAfterClose: afterClose.queuedBytes,
    droppedAfterClose: afterClose.dropped - before.dropped,
    closedSocketCounts: closing.sendCounts(),
  }),
);
await Promise.all(sockets.slice(1).map((socket) => new Promise<void>((resolve) => socket.close(resolve))));
receiver.close();
