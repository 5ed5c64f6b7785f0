/**
 * The native TCP listener and connections (relay/transport/native-stream.ts over native/stream-io.c),
 * against Node's own net clients on loopback: what the relay relies on of a Node socket holds of
 * them too (addresses, every byte read in order, writes that never block and never lose order,
 * 'close' exactly once, the idle callback, maxConnections), and the addon refuses bad calls with an
 * error, never a crash. The relay's whole TCP behaviour on it is tested by the relay suites, which
 * the node project runs on native TCP (TEST_TCP_IO in turn-client.ts).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { listenNativeStream, loadNativeStream, resolveTcpIo, type NativeStreamServer, type NativeStreamSocket } from "../../relay/transport/native-stream.js";

const WAIT_MS = 3_000;

async function waitUntil(condition: () => boolean, timeoutMs = WAIT_MS): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  return condition();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const servers: NativeStreamServer[] = [];
const clients: Socket[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
});

function listen(ip = "127.0.0.1"): NativeStreamServer {
  const server = listenNativeStream(ip, 0);
  servers.push(server);
  return server;
}

/** A client connected to `server`, and the server's side of it. */
async function connectTo(server: NativeStreamServer): Promise<{ client: Socket; served: NativeStreamSocket }> {
  const accepted = new Promise<NativeStreamSocket>((resolve) => server.once("connection", resolve));
  const { address, port } = server.address();
  const client = connect({ host: address, port });
  clients.push(client);
  client.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  return { client, served: await accepted };
}

/** Everything `socket` emits as 'data', copied (a native chunk is valid only during the call). */
function collect(socket: NativeStreamSocket | Socket): Buffer[] {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(Buffer.from(chunk)));
  return chunks;
}

const total = (chunks: Buffer[]) => chunks.reduce((sum, chunk) => sum + chunk.length, 0);

describe("which TCP implementation the relay takes", () => {
  it("loads the addon's TCP functions here (npm run build:native; the test prerequisites build it)", () => {
    const native = loadNativeStream();
    expect(native.ok ? "loaded" : native.reason).toBe("loaded");
    expect(resolveTcpIo("auto")).toBe("native");
    expect(resolveTcpIo("native")).toBe("native");
    expect(resolveTcpIo("net")).toBe("net");
  });
});

describe("a native TCP listener", () => {
  it("accepts over IPv4 and IPv6 and gives each connection both ends' addresses", async () => {
    for (const ip of ["127.0.0.1", "::1"]) {
      const server = listen(ip);
      expect(server.address()).toMatchObject({ address: ip, family: ip === "::1" ? "IPv6" : "IPv4" });
      expect(server.address().port).toBeGreaterThan(0);
      const { client, served } = await connectTo(server);
      expect(served.remoteAddress).toBe(ip);
      expect(served.remotePort).toBe(client.localPort);
      expect(served.localAddress).toBe(ip);
      expect(served.localPort).toBe(server.address().port);
    }
  });

  it("refuses a port in use with EADDRINUSE, and frees its port once closed", async () => {
    const server = listen();
    const { port } = server.address();
    expect(() => listenNativeStream("127.0.0.1", port)).toThrow(expect.objectContaining({ code: "EADDRINUSE" }));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    servers.splice(servers.indexOf(server), 1);
    // The callback means the port is free: Node's own listener takes it at once.
    const node = createServer();
    await new Promise<void>((resolve, reject) => {
      node.once("error", reject);
      node.listen(port, "127.0.0.1", resolve);
    });
    await new Promise<void>((resolve) => node.close(() => resolve()));
  });

  it("refuses an address that is not an IP with EINVAL", () => {
    expect(() => listenNativeStream("localhost", 0)).toThrow(expect.objectContaining({ code: "EINVAL" }));
  });

  it("closes a connection past maxConnections at once, and takes new ones when one closes", async () => {
    const server = listen();
    server.maxConnections = 1;
    const first = await connectTo(server);
    let accepted = 0;
    server.on("connection", () => accepted++);
    const { address, port } = server.address();
    const refused = connect({ host: address, port });
    clients.push(refused);
    refused.on("error", () => {});
    await new Promise<void>((resolve) => refused.once("close", () => resolve()));
    expect(accepted).toBe(0);
    const gone = new Promise<void>((resolve) => first.served.once("close", () => resolve()));
    first.served.destroy();
    await gone;
    await connectTo(server);
    expect(accepted).toBe(1);
  });
});

describe("a native TCP connection", () => {
  it("reads every byte in order, small writes and a 4 MB one alike", async () => {
    const { client, served } = await connectTo(listen());
    const chunks = collect(served);
    const small = Buffer.from("hello, relay");
    const large = randomBytes(4 << 20);
    client.write(small);
    client.write(large);
    expect(await waitUntil(() => total(chunks) === small.length + large.length, 10_000)).toBe(true);
    expect(Buffer.concat(chunks).equals(Buffer.concat([small, large]))).toBe(true);
  });

  it("queues what a client does not read, keeps order, and counts it; all of it arrives once the client reads", async () => {
    const { client, served } = await connectTo(listen());
    client.pause();
    const blocks = Array.from({ length: 64 }, (_, i) => Buffer.alloc(256 * 1024, i));
    let refused = 0;
    for (const block of blocks) if (!served.write(block)) refused++;
    // 16 MB cannot fit in loopback's buffers: the rest waits in the connection's queue.
    expect(refused).toBeGreaterThan(0);
    expect(served.writableLength).toBeGreaterThan(0);
    expect(served.bytesWritten).toBe(64 * 256 * 1024);
    const chunks = collect(client);
    client.resume();
    expect(await waitUntil(() => total(chunks) === 64 * 256 * 1024, 20_000)).toBe(true);
    expect(Buffer.concat(chunks).equals(Buffer.concat(blocks))).toBe(true);
    expect(await waitUntil(() => served.writableLength === 0)).toBe(true);
  });

  it("is done with the caller's buffer when write returns: refilling it at once changes nothing sent", async () => {
    const { client, served } = await connectTo(listen());
    client.pause();
    const chunks = collect(client);
    const buffer = Buffer.alloc(1 << 20);
    for (let i = 0; i < 8; i++) {
      buffer.fill(i);
      served.write(buffer);
    }
    expect(served.holdsWrittenBuffers).toBe(false);
    client.resume();
    expect(await waitUntil(() => total(chunks) === 8 << 20, 20_000)).toBe(true);
    const received = Buffer.concat(chunks);
    for (let i = 0; i < 8; i++) expect(received.subarray(i << 20, (i + 1) << 20).every((byte) => byte === i)).toBe(true);
  });

  it("closes when the client ends its side: 'close' once, without an error", async () => {
    const { client, served } = await connectTo(listen());
    const closes: boolean[] = [];
    const errors: Error[] = [];
    served.on("close", (hadError: boolean) => closes.push(hadError));
    served.on("error", (error: Error) => errors.push(error));
    client.end();
    expect(await waitUntil(() => closes.length > 0)).toBe(true);
    await sleep(50);
    expect(closes).toEqual([false]);
    expect(errors).toEqual([]);
    expect(served.destroyed).toBe(true);
    expect(served.writable).toBe(false);
  });

  it("reports a reset as ECONNRESET, then 'close' once", async () => {
    const { client, served } = await connectTo(listen());
    const closes: boolean[] = [];
    const errors: NodeJS.ErrnoException[] = [];
    served.on("close", (hadError: boolean) => closes.push(hadError));
    served.on("error", (error: NodeJS.ErrnoException) => errors.push(error));
    client.resetAndDestroy();
    expect(await waitUntil(() => closes.length > 0)).toBe(true);
    await sleep(50);
    expect(errors.map((error) => error.code)).toEqual(["ECONNRESET"]);
    expect(closes).toEqual([true]);
  });

  it("on destroy(): the client sees the end, later writes are refused without a throw, and 'close' comes once, after destroy returns", async () => {
    const { client, served } = await connectTo(listen());
    let closed = 0;
    served.on("close", () => closed++);
    const ended = new Promise<void>((resolve) => client.once("close", () => resolve()));
    served.destroy();
    expect(closed).toBe(0);
    expect(served.write(Buffer.from("late"))).toBe(false);
    served.destroy();
    await ended;
    expect(await waitUntil(() => closed === 1)).toBe(true);
    await sleep(50);
    expect(closed).toBe(1);
    expect(served.writableLength).toBe(0);
  });

  it("calls the idle callback after a period without reads or writes, not while data flows, and never after destroy", async () => {
    const { client, served } = await connectTo(listen());
    let idle = 0;
    served.setTimeout(100, () => idle++);
    collect(served);
    // Data every 30 ms for about 360 ms: never a whole period of silence.
    for (let i = 0; i < 12; i++) {
      client.write("x");
      await sleep(30);
    }
    expect(idle).toBe(0);
    expect(await waitUntil(() => idle > 0, 1_000)).toBe(true);
    served.destroy();
    const after = idle;
    await sleep(250);
    expect(idle).toBe(after);
  });
});

/** CPU seconds `pid` has used (user + system), from /proc. */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

describe("a native TCP listener out of file descriptors", () => {
  it("neither spins nor drops its listener: it pauses, and takes the waiting connections once descriptors are free", async () => {
    // A process limited to 96 descriptors, holding every connection it accepts.
    const script = [
      'import { listenNativeStream } from "./relay/transport/native-stream.ts";',
      'const server = listenNativeStream("127.0.0.1", 0);',
      "let accepted = 0;",
      'server.on("connection", (socket) => { accepted++; socket.on("error", () => {}); console.log(JSON.stringify({ accepted })); });',
      'console.log(JSON.stringify({ port: server.address().port }));',
      "setInterval(() => {}, 1000);",
    ].join("\n");
    const child = spawn("bash", ["-c", 'ulimit -n 96 && exec "$0" --import tsx --input-type=module -e "$1"', process.execPath, script], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = () => stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as { port?: number; accepted?: number });
    const accepted = () => Math.max(0, ...lines().map((line) => line.accepted ?? 0));
    const report = () => `stdout: ${stdout.slice(-500)}\nstderr: ${stderr.slice(-1000)}`;
    try {
      expect(await waitUntil(() => lines().some((line) => line.port !== undefined), 20_000), report()).toBe(true);
      const port = lines().find((line) => line.port !== undefined)!.port!;
      const held: Socket[] = [];
      for (let i = 0; i < 160; i++) {
        const client = connect({ host: "127.0.0.1", port });
        client.on("error", () => {});
        held.push(client);
        clients.push(client);
      }
      // It takes what its descriptors allow, then runs out (EMFILE): some connections wait in the backlog.
      await sleep(1_000);
      const first = accepted();
      expect(first, report()).toBeGreaterThan(20);
      expect(first, report()).toBeLessThan(96);
      // Paused, not spinning on accept(): a spin would burn the whole second.
      const before = cpuSecondsOf(child.pid!);
      await sleep(1_000);
      expect(cpuSecondsOf(child.pid!) - before, report()).toBeLessThan(0.15);
      expect(child.exitCode, report()).toBeNull();
      // Descriptors come free as clients leave; the waiting connections are taken.
      for (const client of held.slice(0, 40)) client.destroy();
      expect(await waitUntil(() => accepted() >= first + 30, 5_000), report()).toBe(true);
    } finally {
      child.kill("SIGKILL");
    }
  }, 40_000);
});

describe("the addon's stream functions given bad calls", () => {
  it("answer with an error, never a crash", async () => {
    const native = loadNativeStream();
    if (!native.ok) throw new Error(native.reason);
    const addon = native.addon as unknown as Record<string, (...args: unknown[]) => unknown>;
    const server = listen();
    const { served } = await connectTo(server);
    const handle = (served as unknown as { handle: unknown }).handle;
    const listenerHandle = (server as unknown as { handle: unknown }).handle;
    // A slice past the buffer, a listener's handle, something that is no handle, no buffer.
    expect(addon.writeStream!(handle, Buffer.alloc(20), 10, 100)).toBeLessThan(0);
    expect(addon.writeStream!(listenerHandle, Buffer.alloc(4), 0, 4)).toBeLessThan(0);
    expect(addon.writeStream!({}, Buffer.alloc(4), 0, 4)).toBeLessThan(0);
    expect(addon.writeStream!(handle, "text", 0, 4)).toBeLessThan(0);
    expect(() => addon.startStream!(listenerHandle, {})).toThrow(TypeError);
    expect(() => addon.startStream!(handle, {})).toThrow(TypeError); // started already
    expect(() => addon.listenStream!(5, "127.0.0.1", 0, 16, {})).toThrow(TypeError);
    expect(() => addon.listenStream!(4, "127.0.0.1", 70000, 16, {})).toThrow(expect.objectContaining({ code: "EINVAL" }));
    expect(() => addon.streamLocalAddress!(42)).toThrow(TypeError);
    expect(addon.streamQueued!(42)).toBe(0);
    served.destroy();
    // Closing twice, and writing after close: a no-op and an errno, not a throw.
    expect(() => addon.closeStream!(handle)).not.toThrow();
    expect(addon.writeStream!(handle, Buffer.alloc(4), 0, 4)).toBeLessThan(0);
  });
});
