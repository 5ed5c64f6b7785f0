/**
 * UDP sockets shared with worker processes (relay/transport/native-udp.ts: bindSharedUdpSocket,
 * adoptNativeUdpSocket), the base of --relay-threads (docs/design/relay-workers.md): the primary binds
 * one SO_REUSEPORT socket per worker slot and keeps it; each worker adopts its slot's socket as an
 * inherited file descriptor. Replacing a worker then moves no client: the group never changes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { openSync, closeSync } from "node:fs";
import { connect, createServer, type AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { adoptNativeUdpSocket, bindSharedUdpSocket, closeSharedUdpSocket } from "../../../relay/transport/native-udp.js";
import type { RelayUdpSocket } from "../../../relay/transport/udp-socket.js";

const WORKER = "test/relay/cluster/adopting-worker.ts";
const READY_MS = 15_000;
const ANSWER_MS = 3_000;

const children: ChildProcess[] = [];
const sharedFds: number[] = [];
const sockets: (Socket | RelayUdpSocket)[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  for (const fd of sharedFds.splice(0)) closeSharedUdpSocket(fd);
  for (const socket of sockets.splice(0)) socket.close();
});

/** A worker process adopting `fd` as its fd 3; resolves once it says "ready". */
function startWorker(name: string, fd: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER, name], { stdio: ["ignore", "pipe", "pipe", fd] });
  children.push(child);
  let output = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${READY_MS} ms: ${output}`)), READY_MS);
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("ready")) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}): ${output}`)));
  });
}

async function senders(count: number): Promise<Socket[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const socket = createSocket("udp4");
      sockets.push(socket);
      await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
      return socket;
    }),
  );
}

/** Which worker answered each sender (by index), after one datagram from each. */
async function answeredBy(from: Socket[], port: number): Promise<(string | undefined)[]> {
  const answers: (string | undefined)[] = from.map(() => undefined);
  const done = Promise.all(
    from.map(
      (socket, index) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ANSWER_MS);
          socket.once("message", (data) => {
            answers[index] = data.toString();
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  for (const socket of from) socket.send(Buffer.from("who"), port, "127.0.0.1");
  await done;
  return answers;
}

describe("UDP sockets shared with worker processes", () => {
  it("a socket bound in one process receives and answers in the process that adopts it", async () => {
    const shared = bindSharedUdpSocket(4, "127.0.0.1", 0, 1 << 20);
    sharedFds.push(shared.fd);
    await startWorker("only", shared.fd);
    const from = await senders(3);
    expect(await answeredBy(from, shared.port)).toEqual(["only", "only", "only"]);
  });

  it("replacing a worker moves no source: each goes on reaching its slot's socket", async () => {
    const first = bindSharedUdpSocket(4, "127.0.0.1", 0, 1 << 20);
    const second = bindSharedUdpSocket(4, "127.0.0.1", first.port, 1 << 20);
    sharedFds.push(first.fd, second.fd);
    const [a] = await Promise.all([startWorker("a", first.fd), startWorker("b", second.fd)]);
    const from = await senders(40);
    const before = await answeredBy(from, first.port);
    expect(before.filter((name) => name === undefined), "every source answered").toEqual([]);
    expect(new Set(before)).toEqual(new Set(["a", "b"]));

    // Worker a dies; its replacement adopts the same socket, which the primary (this process) kept.
    a!.kill("SIGKILL");
    await new Promise((resolve) => a!.once("exit", resolve));
    await startWorker("a-again", first.fd);
    const after = await answeredBy(from, first.port);
    expect(after).toEqual(before.map((name) => (name === "a" ? "a-again" : name)));
  });

  it("refuses to adopt what is not a bound UDP socket, with the reason", () => {
    const file = openSync("package.json", "r");
    try {
      expect(() => adoptNativeUdpSocket(file, 1 << 20)).toThrow(expect.objectContaining({ code: "ENOTSOCK" }));
    } finally {
      closeSync(file);
    }
    expect(() => adoptNativeUdpSocket(987_654, 1 << 20)).toThrow(expect.objectContaining({ code: "EBADF" }));
  });

  it("refuses a TCP socket (EPROTOTYPE), leaving it as it was", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      // Node keeps a listening socket's descriptor on its handle (Linux): the one way to hand one over here.
      const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
      expect(fd).toBeGreaterThan(2);
      expect(() => adoptNativeUdpSocket(fd, 1 << 20)).toThrow(expect.objectContaining({ code: "EPROTOTYPE" }));
      // Still listening: the refusal did not take or close it.
      const connected = await new Promise<boolean>((resolve) => {
        const client = connect((server.address() as AddressInfo).port, "127.0.0.1", () => {
          client.destroy();
          resolve(true);
        });
        client.on("error", () => resolve(false));
      });
      expect(connected).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("an adopted socket in this process works like an opened one", async () => {
    const shared = bindSharedUdpSocket(4, "127.0.0.1", 0, 1 << 20);
    const socket = adoptNativeUdpSocket(shared.fd, 1 << 20);
    sockets.push(socket);
    expect(socket.address()).toEqual({ address: "127.0.0.1", port: shared.port });
    socket.onDatagram = (data, offset, length, address, port) => socket.send(data, offset, length, port, address);
    const [from] = await senders(1);
    const echoed = new Promise<string>((resolve) => from!.once("message", (data) => resolve(data.toString())));
    from!.send(Buffer.from("echo"), shared.port, "127.0.0.1");
    expect(await echoed).toBe("echo");
  });
});
