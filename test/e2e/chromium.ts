/**
 * Debian's headless Chromium (/usr/bin/chromium), driven through playwright-core, for the end-to-end
 * scripts. Playwright never downloads a browser here: `executablePath` points at the system one.
 *
 * Chromium resolves names, speaks mDNS and phones home at start, so it may only run inside a network
 * namespace a test made: `launchChromium` refuses to start in the machine's own (./isolation.ts).
 *
 * The browser is started with `launchServer` rather than `launch` because only the server exposes the
 * browser's process: `close()` asks politely (`browser.close()`), bounded in time, and then kills
 * the browser's process group by its PID. Playwright starts Chromium detached, so the PID leads the
 * group that holds every renderer, GPU and network-service process.
 *
 * Profile: Playwright refuses a `--user-data-dir` argument and instead gives every launch a fresh
 * temporary profile (`playwright_chromiumdev_profile-*` in the temp dir), deleted on close; so each
 * run starts with no state, which is what we want. Every page runs in its own browser context.
 */
import { createHash } from "node:crypto";
import { connect } from "node:tls";
import { chromium, type Browser, type BrowserServer } from "playwright-core";
import { signalGroup, sleep, withTimeout } from "../node/processes.js";
import { assertIsolatedNetwork } from "./isolation.js";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * The flags every run uses (see /work/shared/facts.md): no sandbox (we are root in a namespace), no GPU,
 * no QUIC, nothing in the background, fake camera and microphone answered without a prompt, and
 * loopback addresses allowed in ICE (the namespace has nothing else).
 */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
] as const;

const LAUNCH_TIMEOUT_MS = 20_000;
const TLS_PROBE_TIMEOUT_MS = 5_000;
const CLOSE_TIMEOUT_MS = 5_000;
const KILL_WAIT_MS = 2_000;

export interface LaunchedChromium {
  browser: Browser;
  /** The browser process (the leader of its process group), when Playwright reports it. */
  pid: number | undefined;
  /** Closes the browser; kills its process group when it does not close in time. Never throws. */
  close(): Promise<void>;
}

export interface LaunchOptions {
  /** More Chromium flags, after CHROMIUM_ARGS. */
  extraArgs?: string[];
  launchTimeoutMs?: number;
}

async function killGroup(pid: number | undefined): Promise<void> {
  if (pid === undefined) return;
  signalGroup(pid, "SIGKILL");
  const deadline = Date.now() + KILL_WAIT_MS;
  while (signalGroup(pid, 0) && Date.now() < deadline) await sleep(50);
}

/** Starts headless Chromium with CHROMIUM_ARGS (inside an isolated network namespace only). */
export async function launchChromium(options: LaunchOptions = {}): Promise<LaunchedChromium> {
  assertIsolatedNetwork("Chromium");
  const launchTimeoutMs = options.launchTimeoutMs ?? LAUNCH_TIMEOUT_MS;
  let server: BrowserServer | undefined;
  try {
    server = await chromium.launchServer({
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS, ...(options.extraArgs ?? [])],
      timeout: launchTimeoutMs,
      // We stop the browser ourselves; Playwright's own signal handlers would race with that.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`could not start ${CHROMIUM_PATH} (install Debian's chromium package: apt-get install chromium): ${message}`);
  }
  const pid = server.process().pid;
  const launched = server;
  try {
    const browser = await withTimeout(chromium.connect(launched.wsEndpoint(), { timeout: launchTimeoutMs }), launchTimeoutMs, "connecting to Chromium");
    let closed = false;
    return {
      browser,
      pid,
      close: async () => {
        if (closed) return;
        closed = true;
        try {
          await withTimeout(browser.close(), CLOSE_TIMEOUT_MS, "browser.close()");
          await withTimeout(launched.close(), CLOSE_TIMEOUT_MS, "closing the browser server");
        } catch {
          // Hung or already gone: the kill below ends it either way.
        }
        await killGroup(pid);
      },
    };
  } catch (error) {
    await killGroup(pid);
    throw error;
  }
}

/**
 * Chromium verifies a `turns:` server's certificate like any HTTPS one: against a self-signed
 * certificate the TURN/TLS allocation fails with icecandidateerror 701 ("Failed to establish
 * connection"), measured with Chromium 156. Rather than `--ignore-certificate-errors` (which would
 * accept any certificate), the tests trust exactly the relay's key: this reads the certificate the
 * TLS listener at host:port presents and returns the flag that pins its public key
 * (`--ignore-certificate-errors-spki-list=<base64 SHA-256 of the SubjectPublicKeyInfo>`; Chromium
 * honours it because Playwright runs it with a --user-data-dir). Production relays need a
 * certificate from a CA the browser trusts, for the name in the `turns:` URL.
 */
export async function trustTlsKeyArgs(host: string, port: number): Promise<string[]> {
  const spki = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host, port, rejectUnauthorized: false, timeout: TLS_PROBE_TIMEOUT_MS }, () => {
      const certificate = socket.getPeerX509Certificate();
      socket.destroy();
      if (certificate === undefined) return reject(new Error(`the TLS listener at ${host}:${port} presented no certificate`));
      resolve(createHash("sha256").update(certificate.publicKey.export({ type: "spki", format: "der" })).digest("base64"));
    });
    socket.once("timeout", () => {
      socket.destroy();
      reject(new Error(`no TLS handshake with ${host}:${port} within ${TLS_PROBE_TIMEOUT_MS} ms`));
    });
    socket.once("error", (error) => reject(new Error(`could not read the certificate of ${host}:${port}: ${error.message}`)));
  });
  return [`--ignore-certificate-errors-spki-list=${spki}`];
}
