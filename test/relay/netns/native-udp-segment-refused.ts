/**
 * Run by udp-socket.test.ts inside a loopback-only namespace whose `lo` has an MTU of 1,200, so a
 * run of 1,400-byte datagrams cannot leave as one segmented send (UDP_SEGMENT needs each segment to
 * fit the route's MTU): the kernel refuses it, and the native socket must send the run again
 * datagram by datagram (fragmented by IP, as any datagram over the MTU is) and keep serving. Then a
 * run of small datagrams to the same receiver. Prints one JSON line:
 * { large: { sent, received, intact }, small: { sent, received, intact } }.
 */
import { createSocket } from "node:dgram";
import { openRelayUdpSocket, RELAY_SOCKET_BUFFER_BYTES } from "../../../relay/transport/udp-socket.js";

const RUN = 10;
const WAIT_MS = 5_000;

function marked(index: number, size: number): Buffer {
  const datagram = Buffer.alloc(size, index & 0xff);
  datagram.writeUInt32BE(index, 0);
  return datagram;
}

const receiver = createSocket({ type: "udp4", recvBufferSize: 4 * 1024 * 1024 });
await new Promise<void>((resolve) => receiver.bind(0, "127.0.0.1", resolve));
const received: Buffer[] = [];
receiver.on("message", (data) => received.push(data));

const sender = await openRelayUdpSocket("native", 4, "127.0.0.1", 0, RELAY_SOCKET_BUFFER_BYTES);
if (sender.io !== "native") throw new Error("not the native socket");
const trigger = createSocket("udp4");
await new Promise<void>((resolve) => trigger.bind(0, "127.0.0.1", resolve));

/** Sends a run of `RUN` datagrams of `size` from the sender's handler (so they are deferred and grouped); what arrived. */
async function run(size: number, first: number): Promise<{ sent: number; received: number; intact: boolean }> {
  received.length = 0;
  sender.onDatagram = () => {
    sender.onDatagram = () => {};
    for (let index = first; index < first + RUN; index++) sender.send(marked(index, size), 0, size, receiver.address().port, "127.0.0.1");
  };
  trigger.send(Buffer.from("go"), sender.address().port, "127.0.0.1");
  const deadline = Date.now() + WAIT_MS;
  while (received.length < RUN && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  const expected = Array.from({ length: RUN }, (_, offset) => marked(first + offset, size).toString("hex"));
  const intact = received.length === RUN && received.every((datagram, at) => datagram.toString("hex") === expected[at]);
  return { sent: RUN, received: received.length, intact };
}

const large = await run(1_400, 0);
const small = await run(100, RUN);
console.log(JSON.stringify({ large, small }));
await new Promise<void>((resolve) => sender.close(resolve));
trigger.close();
receiver.close();
