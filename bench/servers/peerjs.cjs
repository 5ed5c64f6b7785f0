/**
 * The PeerJS server (npm `peer`, the devDependency) on 127.0.0.1:<port> for bench/signaling.ts; its
 * WebSocket is at /peerjs?key=peerjs&id=<id>&token=<token>. Usage: node bench/servers/peerjs.cjs <port>
 */
"use strict";
const { PeerServer } = require("peer");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port < 1) {
  process.stderr.write("usage: peerjs.cjs <port>\n");
  process.exit(2);
}
const server = PeerServer({ host: "127.0.0.1", port, path: "/", key: "peerjs", concurrent_limit: 100_000 }, () => {
  process.stdout.write(`peerjs listening on 127.0.0.1:${port}\n`);
});
server.on("error", (error) => process.stderr.write(`peerjs error: ${error.message}\n`));
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
