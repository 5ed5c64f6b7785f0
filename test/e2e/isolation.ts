/**
 * The guard every WebRTC process in the end-to-end suites runs first: werift and Chromium reach out
 * to public STUN and DNS servers on their own, so they may only run in a network namespace a test
 * made, never in the machine's own. The machine's namespace is the one PID 1 lives in.
 */
import { readlinkSync } from "node:fs";

/** Set by runInNetns (test/node/netns.ts) for everything it starts. */
export const ISOLATED_NETNS_MARK = "RELAYKIT_ISOLATED_NETNS";

export function assertIsolatedNetwork(what: string): void {
  let own: string;
  let machine: string;
  try {
    own = readlinkSync("/proc/self/ns/net");
    machine = readlinkSync("/proc/1/ns/net");
  } catch (error) {
    // Unprivileged (a user namespace) we may not read PID 1's links; then trust the mark that
    // test/node/netns.ts puts on the processes it starts in a fresh namespace.
    if (process.env[ISOLATED_NETNS_MARK] === "1") return;
    throw new Error(`${what}: cannot tell which network namespace this is (${error instanceof Error ? error.message : String(error)}); refusing to run`);
  }
  if (own === machine) {
    throw new Error(`${what} must run inside a network namespace made by the test (see test/node/netns.ts), not in the machine's own`);
  }
}
