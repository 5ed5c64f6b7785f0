/**
 * The UDP listeners of a relay with worker processes: for each listening IP, one SO_REUSEPORT group
 * of N sockets that the primary binds and holds, member i for the worker in slot i
 * (docs/design/relay-workers.md says why the primary holds them). TCP and TLS share the UDP port
 * number through the cluster's handles, so with --listening-port 0 a port TCP cannot also take is
 * given up and another tried, as the one-process relay does.
 */
import { createServer as createNetServer } from "node:net";
import type { RelayConfig } from "../config.js";
import { bindSharedUdpSocket, closeSharedUdpSocket } from "../transport/native-udp.js";
import { LISTENER_BUFFER_BYTES } from "../transport/udp-socket.js";

/** Tries at a free UDP+TCP port when --listening-port is 0 (tests). */
const PORT_ZERO_ATTEMPTS = 5;

export interface UdpGroup {
  ip: string;
  port: number;
  /** This process's descriptors of the members, slot by slot. */
  fds: number[];
}

export interface ListenerGroups {
  groups: UdpGroup[];
  /** The TCP (and cluster-shared) port per listening IP: the UDP port, or --listening-port without UDP. */
  streamPorts: Record<string, number>;
}

/** Whether TCP `port` is free on `ip`. */
function tcpPortFree(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createNetServer();
    probe.once("error", () => resolve(false));
    probe.listen({ port, host: ip, ipv6Only: ip.includes(":"), exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** Binds `count` members of the group of `ip`:`port` (port 0: a free port, the same for all). */
async function bindUdpGroup(ip: string, port: number, count: number, needTcp: boolean): Promise<UdpGroup> {
  const family = ip.includes(":") ? 6 : 4;
  const attempts = port === 0 && needTcp ? PORT_ZERO_ATTEMPTS : 1;
  for (let attempt = 1; ; attempt++) {
    const fds: number[] = [];
    let bound = port;
    try {
      for (let member = 0; member < count; member++) {
        const shared = bindSharedUdpSocket(family, ip, bound, LISTENER_BUFFER_BYTES);
        fds.push(shared.fd);
        bound = shared.port;
      }
    } catch (error) {
      for (const fd of fds) closeSharedUdpSocket(fd);
      throw Object.assign(error as Error, { address: ip, port });
    }
    if (!needTcp || (await tcpPortFree(ip, bound))) return { ip, port: bound, fds };
    for (const fd of fds) closeSharedUdpSocket(fd);
    if (attempt >= attempts) throw Object.assign(new Error("TCP port in use"), { code: "EADDRINUSE", address: ip, port: bound });
  }
}

/**
 * Binds every listening IP's group of `count` members. Throws the bind error (with `code`, `address`,
 * `port`) with nothing left bound.
 */
export async function bindListenerGroups(config: Pick<RelayConfig, "listeningIps" | "listeningPort" | "udp" | "tcp">, count: number): Promise<ListenerGroups> {
  const groups: UdpGroup[] = [];
  const streamPorts: Record<string, number> = {};
  try {
    for (const ip of config.listeningIps) {
      if (!config.udp) {
        streamPorts[ip] = config.listeningPort;
        continue;
      }
      const group = await bindUdpGroup(ip, config.listeningPort, count, config.tcp);
      groups.push(group);
      streamPorts[ip] = group.port;
    }
  } catch (error) {
    closeListenerGroups(groups);
    throw error;
  }
  return { groups, streamPorts };
}

/** Closes every member this process holds (the relay stops). */
export function closeListenerGroups(groups: readonly UdpGroup[]): void {
  for (const group of groups) for (const fd of group.fds.splice(0)) closeSharedUdpSocket(fd);
}
