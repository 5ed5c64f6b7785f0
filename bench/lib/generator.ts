/**
 * Our own TURN load generator (run as its own process, bench/gen.ts, pinned to the load core).
 *
 * Opens N allocations over UDP, TCP or TLS (`transport`), each from its own socket or connection, with
 * long-term credentials (the 401 challenge, then a signed Allocate: every allocation pays for its own
 * authentication). On TCP and TLS every message is framed as RFC 8656 §12.5 says (STUN says its length,
 * ChannelData is padded to 4 bytes); the relayed leg to the peer is UDP either way. Then, by mode:
 * - `channel`: ChannelBind to the echo peer, then ChannelData;
 * - `send`: CreatePermission for the echo peer, then Send indications (answers come as Data indications);
 * - `alloc`: nothing more: it measures the allocation rate and holds the allocations idle so the caller
 *   can read the server's memory and idle CPU at checkpoints;
 * - `lifecycle`: `allocations` complete lifecycles, `concurrency` at once, each on its own socket: 401 +
 *   signed Allocate, CreatePermission, ChannelBind, Refresh, Refresh with LIFETIME 0 (delete), close.
 * After the data phase (`channel`, `send`) every allocation is deleted (Refresh, LIFETIME 0) and its socket
 * closed, so the caller's whole-run figure includes the teardown.
 * Messages go out as fast as the echoes allow with `window` in flight (spread over the allocations), or at a
 * fixed `rate`. A message not echoed within `lossTimeoutMs` is lost (its window slot is reused); its echo,
 * if it still comes, counts as late and not as received.
 *
 * It talks to the caller with JSON lines on stdout ({event: "hello" | "ready" | "checkpoint" | "done" | "result"})
 * and waits for a line on stdin ("go") at each of "hello" (before its first packet), "ready", "checkpoint" and
 * "done", so the caller can read the server's CPU time and memory exactly between phases.
 */
import { createSocket, type Socket } from "node:dgram";
import { connect as tcpConnect, type Socket as TcpSocket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { turnPassword } from "../../shared/turn/credentials.js";
import {
  encodeChannelNumber,
  encodeLifetime,
  encodeRequestedTransport,
  encodeText,
  encodeXorAddress,
  readErrorCode,
  readText,
  readXorAddress,
  TRANSPORT_PROTOCOL_UDP,
  type TransportAddress,
} from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../../relay/stun/constants.js";
import { longTermKey } from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";
import { StreamFramer } from "../../relay/transport/stream-framer.js";
import type { ServerAuth } from "./servers.js";
import { CHANNEL_PAYLOAD_OFFSET, channelDataTemplate, isStun, payloadOffset, SEND_PAYLOAD_OFFSET, sendIndicationTemplate, stamp } from "./wire.js";

export type GeneratorMode = "channel" | "send" | "alloc" | "lifecycle";
/** How the generator reaches the server; the relayed leg to the peer is UDP for all three. */
export type ClientTransport = "udp" | "tcp" | "tls";

export interface GeneratorOptions {
  /** UDP and TCP. */
  serverPort: number;
  /** TLS (transport "tls" only). */
  serverTlsPort?: number;
  transport: ClientTransport;
  auth: ServerAuth;
  mode: GeneratorMode;
  allocations: number;
  /** Application bytes per message. */
  size: number;
  /** Seconds of sending. */
  durationSeconds: number;
  /** Messages in flight at once, over all allocations (window mode). */
  window: number;
  /** Messages per second over all allocations; 0: window mode. */
  rate: number;
  peerPort: number;
  lossTimeoutMs: number;
  /** Allocations set up at once. */
  concurrency: number;
  /** alloc mode: pause after this many allocations (ascending), for the caller to read memory. */
  checkpoints: number[];
  /** Bound on the whole setup phase. */
  setupTimeoutMs: number;
}

export interface GeneratorResult {
  mode: GeneratorMode;
  allocated: number;
  allocationFailures: number;
  firstFailure: string | undefined;
  /** Seconds spent allocating (pauses at checkpoints excluded). */
  setupSeconds: number;
  allocationsPerSecond: number;
  sent: number;
  received: number;
  lost: number;
  late: number;
  sendSeconds: number;
  messagesPerSecond: number;
  rttMs: { p50: number; p99: number; mean: number; samples: number } | undefined;
  /** lifecycle mode: complete lifecycles, and lifecycles per second over the whole mode. */
  lifecycles: number;
  lifecyclesPerSecond: number;
}

const PEER_HOST = "127.0.0.1";
const SERVER_HOST = "127.0.0.1";
const RETRANSMIT_MS = 500;
const MAX_TRANSMISSIONS = 5;
/** TCP and TLS are reliable: one transmission (RFC 8489 §6.2.2), answered within this or failed. */
const STREAM_ANSWER_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** LIFETIME of the lifecycle's first Refresh (a plain refresh; the second asks 0, a delete). */
const REFRESH_LIFETIME_SECONDS = 600;
const FIRST_CHANNEL = 0x4000;
const MAX_RTT_SAMPLES = 1_000_000;

interface Pending {
  resolve(message: StunMessage): void;
  reject(error: Error): void;
}

class Client {
  /** UDP: its own socket; TCP/TLS: its own connection, with `framer` cutting what arrives into messages. */
  private socket: Socket | undefined;
  private stream: TcpSocket | undefined;
  readonly pending = new Map<string, Pending>();
  realm = "";
  nonce = "";
  relayed: TransportAddress | undefined;
  template: Buffer | undefined;
  payloadOffset = 0;
  isStunData = false;
  /** Sequence numbers in flight and their send times. */
  readonly inFlight = new Map<number, number>();
  nextSeq = 0;

  constructor(readonly generator: Generator) {}

  /** The local port of its UDP socket (undefined over TCP/TLS, or before it is bound). */
  get localPort(): number | undefined {
    try {
      return this.socket?.address().port;
    } catch {
      return undefined;
    }
  }

  get reliable(): boolean {
    return this.generator.options.transport !== "udp";
  }

  /** Binds the UDP socket or opens the TCP/TLS connection (bounded). */
  open(): Promise<void> {
    const options = this.generator.options;
    if (options.transport === "udp") {
      const socket = createSocket({ type: "udp4", recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
      this.socket = socket;
      socket.on("message", (data) => this.onMessage(data));
      return new Promise((resolve, reject) => {
        socket.once("error", reject);
        socket.bind(0, "127.0.0.1", () => {
          socket.off("error", reject);
          socket.on("error", () => {});
          resolve();
        });
      });
    }
    const framer = new StreamFramer((frame) => this.onMessage(frame));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${options.transport} connection within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
      const done = (error?: Error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      // The certificate is the run's own self-signed one (bench/lib/servers.ts): nothing to verify.
      const stream =
        options.transport === "tls"
          ? tlsConnect({ host: SERVER_HOST, port: options.serverTlsPort ?? 0, rejectUnauthorized: false }, () => done())
          : tcpConnect({ host: SERVER_HOST, port: options.serverPort }, () => done());
      stream.setNoDelay(true);
      this.stream = stream;
      stream.once("error", (error) => done(error));
      stream.on("error", () => {});
      stream.on("data", (chunk: Buffer) => {
        if (!framer.push(chunk)) stream.destroy();
      });
      stream.on("close", () => {
        for (const pending of this.pending.values()) pending.reject(new Error(`${options.transport} connection closed by the server`));
        this.pending.clear();
      });
    });
  }

  /** One message to the server (STUN or ChannelData, already padded for streams). */
  send(bytes: Buffer): void {
    if (this.socket !== undefined) this.socket.send(bytes, this.generator.options.serverPort, SERVER_HOST);
    else this.stream?.write(bytes);
  }

  private onMessage(data: Buffer): void {
    if (this.template !== undefined) {
      const offset = payloadOffset(data);
      if (offset >= 0) {
        this.generator.onEcho(this, data.readUInt32BE(offset), data.readDoubleBE(offset + 4));
        return;
      }
    }
    if (!isStun(data)) return;
    const decoded = decodeStunMessage(data);
    if (!decoded.ok) return;
    const key = decoded.message.transactionId.toString("hex");
    const pending = this.pending.get(key);
    if (pending === undefined) return;
    this.pending.delete(key);
    pending.resolve(decoded.message);
  }

  /** Sends a request, retransmitting (RFC 8489's doubling, bounded) until an answer with its transaction id comes. */
  transact(build: (transactionId: Buffer) => Buffer): Promise<StunMessage> {
    const transactionId = newTransactionId();
    const bytes = build(transactionId);
    const key = transactionId.toString("hex");
    return new Promise<StunMessage>((resolve, reject) => {
      let sent = 0;
      let timer: NodeJS.Timeout | undefined;
      const transmit = () => {
        if (sent >= (this.reliable ? 1 : MAX_TRANSMISSIONS)) {
          this.pending.delete(key);
          reject(new Error(this.reliable ? `no answer within ${STREAM_ANSWER_TIMEOUT_MS} ms` : `no answer after ${MAX_TRANSMISSIONS} transmissions`));
          return;
        }
        this.send(bytes);
        timer = setTimeout(transmit, this.reliable ? STREAM_ANSWER_TIMEOUT_MS : RETRANSMIT_MS * 2 ** sent);
        sent += 1;
      };
      this.pending.set(key, {
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      transmit();
    });
  }

  close(): void {
    for (const pending of this.pending.values()) pending.reject(new Error("closed"));
    this.pending.clear();
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
    this.stream?.destroy();
  }
}

function errorOf(message: StunMessage): string {
  const attribute = findAttribute(message, AttributeType.ErrorCode);
  if (attribute === undefined) return "error response without ERROR-CODE";
  const code = readErrorCode(message, attribute);
  return code.ok ? `${code.value.code} ${code.value.reason}` : "unreadable ERROR-CODE";
}

function textOf(message: StunMessage, type: number): string | undefined {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) return undefined;
  const text = readText(message, attribute);
  return text.ok ? text.value : undefined;
}

export class Generator {
  private readonly clients: Client[] = [];
  private username = "";
  private password = "";
  private readonly keys = new Map<string, Buffer>();
  private readonly peer: TransportAddress;
  private sending = false;
  sent = 0;
  received = 0;
  lost = 0;
  late = 0;
  private readonly rtt = new Float64Array(MAX_RTT_SAMPLES);
  private rttCount = 0;
  private rttSum = 0;
  private allocationFailures = 0;
  private firstFailure: string | undefined;
  private setupSeconds = 0;
  private lifecycles = 0;
  private lifecycleSeconds = 0;

  constructor(readonly options: GeneratorOptions) {
    this.peer = { family: 4, address: PEER_HOST, port: options.peerPort };
  }

  async credentials(): Promise<void> {
    if (this.options.auth.kind === "static") {
      this.username = this.options.auth.username;
      this.password = this.options.auth.password;
    } else {
      this.username = `${Math.floor(Date.now() / 1000) + 3600}:bench`;
      this.password = await turnPassword(this.options.auth.secret, this.username);
    }
  }

  private key(realm: string): Buffer {
    let key = this.keys.get(realm);
    if (key === undefined) {
      key = longTermKey(this.username, realm, this.password);
      this.keys.set(realm, key);
    }
    return key;
  }

  private signed(client: Client, method: number, attributes: StunAttributeValue[]): (transactionId: Buffer) => Buffer {
    return (transactionId) =>
      buildStunMessage({
        method,
        messageClass: StunClass.Request,
        transactionId,
        attributes: [
          ...attributes,
          encodeText(AttributeType.Username, this.username),
          encodeText(AttributeType.Realm, client.realm),
          encodeText(AttributeType.Nonce, client.nonce),
        ],
        messageIntegrityKey: this.key(client.realm),
        fingerprint: true,
      });
  }

  /** A signed request, learning a fresh nonce once on 438 (Stale Nonce). */
  private async signedRequest(client: Client, method: number, attributes: StunAttributeValue[]): Promise<StunMessage> {
    let answer = await client.transact(this.signed(client, method, attributes));
    if (answer.messageClass === StunClass.ErrorResponse && errorOf(answer).startsWith("438")) {
      client.nonce = textOf(answer, AttributeType.Nonce) ?? client.nonce;
      answer = await client.transact(this.signed(client, method, attributes));
    }
    if (answer.messageClass !== StunClass.SuccessResponse) throw new Error(`${methodName(method)}: ${errorOf(answer)}`);
    return answer;
  }

  /** One allocation, from a fresh socket: 401 challenge, signed Allocate, then the mode's permission or channel. */
  private async setUp(index: number): Promise<Client> {
    const client = new Client(this);
    try {
      await client.open();
      const transport = [encodeRequestedTransport(TRANSPORT_PROTOCOL_UDP)];
      const challenge = await client.transact((transactionId) =>
        buildStunMessage({ method: StunMethod.Allocate, messageClass: StunClass.Request, transactionId, attributes: transport }),
      );
      if (challenge.messageClass !== StunClass.ErrorResponse) throw new Error("Allocate without credentials was not refused");
      const realm = textOf(challenge, AttributeType.Realm);
      const nonce = textOf(challenge, AttributeType.Nonce);
      if (realm === undefined || nonce === undefined) throw new Error(`Allocate challenge without REALM or NONCE (${errorOf(challenge)})`);
      client.realm = realm;
      client.nonce = nonce;
      const allocated = await this.signedRequest(client, StunMethod.Allocate, transport);
      const relayedAttribute = findAttribute(allocated, AttributeType.XorRelayedAddress);
      const relayed = relayedAttribute === undefined ? undefined : readXorAddress(allocated, relayedAttribute);
      if (relayed === undefined || !relayed.ok) throw new Error("Allocate success without XOR-RELAYED-ADDRESS");
      client.relayed = relayed.value;
      if (this.options.mode === "channel") {
        const channel = FIRST_CHANNEL + (index % 0x1000);
        await this.signedRequest(client, StunMethod.ChannelBind, [
          encodeChannelNumber(channel),
          encodeXorAddress(AttributeType.XorPeerAddress, this.peer, newTransactionId()),
        ]);
        client.template = channelDataTemplate(channel, this.options.size, this.options.transport !== "udp");
        client.payloadOffset = CHANNEL_PAYLOAD_OFFSET;
      } else if (this.options.mode === "send") {
        await this.signedRequest(client, StunMethod.CreatePermission, [encodeXorAddress(AttributeType.XorPeerAddress, this.peer, newTransactionId())]);
        client.template = sendIndicationTemplate(PEER_HOST, this.options.peerPort, this.options.size);
        client.payloadOffset = SEND_PAYLOAD_OFFSET;
        client.isStunData = true;
      }
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /** Sets up allocations until `target` exist (with `concurrency` at once), bounded by the setup timeout. */
  async allocateUpTo(target: number): Promise<void> {
    const started = performance.now();
    const deadline = Date.now() + this.options.setupTimeoutMs;
    let next = this.clients.length + this.allocationFailures;
    const want = target - this.clients.length;
    let attempts = 0;
    const worker = async () => {
      while (this.clients.length < target && attempts < want * 2 && Date.now() < deadline) {
        attempts += 1;
        const index = next++;
        try {
          this.clients.push(await this.setUp(index));
        } catch (error) {
          this.allocationFailures += 1;
          this.firstFailure ??= (error as Error).message;
          if (this.allocationFailures > Math.max(20, target / 10)) return; // the server is refusing: stop trying
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.options.concurrency, want)) }, worker));
    this.setupSeconds += (performance.now() - started) / 1000;
  }

  /**
   * Deletes every allocation (Refresh with LIFETIME 0, `concurrency` at once, failures ignored: the server
   * may have dropped it) and closes its socket: the teardown the caller's whole-run figure includes.
   */
  async deleteAll(): Promise<void> {
    const clients = this.clients.splice(0);
    let next = 0;
    const worker = async () => {
      while (next < clients.length) {
        const client = clients[next++]!;
        try {
          await this.signedRequest(client, StunMethod.Refresh, [encodeLifetime(0)]);
        } catch {
          // gone already, or the server does not answer: the socket closes either way
        }
        client.close();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.options.concurrency, clients.length)) }, worker));
  }

  /** One complete allocation lifecycle on a fresh socket; throws what failed. */
  private async lifecycle(): Promise<void> {
    const client = await this.setUp(0); // 401 and signed Allocate (in this mode setUp binds nothing more)
    try {
      const peer = encodeXorAddress(AttributeType.XorPeerAddress, this.peer, newTransactionId());
      await this.signedRequest(client, StunMethod.CreatePermission, [peer]);
      await this.signedRequest(client, StunMethod.ChannelBind, [encodeChannelNumber(FIRST_CHANNEL), encodeXorAddress(AttributeType.XorPeerAddress, this.peer, newTransactionId())]);
      await this.signedRequest(client, StunMethod.Refresh, [encodeLifetime(REFRESH_LIFETIME_SECONDS)]);
      await this.signedRequest(client, StunMethod.Refresh, [encodeLifetime(0)]);
    } finally {
      client.close();
    }
  }

  /** Runs `total` lifecycles, `concurrency` at once, bounded by the setup timeout and by failures. */
  async runLifecycles(total: number): Promise<void> {
    const started = performance.now();
    const deadline = Date.now() + this.options.setupTimeoutMs;
    let begun = 0;
    const worker = async () => {
      while (begun < total && Date.now() < deadline) {
        begun += 1;
        try {
          await this.lifecycle();
          this.lifecycles += 1;
        } catch (error) {
          this.allocationFailures += 1;
          this.firstFailure ??= (error as Error).message;
          if (this.allocationFailures > Math.max(20, total / 10)) return; // the server is refusing: stop trying
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(this.options.concurrency, total)) }, worker));
    this.lifecycleSeconds = (performance.now() - started) / 1000;
  }

  get allocated(): number {
    return this.clients.length;
  }

  /** The local UDP port of every allocation's socket (bench/threads.ts counts the drops of the load's sockets by them). */
  get localPorts(): number[] {
    return this.clients.flatMap((client) => (client.localPort !== undefined ? [client.localPort] : []));
  }

  /** The relayed port of every allocation (bench/threads.ts tells by it which worker process holds it). */
  get relayedPorts(): number[] {
    return this.clients.flatMap((client) => (client.relayed !== undefined ? [client.relayed.port] : []));
  }

  private sendOne(client: Client): void {
    const seq = client.nextSeq++;
    const now = performance.now();
    client.inFlight.set(seq, now);
    client.send(stamp(client.template!, client.payloadOffset, seq, now, client.isStunData));
    this.sent += 1;
  }

  onEcho(client: Client, seq: number, sentAt: number): void {
    if (!client.inFlight.delete(seq)) {
      this.late += 1;
      return;
    }
    this.received += 1;
    const rtt = performance.now() - sentAt;
    this.rttSum += rtt;
    if (this.rttCount < MAX_RTT_SAMPLES) this.rtt[this.rttCount] = rtt;
    else {
      const slot = Math.floor(Math.random() * (this.rttCount + 1));
      if (slot < MAX_RTT_SAMPLES) this.rtt[slot] = rtt;
    }
    this.rttCount += 1;
    if (this.sending && this.options.rate === 0) this.sendOne(client);
  }

  /** Declares messages older than the loss timeout lost; in window mode their slots send again. */
  private expire(now: number): void {
    for (const client of this.clients) {
      for (const [seq, sentAt] of client.inFlight) {
        if (now - sentAt < this.options.lossTimeoutMs) break; // in send order: the rest are younger
        client.inFlight.delete(seq);
        this.lost += 1;
        if (this.sending && this.options.rate === 0) this.sendOne(client);
      }
    }
  }

  /** Sends for the configured duration, then waits for the last echoes (at most the loss timeout). */
  async run(): Promise<number> {
    const clients = this.clients;
    if (clients.length === 0) return 0;
    const started = performance.now();
    const end = started + this.options.durationSeconds * 1000;
    this.sending = true;
    const sweep = setInterval(() => this.expire(performance.now()), 50);
    try {
      if (this.options.rate === 0) {
        for (let i = 0; i < this.options.window; i++) this.sendOne(clients[i % clients.length]!);
        while (performance.now() < end) await sleepMs(Math.min(100, end - performance.now()));
      } else {
        let index = 0;
        while (performance.now() < end) {
          const due = Math.floor(((performance.now() - started) / 1000) * this.options.rate) - this.sent;
          for (let i = 0; i < due; i++) this.sendOne(clients[index++ % clients.length]!);
          await sleepMs(1);
        }
      }
      this.sending = false;
      const sendSeconds = (performance.now() - started) / 1000;
      const drainUntil = performance.now() + this.options.lossTimeoutMs + 100;
      while (clients.some((client) => client.inFlight.size > 0) && performance.now() < drainUntil) await sleepMs(10);
      this.expire(Number.POSITIVE_INFINITY);
      return sendSeconds;
    } finally {
      this.sending = false;
      clearInterval(sweep);
    }
  }

  result(sendSeconds: number): GeneratorResult {
    const samples = Math.min(this.rttCount, MAX_RTT_SAMPLES);
    let rttMs: GeneratorResult["rttMs"];
    if (samples > 0) {
      const sorted = this.rtt.slice(0, samples).sort();
      rttMs = { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), mean: this.rttSum / this.rttCount, samples: this.rttCount };
    }
    return {
      mode: this.options.mode,
      allocated: this.clients.length,
      allocationFailures: this.allocationFailures,
      firstFailure: this.firstFailure,
      setupSeconds: this.setupSeconds,
      allocationsPerSecond: this.setupSeconds > 0 ? this.clients.length / this.setupSeconds : 0,
      sent: this.sent,
      received: this.received,
      lost: this.lost,
      late: this.late,
      sendSeconds,
      messagesPerSecond: sendSeconds > 0 ? this.received / sendSeconds : 0,
      rttMs,
      lifecycles: this.lifecycles,
      lifecyclesPerSecond: this.lifecycleSeconds > 0 ? this.lifecycles / this.lifecycleSeconds : 0,
    };
  }

  close(): void {
    for (const client of this.clients) client.close();
  }
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function methodName(method: number): string {
  return Object.entries(StunMethod).find(([, value]) => value === method)?.[0] ?? `method ${method}`;
}

const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** The generator's main: phases separated by "go" lines on stdin. */
export async function runGenerator(options: GeneratorOptions): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  const waiting: (() => void)[] = [];
  let buffered = 0;
  lines.on("line", (line) => {
    if (line.trim() !== "go") return;
    const wake = waiting.shift();
    if (wake) wake();
    else buffered += 1;
  });
  lines.on("close", () => process.exit(3)); // the caller is gone
  const go = () =>
    new Promise<void>((resolve) => {
      if (buffered > 0) {
        buffered -= 1;
        resolve();
      } else waiting.push(resolve);
    });
  const emit = (fields: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(fields)}\n`);

  const generator = new Generator(options);
  await generator.credentials();
  emit({ event: "hello" });
  await go();
  let sendSeconds = 0;
  if (options.mode === "lifecycle") {
    await generator.runLifecycles(options.allocations);
  } else if (options.mode === "alloc") {
    for (const checkpoint of options.checkpoints) {
      await generator.allocateUpTo(checkpoint);
      emit({ event: "checkpoint", target: checkpoint, allocations: generator.allocated });
      await go();
    }
  } else {
    await generator.allocateUpTo(options.allocations);
    emit({ event: "ready", allocations: generator.allocated });
    await go();
    sendSeconds = await generator.run();
    emit({ event: "done" });
    await go();
    await generator.deleteAll();
  }
  emit({ event: "result", result: generator.result(sendSeconds) });
  generator.close();
  lines.removeAllListeners("close");
  lines.close();
  process.exit(0);
}
