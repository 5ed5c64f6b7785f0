/**
 * The ICE test page (dist/web/ice-test.html, at /ice-test): gathers candidates with this Worker's
 * ICE servers or pasted ones and says plainly what works. The button and the test hook
 * (`window.relaykitIceTest.run()`) run the same function.
 */
import { fetchIceServers, type IceServer } from "../../shared/client/index.js";
import { byId, element, messageOf } from "../common/dom.js";
import { gather } from "./gather.js";
import { parseIceServersJson, readIceServers } from "./ice-servers-input.js";
import { judge, labelOf, type CandidateError, type Explanations, type GatheredCandidate, type ServerKind, type Verdicts } from "./verdicts.js";

export interface IceTestOptions {
  /** Gather relay candidates only. Default: the page's "Candidates" choice. */
  relayOnly?: boolean;
  /** ICE servers to test (an RTCIceServer list or `{ iceServers }`). Default: the page's choice. */
  iceServers?: unknown;
  /** Give up after this long. Default: the page's field (10 s). */
  timeoutMs?: number;
}

export interface IceTestResult {
  candidates: GatheredCandidate[];
  errors: CandidateError[];
  verdicts: Verdicts;
  /** The verdicts in words, as the page shows them. */
  explanations: Explanations;
  /** Gathering had not finished when the timeout ran out. */
  timedOut: boolean;
  timeoutMs: number;
}

export interface IceTestHook {
  run(options?: IceTestOptions): Promise<IceTestResult>;
}

declare global {
  interface Window {
    relaykitIceTest?: IceTestHook;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 120_000;
const CHECKS: ServerKind[] = ["stun", "turnUdp", "turnTcp", "turnTls"];

const ui = {
  form: byId("ice-form", HTMLFormElement),
  apiKey: byId("api-key", HTMLInputElement),
  ttl: byId("ttl", HTMLInputElement),
  pasted: byId("pasted", HTMLTextAreaElement),
  workerOptions: byId("worker-options", HTMLElement),
  policy: byId("policy", HTMLSelectElement),
  timeout: byId("timeout", HTMLInputElement),
  gather: byId("gather", HTMLButtonElement),
  status: byId("status", HTMLElement),
  problem: byId("problem", HTMLElement),
  verdicts: byId("verdicts", HTMLUListElement),
  candidates: byId("candidates", HTMLTableSectionElement),
  errors: byId("errors", HTMLTableSectionElement),
  serversUsed: byId("servers-used", HTMLElement),
};

function source(): "worker" | "paste" {
  const checked = ui.form.querySelector<HTMLInputElement>('input[name="source"]:checked');
  return checked?.value === "paste" ? "paste" : "worker";
}

function showSource(): void {
  const paste = source() === "paste";
  ui.pasted.disabled = !paste;
  for (const input of [ui.apiKey, ui.ttl]) input.disabled = paste;
  ui.workerOptions.classList.toggle("muted", paste);
}

/** The servers to test: given ones, pasted ones, or fresh ones from this Worker. */
async function resolveIceServers(given: unknown): Promise<IceServer[]> {
  if (given !== undefined) {
    const read = readIceServers(given);
    if (!read.ok) throw new Error(read.message);
    return read.iceServers;
  }
  if (source() === "paste") {
    const read = parseIceServersJson(ui.pasted.value);
    if (!read.ok) throw new Error(read.message);
    return read.iceServers;
  }
  const key = ui.apiKey.value.trim();
  const ttlText = ui.ttl.value.trim();
  const ttl = ttlText === "" ? undefined : Number(ttlText);
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl <= 0)) throw new Error(`TTL must be a whole number of seconds, not "${ttlText}".`);
  try {
    const response = await fetchIceServers({
      server: location.origin,
      ...(key === "" ? {} : { token: key }),
      ...(ttl === undefined ? {} : { ttl }),
    });
    return response.iceServers;
  } catch (error) {
    throw new Error(`Could not get ICE servers from this Worker: ${messageOf(error)}. If it needs a key, type it above; or paste servers instead.`);
  }
}

function timeoutFromForm(): number {
  const seconds = Number(ui.timeout.value);
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1000, MAX_TIMEOUT_MS) : DEFAULT_TIMEOUT_MS;
}

/** The servers as used, with credentials replaced: safe to screenshot. */
function describeServers(servers: IceServer[]): string {
  return JSON.stringify(servers.map((server) => ({ ...server, ...(server.credential === undefined ? {} : { credential: "(hidden)" }) })), null, 2);
}

function cell(text: string | number | null): HTMLTableCellElement {
  return element("td", {}, text === null ? "" : String(text));
}

function renderCandidate(candidate: GatheredCandidate): void {
  const related = candidate.relatedAddress === null ? null : `${candidate.relatedAddress}${candidate.relatedPort === null ? "" : `:${candidate.relatedPort}`}`;
  ui.candidates.append(
    element(
      "tr",
      {},
      cell(candidate.elapsedMs),
      element("td", {}, element("strong", {}, candidate.type)),
      cell(candidate.protocol),
      cell(candidate.address),
      cell(candidate.port),
      cell(candidate.relayProtocol),
      cell(related),
      cell(candidate.url),
    ),
  );
}

function renderError(error: CandidateError): void {
  ui.errors.append(element("tr", {}, cell(error.url), cell(error.errorCode), cell(error.errorText)));
}

/** How each verdict reads on the page. */
const VERDICT_WORDS: Record<Verdicts[ServerKind], string> = {
  worked: "works",
  failed: "fails",
  "same-as-host": "answers (no NAT)",
  "not-configured": "not configured",
};

function renderVerdicts(verdicts: Verdicts, explanations: Explanations): void {
  ui.verdicts.replaceChildren(
    ...CHECKS.map((check) =>
      element(
        "li",
        { attributes: { "data-check": check, "data-verdict": verdicts[check] } },
        element("span", { className: "label" }, labelOf(check)),
        element("span", { className: `verdict-${verdicts[check]}` }, VERDICT_WORDS[verdicts[check]]),
        ". ",
        explanations[check],
      ),
    ),
  );
}

let running = false;

async function run(options: IceTestOptions = {}): Promise<IceTestResult> {
  if (running) throw new Error("a gathering is already running; wait for it to finish");
  running = true;
  ui.gather.disabled = true;
  ui.problem.replaceChildren();
  ui.candidates.replaceChildren();
  ui.errors.replaceChildren();
  try {
    ui.status.textContent = "Getting ICE servers…";
    const iceServers = await resolveIceServers(options.iceServers);
    ui.serversUsed.textContent = describeServers(iceServers);
    const relayOnly = options.relayOnly ?? ui.policy.value === "relay";
    const timeoutMs = options.timeoutMs ?? timeoutFromForm();
    ui.status.textContent = `Gathering ${relayOnly ? "relay candidates" : "candidates"}… (gives up after ${timeoutMs / 1000} s)`;
    ui.verdicts.replaceChildren(element("li", { className: "muted" }, "Gathering…"));
    const outcome = await gather({ iceServers, relayOnly, timeoutMs, onCandidate: renderCandidate, onError: renderError });
    if (outcome.errors.length === 0) ui.errors.append(element("tr", {}, element("td", { className: "muted", attributes: { colspan: "3" } }, "None.")));
    const { verdicts, explanations } = judge(outcome);
    renderVerdicts(verdicts, explanations);
    const lastAt = outcome.candidates.reduce((latest, candidate) => Math.max(latest, candidate.elapsedMs), 0);
    ui.status.textContent = outcome.timedOut
      ? `Gave up after ${timeoutMs / 1000} s with ${outcome.candidates.length} candidates: gathering had not finished (a server did not answer).`
      : `Done: ${outcome.candidates.length} candidates, the last after ${lastAt} ms.`;
    return { candidates: outcome.candidates, errors: outcome.errors, verdicts, explanations, timedOut: outcome.timedOut, timeoutMs };
  } catch (error) {
    ui.status.textContent = "";
    ui.problem.replaceChildren(element("p", {}, messageOf(error)));
    ui.verdicts.replaceChildren(element("li", { className: "muted" }, "No verdict: the test did not run."));
    throw error;
  } finally {
    running = false;
    ui.gather.disabled = false;
  }
}

window.relaykitIceTest = { run };

for (const radio of ui.form.querySelectorAll<HTMLInputElement>('input[name="source"]')) radio.addEventListener("change", showSource);
ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  // The page already shows what went wrong; nothing else to do with the rejection here.
  run().catch(() => {});
});
showSource();
// `?ttl=` pre-fills the TTL field, so a link can ask for short-lived credentials.
const ttlParam = new URLSearchParams(location.search).get("ttl");
if (ttlParam !== null) ui.ttl.value = ttlParam;
