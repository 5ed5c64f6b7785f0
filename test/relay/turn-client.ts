/**
 * A small TURN client over a real UDP socket, or one TCP or TLS connection, built on the relay's own codec,
 * for protocol tests.
 * It does the long-term dance (401 → REALM + NONCE → signed retry), and every wait is bounded.
 */
import { execFileSync } from "node:child_process";
import { createSocket, type Socket as DgramSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as netConnect, Socket as NetSocket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll } from "vitest";
import { TurnKeyring, type TurnCredential } from "../../shared/turn/credentials.js";
import { parseRelayArgs, type RelayConfig } from "../../relay/config.js";
import { RelayServer, type ListenerAddress, type RelayEvent } from "../../relay/server/relay-server.js";
import { encodeData, encodeText, encodeXorAddress, readErrorCode, readText, readXorAddress, type TransportAddress } from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey } from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import type { RelayUdpSocket } from "../../relay/transport/udp-socket.js";
import { Wakeup } from "../wakeup.js";

export const SECRET = "relay-protocol-test-secret";
export const REALM = "relaykit.test";
const WAIT_MS = 2_000;
/** Tries at a free listening port (see startRelay). */
const START_ATTEMPTS = 5;

/**
 * The UDP implementation the in-process relays of this run use: RELAYKIT_TEST_UDP_IO (dgram for
 * the fallback pass, the node-dgram project of vitest.config.ts), else native, which CI builds.
 * Never `auto`: a missing addon must fail the run, not quietly test dgram twice.
 */
export const TEST_UDP_IO = process.env.RELAYKIT_TEST_UDP_IO === "dgram" ? "dgram" : "native";
/** The same for TURN over TCP: RELAYKIT_TEST_TCP_IO (net in the fallback pass), else native. */
export const TEST_TCP_IO = process.env.RELAYKIT_TEST_TCP_IO === "net" ? "net" : "native";

/**
 * Counts the datagrams the relay's first UDP listener reads, whatever they are: the relay's own
 * handler is wrapped, not replaced. Returns the count so far.
 */
export function countUdpReads(relay: RelayServer): () => number {
  const listener = (relay as unknown as { listeners: RelayUdpSocket[] }).listeners[0]!;
  const handler = listener.onDatagram;
  let read = 0;
  listener.onDatagram = (...datagram) => {
    read++;
    handler(...datagram);
  };
  return () => read;
}

/** A relay on 127.0.0.1 with a free listening port; `extra` adds or overrides flags. */
export async function startRelay(
  extra: string[] = [],
  onEvent?: (event: RelayEvent) => void,
  onListening?: (listeners: ListenerAddress[]) => void,
): Promise<{ relay: RelayServer; port: number; config: RelayConfig }> {
  const parsed = parseRelayArgs([
    "--listening-ip=127.0.0.1",
    "--listening-port=0",
    "--min-port=42000",
    "--max-port=42999",
    `--static-auth-secret=${SECRET}`,
    `--realm=${REALM}`,
    `--udp-io=${TEST_UDP_IO}`,
    `--tcp-io=${TEST_TCP_IO}`,
    ...extra,
  ]);
  if (parsed.help) throw new Error("unexpected --help");
  for (let attempt = 1; ; attempt++) {
    const relay = new RelayServer(parsed.config, onEvent);
    let listeners: ListenerAddress[];
    try {
      listeners = await relay.start();
    } catch (error) {
      await relay.stop();
      // With --listening-port=0 the relay takes a free UDP port and then TCP on the same number, which
      // another program's TCP socket (any test's client connection, say) may hold: pick another port.
      if (parsed.config.listeningPort === 0 && (error as NodeJS.ErrnoException).code === "EADDRINUSE" && attempt < START_ATTEMPTS) continue;
      throw error;
    }
    onListening?.(listeners);
    const port = listeners[0]!.port;
    return { relay, port, config: parsed.config };
  }
}

/** A throwaway self-signed certificate for the TLS listener: the relay's flags, and a clean-up. */
export function testCertificate(): { flags: string[]; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "relaykit-tls-"));
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
    { stdio: "ignore" },
  );
  return {
    flags: [`--cert=${join(dir, "cert.pem")}`, `--pkey=${join(dir, "key.pem")}`],
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A ChannelData frame as streams carry it: header, data, zero padding to 4 bytes (RFC 8656 §12.5). */
export function paddedChannelData(channel: number, data: Buffer): Buffer {
  const frame = Buffer.alloc(4 + ((data.length + 3) & ~3));
  frame.writeUInt16BE(channel, 0);
  frame.writeUInt16BE(data.length, 2);
  data.copy(frame, 4);
  return frame;
}

/** A Send indication: no authentication, XOR-PEER-ADDRESS and DATA. */
export function sendIndication(peer: TransportAddress, payload: Buffer): Buffer {
  const transactionId = newTransactionId();
  return buildStunMessage({
    method: StunMethod.Send,
    messageClass: StunClass.Indication,
    transactionId,
    attributes: [encodeXorAddress(AttributeType.XorPeerAddress, peer, transactionId), encodeData(payload)],
  });
}

export function mint(userId = "alice", ttlSeconds = 600, now?: number): Promise<TurnCredential> {
  return new TurnKeyring([SECRET]).mint(userId, ttlSeconds, now);
}

export function errorCodeOf(message: StunMessage): number | undefined {
  const attribute = findAttribute(message, AttributeType.ErrorCode);
  if (attribute === undefined) return undefined;
  const code = readErrorCode(message, attribute);
  return code.ok ? code.value.code : undefined;
}

/** An XOR-*-ADDRESS attribute of `message` (XOR-RELAYED-ADDRESS by default), or undefined. */
export function xorAddressOf(message: StunMessage, type: number = AttributeType.XorRelayedAddress): TransportAddress | undefined {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) return undefined;
  const read = readXorAddress(message, attribute);
  return read.ok ? read.value : undefined;
}

export function textOf(message: StunMessage, type: number): string | undefined {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) return undefined;
  const text = readText(message, attribute);
  return text.ok ? text.value : undefined;
}

/** How a TurnTestClient reaches the relay: UDP datagrams, or one TCP or TLS connection (RFC 8656 §12.5 framing). */
export type ClientTransport = "udp" | "tcp" | "tls";

const STREAM_PADDING = Buffer.alloc(3);

export class TurnTestClient {
  private readonly inbox: Buffer[] = [];
  private readonly wakeup = new Wakeup();
  /** The socket closed (or the stream ended): `receive` stops waiting. */
  private ended = false;
  /** Bytes read from a TCP/TLS stream so far, ChannelData padding included; 0 over UDP. */
  streamBytesReceived = 0;
  /** Set when the relay sent bytes on the stream that are neither STUN nor ChannelData. */
  streamError: string | undefined;
  realm: string | undefined;
  nonce: string | undefined;

  /** Where UDP datagrams go (`retarget` moves them to another listener). */
  private serverAddress = "127.0.0.1";

  private constructor(
    /** The UDP socket, or the TCP/TLS connection for `openStream` clients. */
    readonly socket: DgramSocket | NetSocket,
    public serverPort: number,
    readonly transport: ClientTransport,
  ) {}

  /**
   * Sends further UDP datagrams from the same socket to another listener: to the relay, another
   * 5-tuple. The nonce is forgotten (it belongs to the old one), so the next signed request asks again.
   */
  retarget(address: string, port: number): void {
    this.serverAddress = address;
    this.serverPort = port;
    this.nonce = undefined;
  }

  /** A client on its own UDP socket on `localAddress`, talking to the relay's UDP listener on 127.0.0.1:`serverPort`. */
  static async open(serverPort: number, localAddress = "127.0.0.1"): Promise<TurnTestClient> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, localAddress, resolve));
    const client = new TurnTestClient(socket, serverPort, "udp");
    socket.on("message", (data) => client.deliver(data));
    socket.on("close", () => client.end());
    return client;
  }

  /**
   * A client on one TCP or TLS connection to 127.0.0.1:`serverPort` (the self-signed test certificate is
   * accepted). Received bytes are cut into whole STUN messages and ChannelData frames (padding dropped).
   */
  static async openStream(
    serverPort: number,
    transport: "tcp" | "tls",
    timeoutMs = WAIT_MS,
    endpoints: { host?: string; localAddress?: string; localPort?: number } = {},
  ): Promise<TurnTestClient> {
    const host = endpoints.host ?? "127.0.0.1";
    const local = { ...(endpoints.localAddress !== undefined && { localAddress: endpoints.localAddress }), ...(endpoints.localPort !== undefined && { localPort: endpoints.localPort }) };
    const socket =
      transport === "tls"
        ? tlsConnect({ host, port: serverPort, rejectUnauthorized: false, ...local })
        : netConnect({ host, port: serverPort, ...local });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no ${transport} connection to port ${serverPort} within ${timeoutMs} ms`)), timeoutMs);
      const connected = () => {
        clearTimeout(timer);
        socket.off("error", fail);
        resolve();
      };
      function fail(error: Error) {
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      }
      socket.once(transport === "tls" ? "secureConnect" : "connect", connected);
      socket.once("error", fail);
    });
    socket.setNoDelay(true);
    const client = new TurnTestClient(socket, serverPort, transport);
    const framer = new StreamFramer((frame) => client.deliver(Buffer.from(frame)));
    socket.on("data", (chunk: Buffer) => {
      client.streamBytesReceived += chunk.length;
      if (!framer.push(chunk)) {
        client.streamError = `the relay sent bytes that are not TURN: ${chunk.subarray(0, 8).toString("hex")}`;
        socket.destroy();
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => client.end());
    return client;
  }

  private deliver(data: Buffer): void {
    this.inbox.push(data);
    this.wakeup.wake();
  }

  private end(): void {
    this.ended = true;
    this.wakeup.wake();
  }

  /** Whether this client talks over a TCP or TLS connection (ChannelData is padded there). */
  get isStream(): boolean {
    return this.transport !== "udp";
  }

  /** The client's own (local) port: what the relay sees as its source port. */
  get port(): number {
    return isDgram(this.socket) ? this.socket.address().port : this.socket.localPort!;
  }

  /** One datagram over UDP; over TCP/TLS, bytes written to the stream as they are. */
  sendRaw(bytes: Buffer): void {
    if (isDgram(this.socket)) this.socket.send(bytes, this.serverPort, this.serverAddress);
    else if (this.socket.writable) this.socket.write(bytes);
  }

  /** ChannelData for `channel`: padded to a multiple of 4 bytes on TCP/TLS (RFC 8656 §12.5), unpadded on UDP. */
  sendChannelData(channel: number, data: Buffer): void {
    const header = Buffer.alloc(4);
    header.writeUInt16BE(channel, 0);
    header.writeUInt16BE(data.length, 2);
    const padding = this.isStream ? (4 - (data.length % 4)) % 4 : 0;
    this.sendRaw(Buffer.concat([header, data, STREAM_PADDING.subarray(0, padding)]));
  }

  /**
   * The next datagram (UDP) or whole frame (TCP/TLS: one STUN message or one ChannelData without its
   * padding) from the server, or null after `timeoutMs` or once the socket has closed.
   */
  async receive(timeoutMs = WAIT_MS): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.ended) return null;
      await this.wakeup.sleep(left);
    }
    return this.inbox.shift()!;
  }

  /** The next STUN message from the server; fails the test after `timeoutMs`. */
  async receiveStun(timeoutMs = WAIT_MS): Promise<StunMessage> {
    const data = await this.receive(timeoutMs);
    if (data === null) throw new Error(`no answer from the relay within ${timeoutMs} ms`);
    const decoded = decodeStunMessage(data);
    if (!decoded.ok) throw new Error(`the relay sent a malformed message: ${decoded.reason}`);
    return decoded.message;
  }

  /** Sends one request as built by `spec` and returns the raw and decoded answer. */
  async exchange(bytes: Buffer): Promise<{ raw: Buffer; message: StunMessage }> {
    this.sendRaw(bytes);
    const raw = await this.receive();
    if (raw === null) throw new Error("no answer from the relay");
    const decoded = decodeStunMessage(raw);
    if (!decoded.ok) throw new Error(`the relay sent a malformed message: ${decoded.reason}`);
    return { raw, message: decoded.message };
  }

  /** Builds a request signed with `credential` (learning REALM and NONCE from a 401 first if needed). */
  async signedRequest(method: number, attributes: StunAttributeValue[], credential: TurnCredential, transactionId = newTransactionId()): Promise<Buffer> {
    if (this.nonce === undefined) {
      const challenge = await this.exchange(buildStunMessage({ method, messageClass: StunClass.Request, transactionId: newTransactionId(), attributes }));
      this.realm = textOf(challenge.message, AttributeType.Realm);
      this.nonce = textOf(challenge.message, AttributeType.Nonce);
      if (this.realm === undefined || this.nonce === undefined) throw new Error("the 401 carried no REALM or NONCE");
    }
    return buildStunMessage({
      method,
      messageClass: StunClass.Request,
      transactionId,
      attributes: [
        ...attributes,
        encodeText(AttributeType.Username, credential.username),
        encodeText(AttributeType.Realm, this.realm!),
        encodeText(AttributeType.Nonce, this.nonce),
      ],
      messageIntegrityKey: longTermKey(credential.username, this.realm!, credential.password),
      fingerprint: true,
    });
  }

  /** A signed request and its answer. */
  async request(method: number, attributes: StunAttributeValue[], credential: TurnCredential): Promise<StunMessage> {
    return (await this.exchange(await this.signedRequest(method, attributes, credential))).message;
  }

  /** Closes the UDP socket, or ends the TCP/TLS connection (and destroys it if the relay does not close its side soon). */
  close(): void {
    if (isDgram(this.socket)) {
      this.socket.close();
      return;
    }
    const socket = this.socket;
    socket.end();
    setTimeout(() => socket.destroy(), WAIT_MS).unref();
  }
}

function isDgram(socket: DgramSocket | NetSocket): socket is DgramSocket {
  return !(socket instanceof NetSocket);
}

/**
 * Records every error that escapes to the process (uncaught exceptions, unhandled rejections) while
 * a suite runs: in the relay process such an error would be a crash. Call it at a suite's top level;
 * it installs and removes its handlers with the suite's beforeAll and afterAll, and returns the list.
 */
export function recordEscapedErrors(): string[] {
  const escaped: string[] = [];
  const onUncaught = (error: unknown) => escaped.push(`uncaughtException: ${String(error)}`);
  const onUnhandled = (error: unknown) => escaped.push(`unhandledRejection: ${String(error)}`);
  beforeAll(() => {
    process.on("uncaughtException", onUncaught);
    process.on("unhandledRejection", onUnhandled);
  });
  afterAll(() => {
    process.off("uncaughtException", onUncaught);
    process.off("unhandledRejection", onUnhandled);
  });
  return escaped;
}

/** Whether a UDP socket of ours can bind 127.0.0.1:`port` now (it is closed again at once): the port is free. */
export function canBindUdp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    socket.once("error", () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, "127.0.0.1", () => socket.close(() => resolve(true)));
  });
}

/** A plain UDP socket standing in for the far peer. */
export class UdpPeer {
  readonly received: { data: Buffer; address: string; port: number }[] = [];

  private constructor(readonly socket: DgramSocket) {
    socket.on("message", (data, from) => this.received.push({ data, address: from.address, port: from.port }));
  }

  static async open(): Promise<UdpPeer> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    return new UdpPeer(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(data: Buffer, port: number): void {
    this.socket.send(data, port, "127.0.0.1");
  }

  /** Waits until `count` datagrams arrived, at most `timeoutMs`; returns whether they did. */
  async waitFor(count: number, timeoutMs = WAIT_MS): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    return this.received.length >= count;
  }

  close(): void {
    this.socket.close();
  }
}
