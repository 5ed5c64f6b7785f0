/**
 * A one-socket STUN responder on 127.0.0.1 that watches a TURN client authenticate: it challenges an
 * Allocate with 401 and captures the authenticated retry. Decoding, encoding and integrity checks are
 * the relay's own STUN codec (relay/stun/). Nothing here relays anything; it exists so a test can see
 * the password a client derived without the client ever printing it.
 */
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { encodeErrorCode, encodeText } from "../../relay/stun/attributes.js";
import { buildStunMessage } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { type StunMessage, decodeStunMessage } from "../../relay/stun/message.js";

/** The 401 challenge to an Allocate: ERROR-CODE, REALM and NONCE, under the request's transaction id. */
function unauthorizedAllocateResponse(request: StunMessage, realm: string, nonce: string): Buffer {
  return buildStunMessage({
    method: StunMethod.Allocate,
    messageClass: StunClass.ErrorResponse,
    transactionId: request.transactionId,
    attributes: [encodeErrorCode(401, "Unauthorized"), encodeText(AttributeType.Realm, realm), encodeText(AttributeType.Nonce, nonce)],
  });
}

/** The absolute path of `name` on PATH, or undefined. */
export function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface AllocateCapture {
  /** The first Allocate, which carried no credentials. */
  challenged: StunMessage;
  /** The Allocate that came back after the 401, with USERNAME and MESSAGE-INTEGRITY. */
  authenticated: StunMessage;
  /** What the client printed, for failure messages. */
  output: string;
}

export interface CaptureOptions {
  /** The client's arguments for a server at 127.0.0.1:`port`. */
  args: (port: number) => string[];
  realm: string;
  nonce: string;
  timeoutMs: number;
}

/**
 * Binds a UDP socket on 127.0.0.1, runs `command` against it, answers every Allocate without
 * MESSAGE-INTEGRITY with a 401 (REALM, NONCE) and resolves with the first Allocate that carries
 * MESSAGE-INTEGRITY. The client is killed by PID once that arrives, on timeout, or on failure.
 */
export async function captureAuthenticatedAllocate(command: string, options: CaptureOptions): Promise<AllocateCapture> {
  const socket = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      resolve();
    });
  });
  const port = socket.address().port;

  const child = spawn(command, options.args(port), { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));

  try {
    return await new Promise<AllocateCapture>((resolve, reject) => {
      let challenged: StunMessage | undefined;
      const timer = setTimeout(() => {
        const seen = challenged === undefined ? "no Allocate at all" : "an Allocate, but no retry with MESSAGE-INTEGRITY after the 401";
        reject(new Error(`${command} sent ${seen} within ${options.timeoutMs} ms. Its output:\n${output}`));
      }, options.timeoutMs);
      const fail = (error: Error) => {
        clearTimeout(timer);
        reject(error);
      };
      child.once("error", fail);
      child.once("exit", (code, signal) => {
        fail(new Error(`${command} exited (code ${code}, signal ${signal}) before sending an authenticated Allocate. Its output:\n${output}`));
      });
      socket.on("message", (datagram, from) => {
        const decoded = decodeStunMessage(datagram);
        if (!decoded.ok) {
          fail(new Error(`${command} sent something that is not STUN (${decoded.reason}): ${datagram.toString("hex")}`));
          return;
        }
        const message = decoded.message;
        // Nothing but Allocate requests is expected before an allocation exists.
        if (message.method !== StunMethod.Allocate || message.messageClass !== StunClass.Request) return;
        if (message.messageIntegrity === undefined) {
          challenged ??= message;
          socket.send(unauthorizedAllocateResponse(message, options.realm, options.nonce), from.port, from.address);
          return;
        }
        clearTimeout(timer);
        if (challenged === undefined) {
          reject(new Error(`${command} sent MESSAGE-INTEGRITY before being challenged`));
          return;
        }
        resolve({ challenged, authenticated: message, output });
      });
    });
  } finally {
    child.stdout.destroy();
    child.stderr.destroy();
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    socket.close();
  }
}
