/**
 * Signaling demo: two peers meet in a room and pass one signal through the Worker.
 *
 *   npm start                                         # terminal 1: the Worker on ws://127.0.0.1:8787
 *   node scripts/signal-demo.mjs [baseUrl] [room]     # terminal 2 (defaults: ws://127.0.0.1:8787, demo)
 *
 * Peer A joins, peer B joins (A is told with `peer-joined`), A sends B an SDP-like offer, B prints it
 * with the sender the room stamped on it (`from`), and both leave. Exits 0 on success, 1 otherwise;
 * the whole run is bounded by TIMEOUT_MS.
 */
import WebSocket from "ws";

const baseUrl = (process.argv[2] ?? "ws://127.0.0.1:8787").replace(/\/+$/, "");
const room = process.argv[3] ?? "demo";
const roomUrl = `${baseUrl}/v1/rooms/${encodeURIComponent(room)}`;
const TIMEOUT_MS = 5_000;

/** Opens one peer's WebSocket. `next(test)` resolves with the first frame (past or future) passing `test`. */
function connect(name) {
  const ws = new WebSocket(roomUrl);
  const unclaimed = []; // frames nobody has waited for yet
  const waiters = []; // { test, resolve, reject }
  let failure = null;

  const fail = (error) => {
    failure ??= error;
    for (const w of waiters.splice(0)) w.reject(failure);
  };
  ws.on("error", (error) => fail(new Error(`${name}: ${error.message}`)));
  ws.on("close", (code, reason) => fail(new Error(`${name}: connection closed (${code} ${reason})`)));
  ws.on("message", (raw) => {
    const frame = JSON.parse(raw.toString());
    if (frame.type === "error") return fail(new Error(`${name}: server error ${frame.code}: ${frame.message}`));
    const i = waiters.findIndex((w) => w.test(frame));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(frame);
    else unclaimed.push(frame);
  });

  const next = (test) =>
    new Promise((resolve, reject) => {
      const i = unclaimed.findIndex(test);
      if (i >= 0) return resolve(unclaimed.splice(i, 1)[0]);
      if (failure) return reject(failure);
      waiters.push({ test, resolve, reject });
    });
  const send = (frame) => ws.send(JSON.stringify(frame));
  const closed = new Promise((resolve) => ws.once("close", resolve));
  return { ws, next, send, closed };
}

async function demo() {
  console.log(`Room: ${roomUrl}`);

  // 1. A joins and learns its peer id from the welcome frame.
  const a = connect("A");
  const aWelcome = await a.next((f) => f.type === "welcome");
  console.log(`A welcome: peerId=${aWelcome.peerId}`);

  // 2. B joins; its welcome lists who is already in the room.
  const b = connect("B");
  const bWelcome = await b.next((f) => f.type === "welcome");
  console.log(`B welcome: peerId=${bWelcome.peerId} (peers already here: ${bWelcome.peers.map((p) => p.id).join(", ") || "none"})`);

  // 3. A is told that B arrived.
  const joined = await a.next((f) => f.type === "peer-joined" && f.peer.id === bWelcome.peerId);
  console.log(`A saw peer-joined: ${joined.peer.id}`);

  // 4. A signals B. `data` is passed through untouched: here, an SDP-like offer.
  const offer = { kind: "offer", sdp: "v=0\r\no=- 46117314 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n" };
  a.send({ type: "signal", to: bWelcome.peerId, data: offer });
  console.log(`A sent signal to ${bWelcome.peerId}`);

  // 5. B receives it, stamped by the room with the sender's peer id.
  const signal = await b.next((f) => f.type === "signal");
  console.log(`B received signal from ${signal.from}: ${JSON.stringify(signal.data)}`);
  if (signal.from !== aWelcome.peerId) throw new Error(`signal came from ${signal.from}, expected A (${aWelcome.peerId})`);
  if (JSON.stringify(signal.data) !== JSON.stringify(offer)) throw new Error("signal data was altered in transit");

  // 6. Both leave for good; the room closes each connection with code 1000.
  a.send({ type: "leave" });
  b.send({ type: "leave" });
  await Promise.all([a.closed, b.closed]);
  console.log("A and B left. Signaling works.");
}

/** After a failure: says whether anything answers at the room URL over plain HTTP (the Worker answers 426). */
async function diagnose() {
  const httpUrl = roomUrl.replace(/^ws/, "http");
  try {
    const res = await fetch(httpUrl, { signal: AbortSignal.timeout(2_000) });
    if (res.status === 426) return `The Worker is reachable at ${baseUrl} (HTTP 426 as expected), but the demo failed.`;
    return `Something answers at ${httpUrl} with HTTP ${res.status}: is it the relaykit Worker (a JOIN_SECRET in .dev.vars also blocks this demo)?`;
  } catch (error) {
    return `The Worker is NOT reachable at ${baseUrl} (${error.cause?.code ?? error.message}): start it with \`npm start\`.`;
  }
}

// One deadline for the whole run; process.exit below also ends any socket still open.
const timeout = new Promise((_, reject) => {
  setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
});
try {
  await Promise.race([demo(), timeout]);
  process.exit(0);
} catch (error) {
  console.error(`signal-demo failed: ${error.message}`);
  console.error(await diagnose());
  process.exit(1);
}
