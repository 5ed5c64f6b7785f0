/**
 * RoomClient against the real Worker (`wrangler dev`, local workerd): joining, signals both ways,
 * presence, resuming after the connection drops (through a TCP proxy the test can cut), the order of
 * frames said while away, staying alive through pings, a full room, and TURN credentials refreshed
 * before they expire. No WebRTC here, so no network namespace is needed: all traffic is loopback.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { RoomClient, type RoomClientEvents, type RoomState } from "../../../shared/client/index.js";
import type { JsonValue } from "../../../shared/signaling/protocol.js";
import { mintJoinToken } from "../../../shared/signaling/join-token.js";
import { startStack, type Stack } from "../../e2e/stack.js";
import { ISSUE_ATTEMPTS_PAST_ANY_WINDOW } from "../../issue-limit.js";

const WAIT_MS = 10_000;
let roomCounter = 0;
const newRoom = () => `client-${process.pid}-${++roomCounter}`;

/** Resolves with the next `name` event's arguments that satisfy `match`, or fails after `ms`. */
function next<Name extends keyof RoomClientEvents>(client: RoomClient, name: Name, match: (...args: RoomClientEvents[Name]) => boolean = () => true, ms = WAIT_MS): Promise<RoomClientEvents[Name]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching ${String(name)} event within ${ms} ms`));
    }, ms);
    const off = client.on(name, (...args: RoomClientEvents[Name]) => {
      if (!match(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args);
    });
  });
}

/** A TCP proxy to the Worker whose connections the test can cut, as a network drop would. */
class CuttableProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;
  port = 0;
  /** The head of each HTTP request that came through (request line and headers), in order. */
  readonly requestHeads: string[] = [];

  async start(targetPort: number): Promise<void> {
    this.server = createServer((client) => {
      const upstream = createConnection(targetPort, "127.0.0.1");
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => {});
      }
      client.once("data", (chunk: Buffer) => this.requestHeads.push(chunk.toString("latin1").split("\r\n\r\n")[0]!));
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Destroys every connection in both directions (the client sees an abnormal close). */
  cut(): number {
    const count = this.sockets.size / 2;
    for (const socket of this.sockets) socket.destroy();
    return count;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

let stack: Stack;
let proxy: CuttableProxy;
const clients: RoomClient[] = [];

function client(room: string, server = stack.workerUrl, extra: Partial<ConstructorParameters<typeof RoomClient>[0]> = {}): RoomClient {
  const made = new RoomClient({ server, room, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, ...extra });
  clients.push(made);
  return made;
}

beforeAll(async () => {
  // A short idle timeout shows pings keep a quiet client in; a short TTL shows the refresh.
  stack = await startStack({ workerVars: { PEER_IDLE_TIMEOUT_SECONDS: "2", TURN_TTL: "10", RESUME_GRACE_SECONDS: "20" } });
  proxy = new CuttableProxy();
  await proxy.start(Number(new URL(stack.workerUrl).port));
}, 90_000);

afterAll(async () => {
  for (const made of clients) made.close();
  await proxy?.stop();
  await stack?.stop();
});

describe("RoomClient", () => {
  it("joins, sees who is there, and carries signals and broadcasts both ways", async () => {
    const room = newRoom();
    const alice = client(room);
    const aliceWelcome = await alice.connect();
    expect(aliceWelcome.peers).toEqual([]);
    expect(alice.state).toBe("open");
    expect(alice.peerId).toBe(aliceWelcome.peerId);

    const bob = client(room);
    const joined = next(alice, "peer-joined");
    const bobWelcome = await bob.connect();
    expect(bobWelcome.peers.map((peer) => peer.id)).toEqual([alice.peerId]);
    expect((await joined)[0].id).toBe(bob.peerId);
    expect([...bob.peers.keys()]).toEqual([alice.peerId]);

    const signal = next(bob, "signal");
    alice.signal(bob.peerId!, { hello: "bob" });
    expect(await signal).toEqual([alice.peerId, { hello: "bob" }]);
    const broadcast = next(alice, "broadcast");
    bob.broadcast("hi all");
    expect(await broadcast).toEqual([bob.peerId, "hi all"]);

    const updated = next(alice, "peer-updated");
    bob.setMeta({ name: "Bob" });
    expect((await updated)[0]).toEqual({ id: bob.peerId, meta: { name: "Bob" } });

    const left = next(alice, "peer-left");
    bob.leave();
    expect(await left).toEqual([bob.peerId]);
    expect(bob.state).toBe("closed");
    expect(alice.peers.size).toBe(0);
  });

  it("hands out the welcome's ICE servers and refreshes the TURN credentials before they expire", async () => {
    const alice = client(newRoom());
    const first = next(alice, "ice-servers");
    await alice.connect();
    const [initial] = await first;
    expect(initial.iceServers.map((server) => server.urls).flat()).toEqual(expect.arrayContaining(stack.turnUrls));
    expect(alice.iceServers).toBe(initial.iceServers);
    // TURN_TTL is 10 s: the client fetches /v1/ice-servers again at about 8 s.
    const [refreshed] = await next(alice, "ice-servers", () => true, 15_000);
    expect(Date.parse(refreshed.expiresAt!)).toBeGreaterThan(Date.parse(initial.expiresAt!));
    const turn = (servers: typeof initial.iceServers) => servers.find((server) => server.username !== undefined)!;
    expect(turn(refreshed.iceServers).username).not.toBe(turn(initial.iceServers).username);
    expect(alice.iceServersExpireAt).toBe(refreshed.expiresAt);
  }, 30_000);

  it("fetches fresh ICE servers on demand, as an open room's member (room and peer in the query), once for callers at the same moment", async () => {
    const room = newRoom();
    const alice = client(room, `http://127.0.0.1:${proxy.port}`);
    const { peerId } = await alice.connect();
    const updates: (string | undefined)[] = [];
    alice.on("ice-servers", (update) => updates.push(update.reason));
    const asked = proxy.requestHeads.length;
    // maxAgeMs 0: the welcome's servers are seconds old, but a failed call wants the Worker's latest.
    const results = await Promise.all([alice.refreshIceServers("ice-failed", 0), alice.refreshIceServers("ice-failed", 0)]);
    expect(results).toEqual([true, true]);
    expect(updates).toEqual(["ice-failed"]);
    const requests = proxy.requestHeads.slice(asked).filter((head) => head.startsWith("GET /v1/ice-servers"));
    expect(requests.map((head) => head.split("\r\n")[0])).toEqual([`GET /v1/ice-servers?room=${room}&peer=${encodeURIComponent(peerId)} HTTP/1.1`]);
    expect(alice.iceServers.map((server) => server.urls).flat()).toEqual(expect.arrayContaining(stack.turnUrls));
  });

  it("stays in a room with a 2 s idle timeout for three times that long, by pinging", async () => {
    const room = newRoom();
    const alice = client(room);
    const bob = client(room);
    await alice.connect();
    await bob.connect();
    const states: RoomState[] = [];
    alice.on("state", (state) => states.push(state));
    const lefts: string[] = [];
    bob.on("peer-left", (id) => lefts.push(id));
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    expect(states).toEqual([]);
    expect(lefts).toEqual([]);
    const signal = next(bob, "signal");
    alice.signal(bob.peerId!, "still here");
    expect((await signal)[1]).toBe("still here");
  }, 20_000);

  it("resumes after the connection drops: same peer id, nobody sees it leave, and what was said while away arrives in order", async () => {
    const room = newRoom();
    const viaProxy = `http://127.0.0.1:${proxy.port}`;
    const alice = client(room, viaProxy);
    const bob = client(room);
    const aliceWelcome = await alice.connect();
    await bob.connect();
    const bobSaw: string[] = [];
    bob.on("peer-left", (id) => bobSaw.push(`left ${id}`));
    bob.on("peer-joined", (peer) => bobSaw.push(`joined ${peer.id}`));
    const received: JsonValue[] = [];
    bob.on("signal", (_from, data) => received.push(data));

    const states: RoomState[] = [];
    alice.on("state", (state) => states.push(state));
    const reconnecting = next(alice, "state", (state) => state === "reconnecting");
    expect(proxy.cut()).toBeGreaterThanOrEqual(1);
    await reconnecting;
    // Said while away: queued, then sent in this order once the session is resumed.
    for (let i = 0; i < 20; i++) alice.signal(bob.peerId!, i);
    const [resumedWelcome] = await next(alice, "welcome");
    expect(resumedWelcome.resumed).toBe(true);
    expect(resumedWelcome.peerId).toBe(aliceWelcome.peerId);
    expect(alice.state).toBe("open");
    expect(states).toEqual(["reconnecting", "open"]);

    const deadline = Date.now() + WAIT_MS;
    while (received.length < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(bobSaw).toEqual([]);
    // The resume token went in Sec-WebSocket-Protocol, not in the URL that logs keep.
    const resumeRequest = proxy.requestHeads.find((head) => head.includes(aliceWelcome.resumeToken));
    expect(resumeRequest).toMatch(new RegExp(`^Sec-WebSocket-Protocol: .*resume\\.${aliceWelcome.resumeToken}`, "im"));
    expect(proxy.requestHeads.every((head) => !/^GET [^\r\n]*resume/.test(head))).toBe(true);
  });

  it("reconnects again and again: three drops in a row, one peer id throughout", async () => {
    const alice = client(newRoom(), `http://127.0.0.1:${proxy.port}`);
    const { peerId } = await alice.connect();
    for (let drop = 0; drop < 3; drop++) {
      const welcomed = next(alice, "welcome");
      proxy.cut();
      const [welcome] = await welcomed;
      expect(welcome.resumed).toBe(true);
      expect(welcome.peerId).toBe(peerId);
    }
  });

  it("stops for good when the room is full, and says so", async () => {
    const full = await startStack({ workerVars: { ROOM_CAPACITY: "1" } });
    try {
      const room = newRoom();
      const alice = client(room, full.workerUrl);
      await alice.connect();
      const bob = client(room, full.workerUrl);
      const errors: string[] = [];
      bob.on("error", (error) => errors.push(`${error.code}: ${error.message}`));
      await expect(bob.connect()).rejects.toThrow(/the room is full/);
      expect(bob.state).toBe("closed");
      expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(/^room-full: /), "closed: the room is full"]));
      // A closed client refuses to queue, with a reason.
      bob.signal(alice.peerId!, "x");
      expect(errors.at(-1)).toMatch(/closed/);
    } finally {
      await full.stop();
    }
  }, 90_000);

  it("gives up after maxAttempts when the Worker cannot be reached, and rejects connect()", async () => {
    const nobody = client(newRoom(), "http://127.0.0.1:9", { reconnect: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 3 } });
    const errors: string[] = [];
    nobody.on("error", (error) => errors.push(error.code));
    await expect(nobody.connect()).rejects.toThrow(/gave up after 3 failed connection attempts/);
    expect(errors.filter((code) => code === "connection").length).toBeGreaterThanOrEqual(4);
  });

  it("joins with a join token (fetched afresh for each connection), and refreshes credentials with it where the Worker is not open", async () => {
    const secret = "room-client-join-secret";
    const guarded = await startStack({ workerVars: { JOIN_SECRET: secret, AUTH_MODE: "", TURN_TTL: "10" } });
    try {
      const room = newRoom();
      let minted = 0;
      const token = () => {
        minted++;
        return mintJoinToken(secret, { room, sub: "ada", meta: { name: "Ada" } });
      };
      const ada = client(room, guarded.workerUrl, { token });
      const welcome = await ada.connect();
      expect(welcome.peerId).toBe("ada");
      expect(minted).toBe(1);
      // The welcome carries TURN credentials for a token holder; the refresh authenticates with a
      // fresh token too (an open Worker would not need one, this one does).
      const [refreshed] = await next(ada, "ice-servers", () => true, 15_000);
      expect(Date.parse(refreshed.expiresAt!)).toBeGreaterThan(Date.parse(welcome.expiresAt!));
      expect(minted).toBe(2);

      const bob = client(room, guarded.workerUrl, { token: await mintJoinToken(secret, { room, sub: "bob" }) });
      const bobWelcome = await bob.connect();
      expect(bobWelcome.peers).toEqual([{ id: "ada", meta: { name: "Ada" } }]);

      // Without a token the Worker refuses the upgrade; the client gives up after its attempts.
      const stranger = client(room, guarded.workerUrl, { reconnect: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 2 } });
      await expect(stranger.connect()).rejects.toThrow(/gave up after 2 failed connection attempts/);
    } finally {
      await guarded.stop();
    }
  }, 90_000);

  it("fetches the TURN credentials a rate-limited welcome withheld, once the issuance limit allows", async () => {
    const secret = "room-client-withheld-secret";
    const guarded = await startStack({ workerVars: { JOIN_SECRET: secret, AUTH_MODE: "" } });
    try {
      const room = newRoom();
      const token = await mintJoinToken(secret, { room, sub: "eve" });
      // Spend eve's issuance budget through the API; the welcome shares it.
      let refused = false;
      for (let i = 0; i < ISSUE_ATTEMPTS_PAST_ANY_WINDOW && !refused; i++) {
        const response = await fetch(`${guarded.workerUrl}/v1/turn-credentials`, { headers: { Authorization: `Bearer ${token}` } });
        await response.body?.cancel();
        refused = response.status === 429;
      }
      expect(refused).toBe(true);

      const eve = client(room, guarded.workerUrl, { token });
      const errors: string[] = [];
      eve.on("error", (error) => errors.push(`${error.code}: ${error.message}`));
      const fetched = next(eve, "ice-servers", () => true, 45_000);
      const welcome = await eve.connect();
      expect(welcome.iceServers).toBeUndefined();
      expect(welcome.iceServersWithheld?.code).toBe("rate-limited");
      expect(eve.iceServers).toEqual([]);
      expect(errors.some((error) => error.startsWith("ice-servers: the room's welcome carried no TURN credentials"))).toBe(true);
      // After the limit's period (10 s) the client asks /v1/ice-servers itself, with its token.
      const [update] = await fetched;
      expect(update.iceServers.find((server) => server.username !== undefined)?.username).toMatch(new RegExp(`^\\d+:${room}/eve$`));
      expect(eve.iceServers).toBe(update.iceServers);
      expect(eve.state).toBe("open");
    } finally {
      await guarded.stop();
    }
  }, 120_000);

  it("stops at once, saying why, when the Worker refuses open rooms (a relay secret but no JOIN_SECRET and no AUTH_MODE=open)", async () => {
    const guarded = await startStack({ workerVars: { AUTH_MODE: "" } });
    try {
      const stranger = client(newRoom(), guarded.workerUrl);
      const errors: string[] = [];
      stranger.on("error", (error) => errors.push(error.code));
      await expect(stranger.connect()).rejects.toThrow(/refuses open rooms until its operator sets JOIN_SECRET/);
      expect(stranger.state).toBe("closed");
      // One attempt: the refusal is final, not a network error to retry.
      expect(errors).toEqual(["auth-not-configured", "closed"]);
    } finally {
      await guarded.stop();
    }
  }, 90_000);

  it("refuses bad options up front with a message that says what is wanted", () => {
    expect(() => new RoomClient({ server: "http://x", room: "bad name", WebSocket })).toThrow(/room must be 1-64 characters/);
    expect(() => new RoomClient({ server: "wss://x", room: "r", WebSocket })).toThrow(/http: or https:/);
  });
});
