/**
 * The ICE test page (`/ice-test`) in headless Chromium against our relay. Runs INSIDE a fresh network
 * namespace (ice-test-page.test.ts starts it through runInNetns):
 *
 *   node --import tsx test/e2e/browser/ice-test-run.ts [--wrong-secret] [--gather-timeout-ms=N] [--timeout-ms=N]
 *
 * It starts the relay and the Worker with the Worker handing out TURN over UDP, TCP and TLS (and the
 * relay's STUN), opens the page, runs its gathering through the page's own hook
 * (`window.relaykitIceTest.run()`, what the page's button does), and reports the page's result with
 * what the relay logged. `--wrong-secret` gives the relay a secret the Worker does not sign with, so
 * every TURN check must fail.
 */
import { launchChromium, trustTlsKeyArgs } from "../chromium.js";
import { relayEventsOnce, startStack, type RelayLogLine } from "../stack.js";
import { withTimeout } from "../../node/processes.js";
import { numberFlag, parseFlags, runScript } from "./harness.js";
import { collectPageErrors, newRecordedContext, runIceTest, waitForHook } from "./pages.js";

const flags = parseFlags(process.argv.slice(2), ["wrong-secret", "gather-timeout-ms", "timeout-ms"]);
const wrongSecret = flags.has("wrong-secret");
const gatherTimeoutMs = numberFlag(flags, "gather-timeout-ms", 8_000);
const timeoutMs = numberFlag(flags, "timeout-ms", 50_000);
/** How long the relay's lines may trail the page's result: at most this, while they are missing. */
const RELAY_LOG_WAIT_MS = 5_000;
/** How long to wait for lines that ought not to come (no relay candidate): a few of the log's 25 ms windows. */
const RELAY_LOG_SETTLE_MS = 500;

runScript("ice-test-run", timeoutMs, async ({ summary, phase, onCleanup }) => {
  const pageErrors: string[] = [];
  summary["wrongSecret"] = wrongSecret;
  summary["pageErrors"] = pageErrors;

  phase("start relay and Worker");
  const stack = await startStack({ turnTransports: ["udp", "tcp", "tls"], relaySecretMismatch: wrongSecret });
  onCleanup(() => stack.stop());
  summary["turnUrls"] = stack.turnUrls;

  phase("launch Chromium");
  const tlsPort = stack.relay.tlsPort;
  if (tlsPort === undefined) throw new Error("the relay reported no TLS listener");
  const chrome = await launchChromium({ extraArgs: await trustTlsKeyArgs(stack.relay.host, tlsPort) });
  onCleanup(() => chrome.close());

  phase("open the ICE test page");
  const page = await (await newRecordedContext(chrome.browser)).newPage();
  collectPageErrors(page, pageErrors, "ice-test");
  await page.goto(`${stack.workerUrl}/ice-test`, { timeout: 15_000 });
  await waitForHook(page, "relaykitIceTest");

  phase("gather");
  // The page bounds its own gathering; the margin covers fetching the ICE servers first.
  const result = await withTimeout(runIceTest(page, { relayOnly: false, timeoutMs: gatherTimeoutMs }), gatherTimeoutMs + 10_000, "the ICE test page's run()");
  summary["result"] = result;
  // One allocation-start per relay candidate the page gathered; with none (the wrong secret), a
  // moment for a line that should not be there to arrive all the same.
  const relayCandidates = result.candidates.filter((candidate) => candidate.type === "relay").length;
  const allocationLines = (events: RelayLogLine[]) => events.filter((event) => event.event === "allocation-start" || event.event === "allocation-end");
  const starts = (events: RelayLogLine[]) => allocationLines(events).filter((event) => event.event === "allocation-start").length;
  const events = await relayEventsOnce(stack, (logged) => relayCandidates > 0 && starts(logged) >= relayCandidates, relayCandidates > 0 ? RELAY_LOG_WAIT_MS : RELAY_LOG_SETTLE_MS);
  summary["relayAllocations"] = allocationLines(events);
});
