/**
 * `--external-ip-stun-server`: at start, a STUN Binding request from each relay IP to a STUN
 * server tells which public address that IP maps to behind 1:1 NAT (a cloud VM's private address
 * and its public one). The answer becomes an `--external-ip PUBLIC/PRIVATE` mapping. Bounded in
 * time: requests are resent every RETRANSMIT_MS until DISCOVERY_TIMEOUT_MS, then it gives up and
 * says what to do instead.
 */
import { createSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { ExternalAddress, StunServerAddress } from "../config.js";
import { readMappedAddress, readXorAddress } from "../stun/attributes.js";
import { buildStunMessage, newTransactionId } from "../stun/builder.js";
import { AttributeType, StunClass, StunMethod } from "../stun/constants.js";
import { decodeStunMessage, findAttribute } from "../stun/message.js";

/** The whole discovery (name lookup and every retry) for one relay IP. */
export const DISCOVERY_TIMEOUT_MS = 5_000;
/** Binding requests are resent this often: UDP may lose one. */
export const RETRANSMIT_MS = 500;

export class DiscoveryError extends Error {
  override name = "DiscoveryError";
}

function withDeadline<T>(work: Promise<T>, deadline: number, what: () => string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new DiscoveryError(what())), Math.max(0, deadline - Date.now()));
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** The address `localIp` is seen from by `server` (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from old servers). */
export async function discoverMappedAddress(server: StunServerAddress, localIp: string, timeoutMs = DISCOVERY_TIMEOUT_MS): Promise<string> {
  const family = isIP(localIp) === 6 ? 6 : 4;
  const deadline = Date.now() + timeoutMs;
  const shown = `${server.host}:${server.port}`;
  const serverIp =
    isIP(server.host) !== 0
      ? server.host
      : (
          await withDeadline(lookup(server.host, { family }), deadline, () => `--external-ip-stun-server ${shown}: the name did not resolve within ${timeoutMs} ms`).catch(
            (error: unknown) => {
              if (error instanceof DiscoveryError) throw error;
              throw new DiscoveryError(`--external-ip-stun-server ${shown}: the name does not resolve to an IPv${family} address (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
            },
          )
        ).address;

  const socket = createSocket({ type: family === 6 ? "udp6" : "udp4", ipv6Only: family === 6 });
  const transactionId = newTransactionId();
  const request = buildStunMessage({ method: StunMethod.Binding, messageClass: StunClass.Request, transactionId, attributes: [], fingerprint: true });
  let retransmit: NodeJS.Timeout | undefined;
  try {
    const answer = new Promise<string>((resolve, reject) => {
      socket.on("message", (data) => {
        const decoded = decodeStunMessage(data);
        if (!decoded.ok || !decoded.message.transactionId.equals(transactionId) || decoded.message.method !== StunMethod.Binding) return;
        const message = decoded.message;
        if (message.messageClass !== StunClass.SuccessResponse) {
          reject(new DiscoveryError(`--external-ip-stun-server ${shown} refused the Binding request; check that it is a STUN server`));
          return;
        }
        const xor = findAttribute(message, AttributeType.XorMappedAddress);
        const plain = findAttribute(message, AttributeType.MappedAddress);
        const read = xor !== undefined ? readXorAddress(message, xor) : plain !== undefined ? readMappedAddress(message, plain) : undefined;
        if (read === undefined || !read.ok) {
          reject(new DiscoveryError(`--external-ip-stun-server ${shown} answered without a usable mapped address; use another STUN server or give --external-ip`));
          return;
        }
        resolve(read.value.address);
      });
      socket.on("error", (error) => reject(new DiscoveryError(`--external-ip-stun-server ${shown}: ${error.message}; check --relay-ip and the server address`)));
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, localIp, () => {
        socket.off("error", reject);
        resolve();
      });
    }).catch((error: unknown) => {
      throw new DiscoveryError(`--external-ip-stun-server: cannot send from relay IP ${localIp} (${(error as NodeJS.ErrnoException).code ?? String(error)}); check --relay-ip`);
    });
    const send = () => socket.send(request, server.port, serverIp);
    send();
    retransmit = setInterval(send, RETRANSMIT_MS);
    return await withDeadline(
      answer,
      deadline,
      () => `--external-ip-stun-server ${shown}: no answer within ${timeoutMs} ms from relay IP ${localIp}; check that UDP to it is open, or give --external-ip PUBLIC/PRIVATE instead`,
    );
  } finally {
    if (retransmit !== undefined) clearInterval(retransmit);
    socket.close();
  }
}

export interface DiscoveredAddress {
  relayIp: string;
  /** What the STUN server saw the relay IP as. */
  mapped: string;
}

/** Asks from every relay IP, one after another. */
export async function discoverRelayAddresses(server: StunServerAddress, relayIps: readonly string[], timeoutMs = DISCOVERY_TIMEOUT_MS): Promise<DiscoveredAddress[]> {
  const found: DiscoveredAddress[] = [];
  for (const relayIp of relayIps) found.push({ relayIp, mapped: await discoverMappedAddress(server, relayIp, timeoutMs) });
  return found;
}

/**
 * The --external-ip mappings the answers call for: PUBLIC/PRIVATE for each relay IP seen as another
 * address; none for one seen as itself (no NAT in the way); PUBLIC alone for a wildcard relay IP.
 */
export function externalAddressesFrom(discovered: readonly DiscoveredAddress[]): ExternalAddress[] {
  return discovered
    .filter(({ relayIp, mapped }) => mapped !== relayIp)
    .map(({ relayIp, mapped }) => (relayIp === "0.0.0.0" || relayIp === "::" ? { public: mapped } : { public: mapped, private: relayIp }));
}
