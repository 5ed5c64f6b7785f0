/**
 * A small TURN client over a real UDP socket, built on the relay's own codec, for protocol tests.
 * It does the long-term dance (401 → REALM + NONCE → signed retry), and every wait is bounded.
 */
import { createSocket, type Socket } from "node:dgram";
import { TurnKeyring, type TurnCredential } from "../../shared/turn/credentials.js";
import { parseRelayArgs, type RelayConfig } from "../../relay/config.js";
import { RelayServer, type ListenerAddress, type RelayEvent } from "../../relay/server/relay-server.js";
import { encodeText, readErrorCode, readText } from "../../relay/stun/attributes.js";
import { buildStunMessage, newTransactionId, type StunAttributeValue } from "../../relay/stun/builder.js";
import { AttributeType, StunClass } from "../../relay/stun/constants.js";
import { longTermKey } from "../../relay/stun/integrity.js";
import { decodeStunMessage, findAttribute, type StunMessage } from "../../relay/stun/message.js";

export const SECRET = "relay-protocol-test-secret";
export const REALM = "relaykit.test";
const WAIT_MS = 2_000;

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
    ...extra,
  ]);
  if (parsed.help) throw new Error("unexpected --help");
  const relay = new RelayServer(parsed.config, onEvent);
  const listeners = await relay.start();
  onListening?.(listeners);
  const port = listeners[0]!.port;
  return { relay, port, config: parsed.config };
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

export function textOf(message: StunMessage, type: number): string | undefined {
  const attribute = findAttribute(message, type);
  if (attribute === undefined) return undefined;
  const text = readText(message, attribute);
  return text.ok ? text.value : undefined;
}

export class TurnTestClient {
  private readonly inbox: { data: Buffer; address: string; port: number }[] = [];
  private wake: (() => void) | null = null;
  realm: string | undefined;
  nonce: string | undefined;

  private constructor(
    readonly socket: Socket,
    readonly serverPort: number,
  ) {
    socket.on("message", (data, from) => {
      this.inbox.push({ data, address: from.address, port: from.port });
      this.wake?.();
    });
  }

  static async open(serverPort: number): Promise<TurnTestClient> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
    return new TurnTestClient(socket, serverPort);
  }

  get port(): number {
    return this.socket.address().port;
  }

  sendRaw(bytes: Buffer): void {
    this.socket.send(bytes, this.serverPort, "127.0.0.1");
  }

  /** The next datagram from the server, or null after `timeoutMs`. */
  async receive(timeoutMs = WAIT_MS): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    return this.inbox.shift()!.data;
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

  close(): void {
    this.socket.close();
  }
}

/** A plain UDP socket standing in for the far peer. */
export class UdpPeer {
  readonly received: { data: Buffer; address: string; port: number }[] = [];

  private constructor(readonly socket: Socket) {
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
