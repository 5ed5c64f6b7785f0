/**
 * A stand-in for a relay worker process (test/relay/cluster/shared-udp-socket.test.ts): adopts the UDP
 * socket it inherited as fd 3 and answers every datagram with its name, so the test sees which
 * process each source reaches. Prints "ready" once it receives; runs until killed.
 */
import { adoptNativeUdpSocket } from "../../../relay/transport/native-udp.js";

const name = process.argv[2] ?? "worker";
const socket = adoptNativeUdpSocket(3, 1 << 20);
socket.onDatagram = (_data, _offset, _length, address, port) => socket.send(Buffer.from(name), 0, Buffer.byteLength(name), port, address);
console.log("ready");
setInterval(() => {}, 60_000);
