/**
 * Run by udp-socket.test.ts inside a loopback-only namespace whose `lo` is throttled (tbf), so the
 * kernel holds sent datagrams and a small send buffer really fills: the native socket must queue
 * what meets EAGAIN, flush it in order once writable, and drop (and count) what exceeds its queue.
 * Prints one JSON line: { sent, received, inOrder, queued, dropped }.
 */
import { createSocket } from "node:dgram";
import { openRelayUdpSocket } from "../../../relay/transport/udp-socket.js";

const SENT = 40;
const DATAGRAM_BYTES = 8_000;
/** The native socket's buffers, and with them the bound of its send queue. */
const SEND_BUFFER_BYTES = 65_536;
const WAIT_MS = 8_000;

const receiver = createSocket({ type: "udp4", recvBufferSize: 4 * 1024 * 1024 });
await new Promise<void>((resolve) => receiver.bind(0, "127.0.0.1", resolve));
let received = 0;
let next = 0;
let inOrder = true;
receiver.on("message", (data) => {
  const sequence = data.readUInt32BE(0);
  if (sequence < next) inOrder = false;
  next = sequence + 1;
  received++;
});

const sender = await openRelayUdpSocket("native", 4, "127.0.0.1", 0, SEND_BUFFER_BYTES);
if (sender.io !== "native" || !("sendCounts" in sender)) throw new Error("not the native socket");
const counts = () => (sender as unknown as { sendCounts(): { queued: number; dropped: number } }).sendCounts();
const datagram = Buffer.alloc(DATAGRAM_BYTES, 0x5a);
// One synchronous burst: nothing drains the socket buffer in between but the throttled qdisc.
for (let sequence = 0; sequence < SENT; sequence++) {
  datagram.writeUInt32BE(sequence, 0);
  sender.send(datagram, 0, datagram.length, receiver.address().port, "127.0.0.1");
}
const { queued, dropped } = counts();
const deadline = Date.now() + WAIT_MS;
while (received < SENT - dropped && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
console.log(JSON.stringify({ sent: SENT, received, inOrder, queued, dropped }));
await new Promise<void>((resolve) => sender.close(resolve));
receiver.close();
