// Node 20: mint join tokens with @relaykit/server and join a room on a running Worker with
// @relaykit/client (the `ws` package as the WebSocket: Node 20 has no global one). Two peers join,
// one signals the other; prints one JSON line with what happened. Run by ../packages.test.ts.
//
// Usage: node join.mjs <worker origin> <JOIN_SECRET> <room>
import { RoomClient } from "@relaykit/client";
import { mintJoinToken } from "@relaykit/server";
import { WebSocket } from "ws";

const [server, secret, room] = process.argv.slice(2);
/** Everything below is on loopback and takes well under a second; this bounds a hang. */
const DEADLINE_MS = 15_000;
const deadline = setTimeout(() => {
  console.error(`join.mjs: not done within ${DEADLINE_MS} ms`);
  process.exit(2);
}, DEADLINE_MS);

const join = (sub, name) =>
  new RoomClient({ server, room, WebSocket, token: () => mintJoinToken(secret, { room, sub, ttlSeconds: 60, meta: { name } }) });
const alice = join("alice", "Alice");
const bob = join("bob", "Bob");
for (const client of [alice, bob]) client.on("error", (error) => console.error(`join.mjs: ${error.code}: ${error.message}`));

const aliceWelcome = await alice.connect();
const received = new Promise((resolve) => bob.on("signal", (from, data) => resolve({ from, data })));
const bobWelcome = await bob.connect();
alice.signal(bobWelcome.peerId, { hello: "bob" });
const signal = await received;
console.log(
  JSON.stringify({
    alice: aliceWelcome.peerId,
    bob: bobWelcome.peerId,
    bobSaw: bobWelcome.peers.map((peer) => ({ id: peer.id, name: peer.meta.name })),
    signal,
    turnEntries: (aliceWelcome.iceServers ?? []).filter((entry) => entry.username !== undefined).length,
  }),
);
alice.leave();
bob.leave();
clearTimeout(deadline);
