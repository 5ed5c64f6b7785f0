/**
 * node-turn 0.0.6 (the devDependency, unmodified) as a process for the benchmark: UDP on
 * 127.0.0.1:<port>, long-term credentials with one static user (it has no TURN REST secret scheme),
 * relay ports <min>..<max>. Usage: node bench/servers/node-turn.cjs <port> <min> <max> <realm> <user> <password>
 */
"use strict";
const Turn = require("node-turn");

const [port, minPort, maxPort, realm, user, password] = process.argv.slice(2);
if (password === undefined) {
  process.stderr.write("usage: node-turn.cjs <port> <min-port> <max-port> <realm> <user> <password>\n");
  process.exit(2);
}
const server = new Turn({
  listeningIps: ["127.0.0.1"],
  relayIps: ["127.0.0.1"],
  listeningPort: Number(port),
  minPort: Number(minPort),
  maxPort: Number(maxPort),
  authMech: "long-term",
  credentials: { [user]: password },
  realm,
  debugLevel: "ERROR",
  log: (message) => process.stderr.write(`${message}\n`),
});
server.start();
process.stdout.write(`node-turn listening on 127.0.0.1:${port}\n`);
const stop = () => {
  server.stop();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
