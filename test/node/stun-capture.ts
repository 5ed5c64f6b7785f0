/**
 * Just enough STUN (RFC 8489) to watch a TURN client authenticate: parse a message and its
 * attributes, build an error response, check a long-term-credential MESSAGE-INTEGRITY, and a
 * one-socket responder on 127.0.0.1 that challenges an Allocate with 401 and captures the
 * authenticated retry. Nothing here relays anything; it exists so a test can see the password a
 * client derived without the client ever printing it.
 */
import { spawn } from "node:child_process";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { createSocket } from "node:dgram";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

export const MAGIC_COOKIE = 0x2112a442;
const HEADER_BYTES = 20;

export const ALLOCATE_REQUEST = 0x0003;
export const ALLOCATE_ERROR_RESPONSE = 0x0113;

export const ATTR = {
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  REALM: 0x0014,
  NONCE: 0x0015,
  FINGERPRINT: 0x8028,
} as const;

export interface StunAttribute {
  type: number;
  /** Where the attribute's 4-byte header starts in the message. */
  offset: number;
  value: Buffer;
}

export interface StunMessage {
  type: number;
  transactionId: Buffer;
  attributes: StunAttribute[];
  /** The whole datagram, as received. */
  bytes: Buffer;
}

const padded = (length: number) => (length + 3) & ~3;

/** Parses one STUN message; throws on anything that is not one (wrong cookie, lengths that do not add up). */
export function parseStun(bytes: Buffer): StunMessage {
  if (bytes.length < HEADER_BYTES) throw new Error(`a STUN message is at least 20 bytes, got ${bytes.length}`);
  if ((bytes[0]! & 0xc0) !== 0) throw new Error("the first two bits of a STUN message are zero");
  if (bytes.readUInt32BE(4) !== MAGIC_COOKIE) throw new Error(`no STUN magic cookie: 0x${bytes.readUInt32BE(4).toString(16)}`);
  const length = bytes.readUInt16BE(2);
  if (length !== bytes.length - HEADER_BYTES || length % 4 !== 0) {
    throw new Error(`STUN length field ${length} does not match the ${bytes.length - HEADER_BYTES} bytes after the header`);
  }
  const attributes: StunAttribute[] = [];
  let offset = HEADER_BYTES;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw new Error(`truncated attribute header at byte ${offset}`);
    const type = bytes.readUInt16BE(offset);
    const valueLength = bytes.readUInt16BE(offset + 2);
    if (offset + 4 + valueLength > bytes.length) throw new Error(`attribute 0x${type.toString(16)} at byte ${offset} overruns the message`);
    attributes.push({ type, offset, value: bytes.subarray(offset + 4, offset + 4 + valueLength) });
    offset += 4 + padded(valueLength);
  }
  return { type: bytes.readUInt16BE(0), transactionId: bytes.subarray(8, 20), attributes, bytes };
}

export function attribute(message: StunMessage, type: number): StunAttribute | undefined {
  return message.attributes.find((a) => a.type === type);
}

/** An attribute's value as UTF-8 text (USERNAME, REALM, NONCE). */
export function textAttribute(message: StunMessage, type: number): string | undefined {
  return attribute(message, type)?.value.toString("utf8");
}

/** Builds a message: header, then each attribute padded to 4 bytes with zeros. */
export function encodeStun(type: number, transactionId: Buffer, attributes: ReadonlyArray<readonly [number, Buffer]>): Buffer {
  const parts = attributes.map(([attrType, value]) => {
    const part = Buffer.alloc(4 + padded(value.length));
    part.writeUInt16BE(attrType, 0);
    part.writeUInt16BE(value.length, 2);
    value.copy(part, 4);
    return part;
  });
  const body = Buffer.concat(parts);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(type, 0);
  header.writeUInt16BE(body.length, 2);
  header.writeUInt32BE(MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  return Buffer.concat([header, body]);
}

/** ERROR-CODE's value: 2 reserved zero bytes, the class (hundreds), the number (code mod 100), a reason. */
export function errorCodeValue(code: number, reason: string): Buffer {
  const value = Buffer.alloc(4);
  value[2] = Math.floor(code / 100);
  value[3] = code % 100;
  return Buffer.concat([value, Buffer.from(reason, "utf8")]);
}

/** The 401 challenge to an Allocate: ERROR-CODE, REALM and NONCE, under the request's transaction id. */
export function unauthorizedAllocateResponse(request: StunMessage, realm: string, nonce: string): Buffer {
  return encodeStun(ALLOCATE_ERROR_RESPONSE, request.transactionId, [
    [ATTR.ERROR_CODE, errorCodeValue(401, "Unauthorized")],
    [ATTR.REALM, Buffer.from(realm, "utf8")],
    [ATTR.NONCE, Buffer.from(nonce, "utf8")],
  ]);
}

/** The long-term credential key (RFC 8489 §9.2.2, MD5 algorithm): MD5(username ":" realm ":" password). */
export function longTermKey(username: string, realm: string, password: string): Buffer {
  return createHash("md5").update(`${username}:${realm}:${password}`, "utf8").digest();
}

/**
 * The HMAC-SHA1 MESSAGE-INTEGRITY must hold (RFC 8489 §14.5): over the message up to the attribute,
 * with the header's length rewritten as if MESSAGE-INTEGRITY were the last attribute.
 */
export function expectedMessageIntegrity(message: StunMessage, key: Buffer): Buffer {
  const integrity = attribute(message, ATTR.MESSAGE_INTEGRITY);
  if (integrity === undefined) throw new Error("the message has no MESSAGE-INTEGRITY");
  const covered = Buffer.from(message.bytes.subarray(0, integrity.offset));
  covered.writeUInt16BE(integrity.offset + 4 + 20 - HEADER_BYTES, 2);
  return createHmac("sha1", key).update(covered).digest();
}

/** Whether the message's MESSAGE-INTEGRITY is the one `key` gives. */
export function messageIntegrityMatches(message: StunMessage, key: Buffer): boolean {
  const integrity = attribute(message, ATTR.MESSAGE_INTEGRITY);
  if (integrity === undefined || integrity.value.length !== 20) return false;
  return timingSafeEqual(integrity.value, expectedMessageIntegrity(message, key));
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
        let message: StunMessage;
        try {
          message = parseStun(datagram);
        } catch (error) {
          fail(new Error(`${command} sent something that is not STUN (${(error as Error).message}): ${datagram.toString("hex")}`));
          return;
        }
        if (message.type !== ALLOCATE_REQUEST) return; // nothing else is expected before an allocation exists
        if (attribute(message, ATTR.MESSAGE_INTEGRITY) === undefined) {
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
